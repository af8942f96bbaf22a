// SPDX-License-Identifier: BSD-3-Clause
// Pt2Package (pt2_package.h), compiled once into libaotiplug.

#include <aotiplug/package/pt2_package.h>

#include "checked_unpickle.h"

#include <aotiplug/detail/crc32.h>

#include <ATen/ops/empty_strided.h>
#include <caffe2/serialize/inline_container.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/jit/serialization/pickle.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace aotiplug {

Pt2Package::FileDescriptor::~FileDescriptor() {
  if (fd >= 0) ::close(fd);
}

Pt2Package::~Pt2Package() = default;


namespace {

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void collectTensors(const c10::IValue& v, std::vector<at::Tensor>* out) {
  if (v.isTensor()) {
    out->push_back(v.toTensor());
  } else if (v.isList()) {
    for (const auto& item : v.toListRef()) collectTensors(item, out);
  } else if (v.isTuple()) {
    const auto& elements = v.toTupleRef().elements();
    // torch.export stores (args, kwargs): take the args.
    if (elements.size() == 2 && (elements[0].isTuple() || elements[0].isList()) &&
        elements[1].isGenericDict()) {
      collectTensors(elements[0], out);
      return;
    }
    for (const auto& item : elements) collectTensors(item, out);
  }
}

}  // namespace

std::vector<at::Tensor> tensorsFromPickledBytes(const std::string& bytes) {
  std::istringstream in(bytes);
  caffe2::serialize::PyTorchStreamReader archive(&in);
  const detail::UnpickledArchive unpickled = detail::unpickleArchive(archive, "the pickle");
  std::vector<at::Tensor> out;
  collectTensors(unpickled.value, &out);
  for (std::size_t i = 0; i < out.size(); ++i) {
    detail::checkInStorage(out[i], unpickled.records, "tensor " + std::to_string(i));
  }
  return out;
}

Pt2Package::Pt2Package(const std::string& path) : path_(path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path_, ec);
  if (!std::filesystem::exists(status)) {
    fail(StatusCode::kNotFound, ec && ec != std::errc::no_such_file_or_directory ? ec.message() : "no such file");
  }
  if (!std::filesystem::is_regular_file(status)) {
    fail(StatusCode::kInvalidArgument, std::filesystem::is_directory(status)
                                           ? "is a directory, not a .pt2 file"
                                           : "is not a regular file (a .pt2 package is a zip file)");
  }
  archive_size_ = std::filesystem::file_size(path_, ec);
  archive_.fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);  // -1: extract() reads through reader_
  try {
    reader_ = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path_);
    records_ = reader_->getAllRecords();
  } catch (const c10::Error& e) {
    fail(StatusCode::kInvalidArgument,
         "not a readable .pt2 archive: " + std::string(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    fail(StatusCode::kInvalidArgument, std::string("not a readable .pt2 archive: ") + e.what());
  }
  // Directory entries ("data/", and "" for the top folder itself) of a package re-zipped
  // with `zip -r` hold nothing.
  records_.erase(std::remove_if(records_.begin(), records_.end(),
                                [](const std::string& r) { return r.empty() || r.back() == '/'; }),
                 records_.end());
  if (records_.size() > kMaxEntries) {
    fail(StatusCode::kInvalidArgument, "holds " + std::to_string(records_.size()) +
                                           " entries; a package may hold at most " +
                                           std::to_string(kMaxEntries));
  }
  std::sort(records_.begin(), records_.end());
  const std::uint64_t bound = archive_size_ * kBombRatio + kBombSlack;
  std::uint64_t declared_total = 0;
  for (const std::string& r : records_) {
    std::uint64_t declared = 0;
    try {
      declared = reader_->getRecordSize(r);
    } catch (const c10::Error&) {
      continue;  // readRecord names what is wrong with it, if it is ever read
    }
    if (declared > bound) {
      fail(StatusCode::kInvalidArgument, "entry '" + r + "' declares " + std::to_string(declared) +
                                             " bytes in an archive of " + std::to_string(archive_size_) +
                                             " bytes; refusing to inflate it");
    }
    declared_total += declared;
  }
  if (declared_total > bound) {
    fail(StatusCode::kInvalidArgument,
         "its entries declare " + std::to_string(declared_total) + " bytes in all in an archive of " +
             std::to_string(archive_size_) + " bytes (overlapping or bombed entries); refusing to read it");
  }
  readCentralDirectory();
  const std::string prefix = "data/aotinductor/";
  std::map<std::string, PackagedModel> by_name;
  for (const std::string& r : records_) {
    if (!PrivateDirectory::isSafeRelativePath(r)) {
      fail(StatusCode::kInvalidArgument,
           "entry '" + r + "' has an unsafe name (absolute, or with '..' or empty parts)");
    }
    if (r.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = r.substr(prefix.size());
    const auto slash = rest.find('/');
    if (slash == std::string::npos) continue;  // a file directly in data/aotinductor/
    PackagedModel& m = by_name[rest.substr(0, slash)];
    m.name = rest.substr(0, slash);
    m.directory = prefix + m.name + "/";
    m.records.push_back(r);
  }
  for (auto& [name, m] : by_name) {
    std::vector<std::string> libraries;
    for (const std::string& r : m.records) {
      if (endsWith(r, ".so")) libraries.push_back(r);
    }
    if (libraries.size() > 1) {
      // Prefer AOTInductor's wrapper library.
      std::vector<std::string> wrappers;
      for (const auto& l : libraries) {
        if (endsWith(l, ".wrapper.so")) wrappers.push_back(l);
      }
      if (wrappers.size() == 1) libraries = wrappers;
    }
    if (libraries.empty()) {
      const bool has_sources = std::any_of(m.records.begin(), m.records.end(), [](const auto& r) {
        return endsWith(r, ".cpp");
      });
      fail(StatusCode::kInvalidArgument,
           "model '" + name + "' has no model library (.so) under " + m.directory +
               (has_sources ? ": it holds C++ sources only (package_cpp_only?); aotiplug runs "
                              "compiled models"
                            : ""));
    }
    if (libraries.size() > 1) {
      std::string list;
      for (const auto& l : libraries) list += (list.empty() ? "" : ", ") + l;
      fail(StatusCode::kInvalidArgument,
           "model '" + name + "' has several model libraries and none is the wrapper: " + list);
    }
    m.library = libraries.front();
    const std::string stem = m.library.substr(0, m.library.size() - 3);
    for (const std::string& r : m.records) {
      if (r == stem + "_weights.blob") m.weights_blob = r;
      if (r == m.directory + "weights_config.json") m.weights_config = r;
    }
    const std::string metadata_record = stem + "_metadata.json";
    if (std::binary_search(records_.begin(), records_.end(), metadata_record)) {
      const nlohmann::json doc =
          nlohmann::json::parse(readRecord(metadata_record), nullptr, /*allow_exceptions=*/false);
      if (!doc.is_object()) fail(StatusCode::kInvalidArgument, metadata_record + " is not a JSON object");
      for (auto it = doc.begin(); it != doc.end(); ++it) {
        if (it->is_string()) m.metadata.emplace(it.key(), it->get<std::string>());
      }
      if (auto in = m.metadata.find("aotiplug.inputs"); in != m.metadata.end()) {
        m.inputs = parseTensorSpecs(in->second, "input specs of model '" + name + "' in " + path_);
        m.shared_sizes = sharedSizes(m.inputs);
        m.specs_source = "aotiplug metadata";
      }
      if (auto out = m.metadata.find("aotiplug.outputs"); out != m.metadata.end()) {
        m.outputs = parseTensorSpecs(out->second, "output specs of model '" + name + "' in " + path_);
      }
    }
    if (const std::string source = stem + ".cpp"; std::binary_search(records_.begin(), records_.end(), source)) {
      m.wrapper_source = source;
      if (m.specs_source.empty() || m.metadata.count("aotiplug.constants") == 0) readWrapperSource(m);
    }
    models_.push_back(std::move(m));
  }
  if (models_.empty()) {
    fail(StatusCode::kInvalidArgument,
         "holds no AOTInductor model (nothing under data/aotinductor/<model>/)");
  }
}

void Pt2Package::readWrapperSource(PackagedModel& m) const {
  try {
    const std::string text = readRecord(m.wrapper_source);
    const WrapperSource source = parseWrapperSource(text, "the wrapper source " + m.wrapper_source);
    for (const WrapperConstant& c : source.constants) m.wrapper_constants.emplace(c.name, c);
    if (m.specs_source.empty() && !source.inputs.empty()) {
      m.inputs = source.inputs;
      m.specs_source = "wrapper source " + m.wrapper_source;
    }
  } catch (const Error& e) {
    m.spec_problem = e.what();
  }
}

std::vector<std::string> Pt2Package::modelNames() const {
  std::vector<std::string> out;
  for (const auto& m : models_) out.push_back(m.name);
  return out;
}

const PackagedModel& Pt2Package::model(const std::string& name) const {
  auto list = [&] {
    std::string text;
    for (const auto& m : models_) text += (text.empty() ? "" : ", ") + m.name;
    return text;
  };
  if (name.empty()) {
    if (models_.size() != 1) {
      fail(StatusCode::kInvalidArgument,
           "holds " + std::to_string(models_.size()) + " models (" + list() + "): name one");
    }
    return models_.front();
  }
  for (const auto& m : models_) {
    if (m.name == name) return m;
  }
  fail(StatusCode::kNotFound, "has no model '" + name + "' (it has: " + list() + ")");
}

bool Pt2Package::hasRecord(const std::string& name) const {
  return std::binary_search(records_.begin(), records_.end(), name);
}

std::string Pt2Package::readRecord(const std::string& name) const {
  if (!hasRecord(name)) fail(StatusCode::kNotFound, "has no entry '" + name + "'");
  try {
    const std::uint64_t declared = reader_->getRecordSize(name);
    if (declared > archive_size_ * kBombRatio + kBombSlack) {
      fail(StatusCode::kInvalidArgument,
           "entry '" + name + "' declares " + std::to_string(declared) +
               " bytes in an archive of " + std::to_string(archive_size_) +
               " bytes; refusing to inflate it");
    }
    std::string data(declared, '\0');
    const std::size_t got = reader_->getRecord(name, data.data(), data.size());
    data.resize(got);
    // LibTorch's miniz is built without its CRC checks: check here.
    if (const auto expected = recordedCrc(name)) checkCrc(name, detail::crc32(0, data.data(), data.size()), *expected);
    return data;
  } catch (const c10::Error& e) {
    fail(StatusCode::kInvalidArgument,
         "cannot read entry '" + name + "': " + std::string(e.what_without_backtrace()));
  }
}

std::string Pt2Package::extract(const PackagedModel& m, PrivateDirectory& dir) const {
  std::string library;
  for (const std::string& r : m.records) {
    const bool wanted_source = r == m.wrapper_source && m.metadata.count("aotiplug.constants") == 0;
    if ((endsWith(r, ".cpp") || endsWith(r, ".h")) && !wanted_source) continue;
    if (r == m.weights_blob) continue;  // loaded from memory, not from a file
    const std::string relative = r.substr(m.directory.size());
    std::string written;
    if (const std::optional<Span> span = storedSpan(r)) {
      // AOTInductor stores entries uncompressed: write them from the archive's pages
      // (measured: about a fifth of package open -> first output went to reading the
      // library into a zeroed buffer and writing it out again; see copySpan).
      written = dir.writeFileWith(relative, [&](int out, const std::string& target) {
        copySpan(r, *span, out, target);
      });
    } else {
      const std::string data = readRecord(r);
      written = dir.writeFile(relative, data.data(), data.size());
    }
    if (r == m.library) library = written;
  }
  return library;
}

std::optional<Pt2Package::Span> Pt2Package::storedSpan(const std::string& name) const {
  if (archive_.fd < 0 || !hasRecord(name)) return std::nullopt;
  std::uint64_t header = 0, offset = 0, size = 0;
  try {
    header = reader_->getRecordHeaderOffset(name);
    offset = reader_->getRecordOffset(name);
    size = reader_->getRecordSize(name);
  } catch (const c10::Error&) {
    return std::nullopt;  // readRecord reports what is wrong
  }
  // The local file header: signature 0x04034b50, then the compression method at byte 8.
  unsigned char h[30];
  if (::pread(archive_.fd, h, sizeof h, static_cast<off_t>(header)) != static_cast<ssize_t>(sizeof h)) {
    return std::nullopt;
  }
  const auto le16 = [&](int at) { return static_cast<unsigned>(h[at] | (h[at + 1] << 8)); };
  if (le16(0) != 0x4b50 || le16(2) != 0x0403 || le16(8) != 0 /* stored */) return std::nullopt;

  if (offset < header + sizeof h || offset > archive_size_ || size > archive_size_ - offset) {
    fail(StatusCode::kInvalidArgument,
         "entry '" + name + "' (" + std::to_string(size) + " bytes at offset " +
             std::to_string(offset) + ") runs past the end of the archive (" +
             std::to_string(archive_size_) + " bytes): truncated?");
  }
  return Span{offset, size};
}

std::optional<std::uint32_t> Pt2Package::recordedCrc(const std::string& name) const {
  auto it = crcs_.find(name);
  if (it == crcs_.end()) return std::nullopt;
  return it->second;
}

void Pt2Package::readCentralDirectory() {
  // The end-of-central-directory record (signature 0x06054b50) is in the last 64 KiB + 22
  // bytes; a zip64 archive has a locator just before it pointing at the zip64 record.
  if (archive_.fd < 0 || archive_size_ < 22) return;
  const auto le = [](const unsigned char* p, int n) {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  };
  const std::uint64_t tail_size = std::min<std::uint64_t>(archive_size_, 65535 + 22);
  std::vector<unsigned char> tail(tail_size);
  if (::pread(archive_.fd, tail.data(), tail.size(), static_cast<off_t>(archive_size_ - tail_size)) !=
      static_cast<ssize_t>(tail.size())) {
    return;
  }
  std::size_t eocd = tail.size() - 22 + 1;
  while (eocd-- > 0) {
    if (tail[eocd] == 0x50 && tail[eocd + 1] == 0x4b && tail[eocd + 2] == 0x05 && tail[eocd + 3] == 0x06) break;
  }
  if (eocd > tail.size()) return;
  std::uint64_t count = le(&tail[eocd + 10], 2);
  std::uint64_t cd_size = le(&tail[eocd + 12], 4);
  std::uint64_t cd_offset = le(&tail[eocd + 16], 4);
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    const std::uint64_t locator = archive_size_ - tail_size + eocd;
    unsigned char l[20], z[56];
    if (locator < 20 || ::pread(archive_.fd, l, sizeof l, static_cast<off_t>(locator - 20)) != 20 ||
        le(l, 4) != 0x07064b50) {
      return;
    }
    const std::uint64_t record = le(l + 8, 8);
    if (record > archive_size_ - sizeof z || ::pread(archive_.fd, z, sizeof z, static_cast<off_t>(record)) != 56 ||
        le(z, 4) != 0x06064b50) {
      return;
    }
    count = le(z + 32, 8);
    cd_size = le(z + 40, 8);
    cd_offset = le(z + 48, 8);
  }
  if (cd_offset > archive_size_ || cd_size > archive_size_ - cd_offset) return;
  std::vector<unsigned char> cd(cd_size);
  if (::pread(archive_.fd, cd.data(), cd.size(), static_cast<off_t>(cd_offset)) != static_cast<ssize_t>(cd.size())) {
    return;
  }
  // Entries: signature 0x02014b50, CRC-32 at 16, name length at 28, extra at 30, comment at
  // 32, the name at 46. Names are keyed without the archive's top folder, as records are.
  for (std::size_t at = 0; at + 46 <= cd.size() && le(&cd[at], 4) == 0x02014b50;) {
    const std::size_t name_len = le(&cd[at + 28], 2);
    const std::size_t skip = 46 + name_len + le(&cd[at + 30], 2) + le(&cd[at + 32], 2);
    if (at + skip > cd.size()) break;
    std::string name(reinterpret_cast<const char*>(&cd[at + 46]), name_len);
    const auto slash = name.find('/');
    if (slash != std::string::npos) crcs_[name.substr(slash + 1)] = static_cast<std::uint32_t>(le(&cd[at + 16], 4));
    at += skip;
  }
}

void Pt2Package::checkCrc(const std::string& name, std::uint32_t crc, std::uint32_t expected) const {
  if (crc == expected) return;
  char text[64];
  std::snprintf(text, sizeof text, "CRC-32 %08x, the archive records %08x", crc, expected);
  fail(StatusCode::kInvalidArgument, "entry '" + name + "' is corrupt: its " + text);
}

void Pt2Package::copySpan(const std::string& name, const Span& span, int out,
                                 const std::string& target) const {
  const auto broken = [&](const std::string& why) {
    fail(StatusCode::kUnavailable, "cannot copy into " + target + ": " + why);
  };
  const std::string ended = "the archive ended early (changed while open?)";
  // Writes [data, data + size) to `out`.
  std::uint32_t crc = 0;
  const auto writeAll = [&](const char* data, std::size_t size) {
    while (size > 0) {
      const ssize_t w = ::write(out, data, size);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) broken(w == 0 ? "wrote nothing" : std::strerror(errno));
      data += w;
      size -= static_cast<std::size_t>(w);
    }
  };
  struct stat st {};
  if (::fstat(archive_.fd, &st) != 0) broken(std::strerror(errno));
  if (static_cast<std::uint64_t>(st.st_size) < span.offset + span.size) broken(ended);
  if (span.size == 0) return;
  // Reserve the blocks first: writing into allocated space skips the file system's
  // per-page delayed allocation (ext4: 0.87-0.91 ms against 1.0-1.09 ms for the write
  // below), and a full disk is an error before anything is written. Where a file system
  // cannot preallocate, the write allocates as it goes.
  if (::fallocate(out, 0, 0, static_cast<off_t>(span.size)) != 0 && errno == ENOSPC) {
    broken(std::strerror(ENOSPC));
  }

  // Through a buffer that stays in the CPU's cache: pread() copies each chunk in, the CRC
  // and write() read it there. Not from a mapping of the archive, although writing from one
  // measured 0.1 ms faster on a 4.5 MB library: the CRC would read the mapping itself, and a
  // file truncated meanwhile would raise SIGBUS in the host; pread() reports it instead.
  std::vector<char> buffer(std::min<std::uint64_t>(span.size, kCopyChunk));
  loff_t from = static_cast<loff_t>(span.offset);
  std::uint64_t left = span.size;
  while (left > 0) {
    const ssize_t n = ::pread(archive_.fd, buffer.data(), std::min<std::uint64_t>(left, buffer.size()), from);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) broken(n == 0 ? ended : std::strerror(errno));
    writeAll(buffer.data(), static_cast<std::size_t>(n));
    crc = detail::crc32(crc, buffer.data(), static_cast<std::size_t>(n));
    from += n;
    left -= static_cast<std::uint64_t>(n);
  }
  if (const auto expected = recordedCrc(name)) checkCrc(name, crc, *expected);
}

std::vector<at::Tensor> Pt2Package::tensorsFromPickle(const std::string& record) const {
  const std::string bytes = readRecord(record);
  try {
    return tensorsFromPickledBytes(bytes);
  } catch (const Error& e) {
    fail(StatusCode::kInvalidArgument, "'" + record + "': " + e.what());
  } catch (const c10::Error& e) {
    fail(StatusCode::kInvalidArgument,
         "cannot unpickle '" + record + "': " + std::string(e.what_without_backtrace()));
  } catch (const std::exception& e) {  // LibTorch's unpickler on a damaged pickle: .at(), allocation
    fail(StatusCode::kInvalidArgument, "cannot unpickle '" + record + "': " + e.what());
  }
}

std::vector<at::Tensor> Pt2Package::sampleInputs(const PackagedModel& m) const {
  const std::string record = "data/sample_inputs/" + m.name + ".pt";
  return hasRecord(record) ? tensorsFromPickle(record) : std::vector<at::Tensor>{};
}

std::vector<at::Tensor> Pt2Package::referenceOutputs(const PackagedModel& m) const {
  // data/aotiplug/ since the packager's second format; extra/aotiplug/ before (upstream's
  // aoti_load_package reads every extra/ entry as UTF-8 text, so it could not load those).
  for (const std::string& record : {"data/aotiplug/" + m.name + "/reference_outputs.pt",
                                    "extra/aotiplug/" + m.name + "/reference_outputs.pt"}) {
    if (hasRecord(record)) return tensorsFromPickle(record);
  }
  return {};
}

std::shared_ptr<Weights> Pt2Package::storedWeights(const PackagedModel& m) const {
  if (m.weights_config.empty()) return nullptr;
  // weights_config.json: {fqn: [record in data/weights/, sizes, strides, storage offset]}
  const nlohmann::json config =
      nlohmann::json::parse(readRecord(m.weights_config), nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) fail(StatusCode::kInvalidArgument, m.weights_config + " is not a JSON object");
  std::map<std::string, at::Tensor> tensors;
  for (auto it = config.begin(); it != config.end(); ++it) {
    const auto& entry = it.value();
    if (!entry.is_array() || entry.size() < 1 || !entry[0].is_string()) {
      fail(StatusCode::kInvalidArgument, m.weights_config + ": bad entry for '" + it.key() + "'");
    }
    const std::string record = "data/weights/" + entry[0].get<std::string>();
    std::vector<at::Tensor> t = tensorsFromPickle(record);
    if (t.size() != 1) fail(StatusCode::kInvalidArgument, record + " does not hold one tensor");
    at::Tensor value = t.front();
    if (entry.size() >= 4 && entry[1].is_array() && entry[2].is_array()) {
      try {
        value = value.as_strided(entry[1].get<std::vector<std::int64_t>>(),
                                 entry[2].get<std::vector<std::int64_t>>(),
                                 entry[3].get<std::int64_t>());
      } catch (const nlohmann::json::exception& e) {
        fail(StatusCode::kInvalidArgument, m.weights_config + ": bad sizes, strides or offset for '" +
                                               it.key() + "' (" + e.what() + ")");
      } catch (const c10::Error& e) {
        fail(StatusCode::kInvalidArgument,
             m.weights_config + ": sizes, strides and offset for '" + it.key() + "' do not fit " +
                 record + ": " + e.what_without_backtrace());
      }
    }
    tensors.emplace(it.key(), value);
  }
  return std::make_shared<Weights>(std::move(tensors));
}

}  // namespace aotiplug
