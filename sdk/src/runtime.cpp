// SPDX-License-Identifier: BSD-3-Clause
//
// libaotiplug: the SDK's only compiled piece. It owns what must exist once per process —
// the runner registry and the registration log — and the key functions of the types whose
// identity must be shared by the host and every plugin (aotiplug::Error).

#include <aotiplug/detail/crc32.h>
#include <aotiplug/detail/op_library_loader.h>
#include <aotiplug/error.h>
#include <aotiplug/plugin/registration_log.h>
#include <aotiplug/registry/plugin_abi.h>
#include <aotiplug/registry/runner_registry.h>
#include <aotiplug/runner/device.h>
#include <aotiplug/runner/library_messages.h>
#include <aotiplug/status.h>

#include <c10/util/Exception.h>

#ifdef AOTIPLUG_HAVE_ISAL
#include <isa-l/crc.h>
#endif
#include <boost/crc.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <iostream>
#include <mutex>
#include <new>
#include <sstream>
#include <streambuf>
#include <unordered_map>
#include <utility>

namespace aotiplug {

Error::Error(StatusCode code, const std::string& message)
    : std::runtime_error(message), code_(code) {}

Error::~Error() = default;

void throwIfError(const Status& status, const std::string& context) {
  if (status.isOk()) return;
  if (context.empty()) throw Error(status.code(), status.message());
  throw Error(status.code(), context + ": " + status.message());
}

// ---- CRC-32 ----

namespace detail {

AOTIPLUG_API std::uint32_t crc32Portable(std::uint32_t crc, const void* data, std::size_t size) noexcept {
  // Boost's engine resumes from a remainder, not from a finished CRC: for this reflected
  // CRC the remainder is the finished value with the final XOR undone, bit-reversed
  // (reset() with the finished value alone is right only for 0 and ~0, so every CRC taken
  // in more than one piece came out wrong).
  std::uint32_t remainder = crc ^ 0xFFFFFFFFu;
  std::uint32_t reversed = 0;
  for (int bit = 0; bit < 32; ++bit, remainder >>= 1) reversed = (reversed << 1) | (remainder & 1u);
  boost::crc_optimal<32, 0x04C11DB7, 0xFFFFFFFF, 0xFFFFFFFF, true, true> c(reversed);
  c.process_bytes(data, size);
  return c.checksum();
}

AOTIPLUG_API std::uint32_t crc32(std::uint32_t crc, const void* data, std::size_t size) noexcept {
#ifdef AOTIPLUG_HAVE_ISAL
  return crc32_gzip_refl(crc, static_cast<const unsigned char*>(data), size);
#else
  return crc32Portable(crc, data, size);
#endif
}

}  // namespace detail

// ---- LibraryMessages ----

namespace {

// Where this thread's std::cerr output goes while a LibraryMessages lives.
thread_local std::string* tl_sink = nullptr;

// std::cerr's buffer while libaotiplug is loaded: forwards to the original buffer, except
// for a thread that is capturing. Unbuffered, so it is exactly as thread-safe as the
// buffer it forwards to.
class RoutingBuffer final : public std::streambuf {
 public:
  explicit RoutingBuffer(std::streambuf* original) noexcept : original_(original) {}
  std::streambuf* original() const noexcept { return original_; }

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    if (std::string* sink = tl_sink) {
      sink->push_back(traits_type::to_char_type(c));
      return c;
    }
    return original_ != nullptr ? original_->sputc(traits_type::to_char_type(c)) : c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (std::string* sink = tl_sink) {
      sink->append(s, static_cast<std::size_t>(n));
      return n;
    }
    return original_ != nullptr ? original_->sputn(s, n) : n;
  }
  int sync() override { return tl_sink != nullptr || original_ == nullptr ? 0 : original_->pubsync(); }

 private:
  std::streambuf* original_;
};

// Installed when libaotiplug is loaded (the host links it, so normally before any thread
// starts); put back when it is unloaded. The buffer itself is leaked on purpose: code that
// runs after this library's static destructors may still write to std::cerr.
struct CerrRouting {
  RoutingBuffer* buffer = nullptr;
  CerrRouting() noexcept {
    try {
      static std::ios_base::Init streams;  // std::cerr exists from here on
      buffer = new RoutingBuffer(std::cerr.rdbuf());
      std::cerr.rdbuf(buffer);
    } catch (...) {
      buffer = nullptr;  // no capture; the library's messages reach the terminal
    }
  }
  ~CerrRouting() {
    if (buffer != nullptr && std::cerr.rdbuf() == buffer) std::cerr.rdbuf(buffer->original());
  }
};
CerrRouting cerr_routing;

bool startsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

LibraryMessages::LibraryMessages() noexcept : outer_(tl_sink) { tl_sink = &text_; }

LibraryMessages::~LibraryMessages() {
  tl_sink = outer_;
  if (text_.empty()) return;
  if (outer_ != nullptr) {
    outer_->append(text_);
  } else if (cerr_routing.buffer != nullptr && cerr_routing.buffer->original() != nullptr) {
    cerr_routing.buffer->original()->sputn(text_.data(), static_cast<std::streamsize>(text_.size()));
  }
}

bool LibraryMessages::capturing() const noexcept {
  return cerr_routing.buffer != nullptr && std::cerr.rdbuf() == cerr_routing.buffer;
}

std::string LibraryMessages::takeReason() {
  std::istringstream lines(text_);
  text_.clear();
  std::vector<std::string> parts;
  bool in_trace = false;
  for (std::string line; std::getline(lines, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    // A c10::Error's stack trace: "Exception raised from f at file:line (most recent call
    // first):" and then one "frame #N: ..." line per frame.
    if (startsWith(line, "Exception raised from ")) {
      in_trace = true;
      continue;
    }
    if (startsWith(line, "frame #") || line.empty()) continue;
    if (in_trace && startsWith(line, "  ")) continue;
    in_trace = false;
    // c10's log line prefix: "[E1201 21:58:20.469183938 c_shim_cpu.cpp:594] ".
    if (line.size() > 3 && line[0] == '[' && std::strchr("IWEF", line[1]) != nullptr &&
        std::isdigit(static_cast<unsigned char>(line[2])) != 0) {
      if (const auto close = line.find("] "); close != std::string::npos) line.erase(0, close + 2);
    }
    for (const char* prefix : {"Error: ", "Exception in aoti_torch: "}) {
      if (startsWith(line, prefix)) line.erase(0, std::char_traits<char>::length(prefix));
    }
    if (!line.empty() && std::find(parts.begin(), parts.end(), line) == parts.end()) {
      parts.push_back(std::move(line));
    }
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

// ---- RegistrationLog ----

void RegistrationLog::record(const Origin& origin, const std::string& message) noexcept {
  try {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.push_back(Entry{origin, message});
  } catch (...) {
    // Out of memory while recording: the registration itself already failed and the
    // host will still see the plugin's missing registrations.
  }
}

std::vector<RegistrationLog::Entry> RegistrationLog::take(const std::string& library) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Entry> out;
  auto it = std::stable_partition(entries_.begin(), entries_.end(),
                                  [&](const Entry& e) { return e.origin.library != library; });
  std::move(it, entries_.end(), std::back_inserter(out));
  entries_.erase(it, entries_.end());
  return out;
}

std::vector<RegistrationLog::Entry> RegistrationLog::peek(const std::string& library) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Entry> out;
  for (const Entry& e : entries_) {
    if (e.origin.library == library) out.push_back(e);
  }
  return out;
}

// Both singletons are deliberately leaked: plugins unregister from their static
// destructors, which may run after this library's own static destructors at exit.
RegistrationLog& registrationLog() noexcept {
  static RegistrationLog* log = new RegistrationLog();
  return *log;
}

RunnerRegistry& runnerRegistry() noexcept {
  static RunnerRegistry* registry = new RunnerRegistry("runner registry");
  return *registry;
}

// ---- runner creation ----

namespace {
struct PluginAbiTable {
  std::mutex mutex;
  std::unordered_map<std::string, std::uint32_t> minors;
};
PluginAbiTable& pluginAbiTable() {
  static PluginAbiTable* table = new PluginAbiTable();  // leaked, as the registry
  return *table;
}
}  // namespace

void recordPluginAbiMinor(const std::string& library, std::uint32_t abi_minor) {
  PluginAbiTable& t = pluginAbiTable();
  std::lock_guard<std::mutex> lock(t.mutex);
  t.minors[library] = abi_minor;
}

std::uint32_t pluginAbiMinor(const std::string& library) {
  if (library.empty()) return AOTIPLUG_ABI_MINOR;
  PluginAbiTable& t = pluginAbiTable();
  std::lock_guard<std::mutex> lock(t.mutex);
  const auto it = t.minors.find(library);
  if (it == t.minors.end()) return 0;
  return std::min<std::uint32_t>(it->second, AOTIPLUG_ABI_MINOR);
}

c10::Device parseDevice(const std::string& device_str) {
  try {
    return c10::Device(device_str);
  } catch (const c10::Error&) {
    throw Error(StatusCode::kInvalidArgument,
                "invalid device string '" + device_str +
                    "': expected a device type and an optional index, e.g. 'cpu' or 'cuda:0'");
  }
}

std::unique_ptr<ModelContainerRunner> createRunner(c10::DeviceType device_type,
                                                   const std::string& model_so_path,
                                                   std::size_t num_models,
                                                   const std::string& device_str,
                                                   const std::string& cubin_dir,
                                                   bool run_single_threaded) {
  Origin origin;
  Leased<RunnerAbi> runner = runnerRegistry().createReporting(
      &origin, device_type, model_so_path, num_models, device_str, cubin_dir,
      run_single_threaded);
  std::string context = origin.plugin.empty() ? std::string("runner")
                                              : "plugin '" + origin.plugin + "'";
  return std::make_unique<RunnerHandle>(std::move(runner), std::move(context),
                                        pluginAbiMinor(origin.library));
}

std::unique_ptr<ModelContainerRunner> createRunner(const std::string& model_so_path,
                                                   std::size_t num_models,
                                                   const std::string& device_str,
                                                   const std::string& cubin_dir,
                                                   bool run_single_threaded) {
  return createRunner(parseDevice(device_str).type(), model_so_path, num_models, device_str,
                      cubin_dir, run_single_threaded);
}

namespace detail {
namespace {
std::atomic<OpLibraryLoader>& opLibraryLoaderSlot() noexcept {
  static std::atomic<OpLibraryLoader> slot{nullptr};
  return slot;
}
}  // namespace

void setOpLibraryLoader(OpLibraryLoader loader) noexcept { opLibraryLoaderSlot().store(loader); }
OpLibraryLoader opLibraryLoader() noexcept { return opLibraryLoaderSlot().load(); }
}  // namespace detail

}  // namespace aotiplug
