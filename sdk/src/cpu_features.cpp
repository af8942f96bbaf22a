// SPDX-License-Identifier: BSD-3-Clause
//
// cpuFeaturesUsedBy (cpu_features.h): which instruction sets a shared object's machine code
// uses, by decoding its executable segments with Zydis, cached by build ID.

#include <aotiplug/error.h>
#include <aotiplug/runner/cpu_features.h>
#include <aotiplug/status.h>

#ifdef AOTIPLUG_HAVE_ZYDIS
#include <Zydis/Zydis.h>
#endif

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace aotiplug {

namespace {

// A read-only mapping of a whole file, unmapped with the object.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(StatusCode::kNotFound, "cannot open " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
      ::close(fd);
      throw Error(StatusCode::kInvalidArgument, path + " is empty or unreadable");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw Error(StatusCode::kUnavailable, "cannot map " + path + ": " + std::strerror(errno));
    data_ = static_cast<const unsigned char*>(p);
  }
  ~MappedFile() { ::munmap(const_cast<unsigned char*>(data_), size_); }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const unsigned char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  const unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
};

// The ELF program headers of a 64-bit shared object, bounds-checked.
[[maybe_unused]] std::vector<Elf64_Phdr> programHeaders(const MappedFile& f, const std::string& path) {
  const auto bad = [&](const std::string& why) {
    return Error(StatusCode::kInvalidArgument, path + " is not a readable ELF shared object: " + why);
  };
  if (f.size() < sizeof(Elf64_Ehdr)) throw bad("too short");
  Elf64_Ehdr eh;
  std::memcpy(&eh, f.data(), sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64) throw bad("not ELF64");
  if (eh.e_phentsize != sizeof(Elf64_Phdr)) throw bad("unexpected program header size");
  const std::uint64_t end = eh.e_phoff + std::uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
  if (eh.e_phoff == 0 || end > f.size() || end < eh.e_phoff) throw bad("program headers out of the file");
  std::vector<Elf64_Phdr> out(eh.e_phnum);
  std::memcpy(out.data(), f.data() + eh.e_phoff, out.size() * sizeof(Elf64_Phdr));
  if (eh.e_machine != EM_X86_64) out.clear();  // nothing this decoder can read
  return out;
}

// The NT_GNU_BUILD_ID of the file, hex; empty when it has none.
[[maybe_unused]] std::string buildId(const MappedFile& f, const std::vector<Elf64_Phdr>& headers) {
  for (const Elf64_Phdr& p : headers) {
    if (p.p_type != PT_NOTE || p.p_offset > f.size() || p.p_filesz > f.size() - p.p_offset) continue;
    std::size_t at = p.p_offset;
    const std::size_t stop = p.p_offset + p.p_filesz;
    while (at + sizeof(Elf64_Nhdr) <= stop) {
      Elf64_Nhdr n;
      std::memcpy(&n, f.data() + at, sizeof n);
      // Rounded up to 4 in 64 bits: in the notes' 32 bits, a size near 2^32 wraps to 0.
      const std::uint64_t name_at = at + sizeof n;
      const std::uint64_t desc_at = name_at + ((std::uint64_t{n.n_namesz} + 3) & ~std::uint64_t{3});
      const std::uint64_t next = desc_at + ((std::uint64_t{n.n_descsz} + 3) & ~std::uint64_t{3});
      if (next > stop || next <= at) break;
      if (n.n_type == NT_GNU_BUILD_ID && n.n_namesz == 4 && std::memcmp(f.data() + name_at, "GNU", 4) == 0) {
        static const char kHex[] = "0123456789abcdef";
        std::string id;
        for (std::size_t i = 0; i < n.n_descsz; ++i) {
          id += kHex[f.data()[desc_at + i] >> 4];
          id += kHex[f.data()[desc_at + i] & 15];
        }
        return id;
      }
      at = next;
    }
  }
  return {};
}

#ifdef AOTIPLUG_HAVE_ZYDIS
// The /proc/cpuinfo flags an instruction of Zydis's ISA set needs, beyond x86-64's
// baseline; empty for the baseline and for sets no CPU flag stands for.
std::vector<const char*> flagsFor(std::string_view set) {
  if (set.rfind("AVX512", 0) == 0) {
    // "AVX512BW_256", "AVX512_BF16_512", "AVX512F_SCALAR", "AVX512DQ_KOP" ...
    std::vector<const char*> out;
    std::string_view base = set;
    const auto last = set.rfind('_');
    const std::string_view suffix = last == std::string_view::npos ? std::string_view() : set.substr(last + 1);
    if (suffix == "128" || suffix == "256" || suffix == "512" || suffix == "128N" || suffix == "SCALAR" ||
        suffix == "KOP") {
      base = set.substr(0, last);
      if (suffix == "128" || suffix == "256") out.push_back("avx512vl");
    }
    static const std::pair<const char*, const char*> kAvx512[] = {
        {"AVX512F", "avx512f"},          {"AVX512BW", "avx512bw"},
        {"AVX512DQ", "avx512dq"},        {"AVX512CD", "avx512cd"},
        {"AVX512ER", "avx512er"},        {"AVX512PF", "avx512pf"},
        {"AVX512_BF16", "avx512_bf16"},  {"AVX512_FP16", "avx512_fp16"},
        {"AVX512_VNNI", "avx512_vnni"},  {"AVX512_VBMI", "avx512vbmi"},
        {"AVX512_VBMI2", "avx512_vbmi2"}, {"AVX512_BITALG", "avx512_bitalg"},
        {"AVX512_VPOPCNTDQ", "avx512_vpopcntdq"}, {"AVX512_IFMA", "avx512ifma"},
        {"AVX512_GFNI", "gfni"},         {"AVX512_VAES", "vaes"},
        {"AVX512_VPCLMULQDQ", "vpclmulqdq"}, {"AVX512_VP2INTERSECT", "avx512_vp2intersect"},
        {"AVX512_4FMAPS", "avx512_4fmaps"}, {"AVX512_4VNNIW", "avx512_4vnniw"},
    };
    for (const auto& [name, flag] : kAvx512) {
      if (base == name) {
        out.push_back(flag);
        if (std::string_view(flag).rfind("avx512", 0) != 0) out.push_back("avx512f");
        return out;
      }
    }
    return {"avx512f"};  // an AVX-512 set this table does not know: at least the foundation
  }
  static const std::pair<const char*, std::vector<const char*>> kSets[] = {
      {"SSE3", {"pni"}},           {"SSE3X87", {"pni"}},        {"SSSE3", {"ssse3"}},
      {"SSSE3MMX", {"ssse3"}},     {"SSE4", {"sse4_1"}},        {"SSE42", {"sse4_2"}},
      {"SSE4A", {"sse4a"}},        {"POPCNT", {"popcnt"}},      {"LZCNT", {"abm"}},
      {"MOVBE", {"movbe"}},        {"AES", {"aes"}},            {"PCLMULQDQ", {"pclmulqdq"}},
      {"AVX", {"avx"}},            {"AVX2", {"avx2"}},          {"AVX2GATHER", {"avx2"}},
      {"AVXAES", {"avx", "aes"}},  {"FMA", {"fma"}},            {"FMA4", {"fma4"}},
      {"F16C", {"f16c"}},          {"BMI1", {"bmi1"}},          {"BMI2", {"bmi2"}},
      {"ADOX_ADCX", {"adx"}},      {"SHA", {"sha_ni"}},         {"GFNI", {"gfni"}},
      {"VAES", {"vaes"}},          {"VPCLMULQDQ", {"vpclmulqdq"}}, {"AVX_GFNI", {"avx", "gfni"}},
      {"AVX_VNNI", {"avx_vnni"}},  {"RDRAND", {"rdrand"}},      {"RDSEED", {"rdseed"}},
      {"RDPID", {"rdpid"}},        {"CLFLUSHOPT", {"clflushopt"}}, {"CLWB", {"clwb"}},
      {"XOP", {"xop"}},            {"TBM", {"tbm"}},            {"CMPXCHG16B", {"cx16"}},
      {"AMX_TILE", {"amx_tile"}},  {"AMX_BF16", {"amx_bf16"}},  {"AMX_INT8", {"amx_int8"}},
  };
  for (const auto& [name, flags] : kSets) {
    if (set == name) return flags;
  }
  return {};
}

std::set<std::string> decode(const MappedFile& f, const std::vector<Elf64_Phdr>& headers) {
  ZydisDecoder decoder;
  ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
  ZydisDecoderEnableMode(&decoder, ZYDIS_DECODER_MODE_MINIMAL, ZYAN_TRUE);
  bool seen[ZYDIS_ISA_SET_MAX_VALUE + 1] = {};
  for (const Elf64_Phdr& p : headers) {
    if (p.p_type != PT_LOAD || (p.p_flags & PF_X) == 0) continue;
    if (p.p_offset > f.size() || p.p_filesz > f.size() - p.p_offset) continue;
    const unsigned char* code = f.data() + p.p_offset;
    const std::size_t length = p.p_filesz;
    ZydisDecodedInstruction insn;
    for (std::size_t at = 0; at < length;) {
      if (ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&decoder, nullptr, code + at, length - at, &insn))) {
        if (insn.meta.isa_set <= ZYDIS_ISA_SET_MAX_VALUE) seen[insn.meta.isa_set] = true;
        at += insn.length;
      } else {
        ++at;  // padding or data between functions
      }
    }
  }
  std::set<std::string> out;
  for (int s = 0; s <= ZYDIS_ISA_SET_MAX_VALUE; ++s) {
    if (!seen[s]) continue;
    for (const char* flag : flagsFor(ZydisISASetGetString(static_cast<ZydisISASet>(s)))) out.insert(flag);
  }
  return out;
}
#endif

}  // namespace

std::optional<std::set<std::string>> cpuFeaturesUsedBy(const std::string& path) {
#ifndef AOTIPLUG_HAVE_ZYDIS
  (void)path;
  return std::nullopt;
#else
  const MappedFile file(path);
  const std::vector<Elf64_Phdr> headers = programHeaders(file, path);
  if (headers.empty()) return std::nullopt;  // not x86-64
  // Extracted libraries are new files each time; their build IDs are what repeat.
  static std::mutex mutex;
  static auto* cache = new std::map<std::string, std::set<std::string>>();  // never destroyed
  const std::string id = buildId(file, headers);
  const std::string key = id.empty() ? std::string() : id + ":" + std::to_string(file.size());
  if (!key.empty()) {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = cache->find(key); it != cache->end()) return it->second;
  }
  std::set<std::string> used = decode(file, headers);
  if (!key.empty()) {
    std::lock_guard<std::mutex> lock(mutex);
    cache->emplace(key, used);
  }
  return used;
#endif
}

}  // namespace aotiplug
