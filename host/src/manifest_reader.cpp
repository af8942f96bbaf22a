// SPDX-License-Identifier: BSD-3-Clause
#include <aotiplug/host/manifest_reader.h>

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <mutex>

namespace aotiplug {

const char* manifestReadStatusName(ManifestReadStatus status) noexcept {
  switch (status) {
    case ManifestReadStatus::kOk: return "ok";
    case ManifestReadStatus::kIoError: return "io error";
    case ManifestReadStatus::kNotElf: return "not a shared library";
    case ManifestReadStatus::kTruncated: return "truncated";
    case ManifestReadStatus::kNotSharedLibrary: return "not a shared library";
    case ManifestReadStatus::kNoManifest: return "no manifest";
    case ManifestReadStatus::kBadManifest: return "bad manifest";
  }
  return "unknown";
}

namespace {

ManifestReadResult failure(ManifestReadStatus status, std::string message) {
  ManifestReadResult r;
  r.status = status;
  r.message = std::move(message);
  return r;
}

void initLibelf() {
  static std::once_flag once;
  std::call_once(once, [] { elf_version(EV_CURRENT); });
}

struct ElfCloser {
  void operator()(Elf* e) const noexcept { elf_end(e); }
};

const char* machineName(unsigned machine) {
  switch (machine) {
    case EM_X86_64: return "x86-64";
    case EM_AARCH64: return "aarch64";
    case EM_386: return "i386";
    case EM_ARM: return "arm";
    case EM_PPC64: return "ppc64";
    case EM_RISCV: return "riscv";
    default: return "another machine";
  }
}

const char* typeName(unsigned type) {
  switch (type) {
    case ET_REL: return "a relocatable object";
    case ET_EXEC: return "an executable";
    case ET_CORE: return "a core dump";
    default: return "an unknown ELF type";
  }
}

// Parses an ELF handle; `size` is the image size, to tell truncation from corruption.
ManifestReadResult parse(Elf* elf, std::size_t size) {
  if (elf == nullptr) {
    return failure(ManifestReadStatus::kNotElf,
                   std::string("not an ELF file (") + elf_errmsg(-1) + ")");
  }
  if (elf_kind(elf) != ELF_K_ELF) {
    return failure(ManifestReadStatus::kNotElf, "not an ELF file (no ELF header)");
  }
  GElf_Ehdr ehdr;
  if (gelf_getehdr(elf, &ehdr) == nullptr) {
    return failure(ManifestReadStatus::kTruncated,
                   std::string("truncated ELF file: the ELF header is incomplete (") +
                       elf_errmsg(-1) + ")");
  }
  if (gelf_getclass(elf) != ELFCLASS64 || ehdr.e_machine != EM_X86_64) {
    return failure(ManifestReadStatus::kNotSharedLibrary,
                   std::string("ELF file built for ") + machineName(ehdr.e_machine) +
                       (gelf_getclass(elf) != ELFCLASS64 ? " (32-bit)" : "") +
                       ", this host is x86-64");
  }
  if (ehdr.e_type != ET_DYN) {
    return failure(ManifestReadStatus::kNotSharedLibrary,
                   std::string("ELF file is ") + typeName(ehdr.e_type) +
                       ", not a shared library");
  }
  // The section header table sits at the end of a linked library: a file cut short loses
  // it first.
  const unsigned long long table_end =
      static_cast<unsigned long long>(ehdr.e_shoff) +
      static_cast<unsigned long long>(ehdr.e_shnum) * ehdr.e_shentsize;
  if (ehdr.e_shoff == 0 || table_end > size) {
    return failure(ManifestReadStatus::kTruncated,
                   "truncated ELF file: " + std::to_string(size) +
                       " bytes, but its section headers end at byte " +
                       std::to_string(table_end));
  }
  std::size_t shstrndx = 0;
  if (elf_getshdrstrndx(elf, &shstrndx) != 0) {
    return failure(ManifestReadStatus::kTruncated,
                   std::string("corrupt ELF file: no section name table (") + elf_errmsg(-1) +
                       ")");
  }
  bool saw_section = false;
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) continue;
    const char* name = elf_strptr(elf, shstrndx, shdr.sh_name);
    if (name == nullptr || std::strcmp(name, kManifestSectionName) != 0) continue;
    saw_section = true;
    if (shdr.sh_type != SHT_NOTE) {
      return failure(ManifestReadStatus::kBadManifest,
                     std::string("section ") + kManifestSectionName + " is not a note section");
    }
    if (static_cast<unsigned long long>(shdr.sh_offset) + shdr.sh_size > size) {
      return failure(ManifestReadStatus::kTruncated,
                     std::string("truncated ELF file: section ") + kManifestSectionName +
                         " extends past the end of the file");
    }
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (data == nullptr || data->d_buf == nullptr) {
      return failure(ManifestReadStatus::kBadManifest,
                     std::string("cannot read section ") + kManifestSectionName + " (" +
                         elf_errmsg(-1) + ")");
    }
    std::size_t offset = 0;
    GElf_Nhdr nhdr;
    std::size_t name_offset = 0;
    std::size_t desc_offset = 0;
    while (offset < data->d_size) {
      std::size_t next = gelf_getnote(data, offset, &nhdr, &name_offset, &desc_offset);
      if (next == 0 || next <= offset) break;
      const char* base = static_cast<const char*>(data->d_buf);
      const bool ours = nhdr.n_type == kManifestNoteType &&
                        nhdr.n_namesz == sizeof(kManifestNoteOwner) &&
                        std::memcmp(base + name_offset, kManifestNoteOwner,
                                    sizeof(kManifestNoteOwner)) == 0;
      if (ours) {
        std::string why;
        auto manifest = decodeManifest(base + desc_offset, nhdr.n_descsz, &why);
        if (!manifest) return failure(ManifestReadStatus::kBadManifest, "bad manifest: " + why);
        ManifestReadResult ok;
        ok.status = ManifestReadStatus::kOk;
        ok.manifest = std::move(manifest);
        return ok;
      }
      offset = next;
    }
  }
  return failure(ManifestReadStatus::kNoManifest,
                 saw_section ? std::string("section ") + kManifestSectionName +
                                   " holds no aotiplug note"
                             : std::string("no aotiplug manifest (no ") +
                                   kManifestSectionName +
                                   " section): not built with AOTIPLUG_PLUGIN");
}

}  // namespace

ManifestReadResult readManifestFromMemory(const void* data, std::size_t size) {
  initLibelf();
  if (size < EI_NIDENT || std::memcmp(data, ELFMAG, SELFMAG) != 0) {
    return failure(ManifestReadStatus::kNotElf,
                   "not an ELF file (invalid ELF header" +
                       std::string(size < EI_NIDENT ? ", file too short" : "") + ")");
  }
  // libelf takes a non-const pointer but only reads with ELF_C_READ semantics here.
  std::unique_ptr<Elf, ElfCloser> elf(
      elf_memory(static_cast<char*>(const_cast<void*>(data)), size));
  return parse(elf.get(), size);
}

ManifestReadResult readManifest(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return failure(ManifestReadStatus::kIoError,
                   "cannot open: " + std::string(std::strerror(errno)));
  }
  ManifestReadResult result = readManifest(fd);
  ::close(fd);
  return result;
}

ManifestReadResult readManifest(int fd) {
  initLibelf();
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return failure(ManifestReadStatus::kIoError,
                   "cannot stat: " + std::string(std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return failure(ManifestReadStatus::kIoError, "not a regular file");
  }
  const std::size_t size = static_cast<std::size_t>(st.st_size);
  unsigned char ident[EI_NIDENT] = {};
  const ssize_t got = ::pread(fd, ident, sizeof ident, 0);
  if (got < static_cast<ssize_t>(SELFMAG) || std::memcmp(ident, ELFMAG, SELFMAG) != 0) {
    return failure(ManifestReadStatus::kNotElf,
                   std::string("not a shared library: invalid ELF header") +
                       (size < EI_NIDENT ? " (file too short)" : ""));
  }
  // ELF_C_READ (not _MMAP): a file truncated under us must not SIGBUS the host.
  std::unique_ptr<Elf, ElfCloser> elf(elf_begin(fd, ELF_C_READ, nullptr));
  return parse(elf.get(), size);
}

std::vector<std::string> runpathDependencies(int fd, const std::string& origin, TrustMemo* memo) {
  initLibelf();
  std::vector<std::string> needed, dirs;
  std::unique_ptr<Elf, ElfCloser> elf(elf_begin(fd, ELF_C_READ, nullptr));
  if (elf == nullptr || elf_kind(elf.get()) != ELF_K_ELF) return {};
  bool runpath = false;
  std::vector<std::string> rpath_dirs, runpath_dirs;
  const auto split = [&](const std::string& list, std::vector<std::string>& out) {
    std::size_t start = 0;
    while (start <= list.size()) {
      const auto colon = list.find(':', start);
      std::string dir = list.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
      for (const char* token : {"${ORIGIN}", "$ORIGIN"}) {
        for (std::size_t at; (at = dir.find(token)) != std::string::npos;) dir.replace(at, std::strlen(token), origin);
      }
      if (!dir.empty() && dir.find('$') == std::string::npos) out.push_back(dir);  // $LIB, $PLATFORM: not followed
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  };
  for (Elf_Scn* scn = elf_nextscn(elf.get(), nullptr); scn != nullptr; scn = elf_nextscn(elf.get(), scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr || shdr.sh_type != SHT_DYNAMIC || shdr.sh_entsize == 0) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (data == nullptr) continue;
    const std::size_t count = shdr.sh_size / shdr.sh_entsize;
    for (std::size_t i = 0; i < count; ++i) {
      GElf_Dyn dyn;
      if (gelf_getdyn(data, static_cast<int>(i), &dyn) == nullptr || dyn.d_tag == DT_NULL) break;
      if (dyn.d_tag != DT_NEEDED && dyn.d_tag != DT_RUNPATH && dyn.d_tag != DT_RPATH) continue;
      const char* text = elf_strptr(elf.get(), shdr.sh_link, dyn.d_un.d_val);
      if (text == nullptr) continue;
      if (dyn.d_tag == DT_NEEDED) needed.emplace_back(text);
      if (dyn.d_tag == DT_RUNPATH) {
        runpath = true;
        split(text, runpath_dirs);
      }
      if (dyn.d_tag == DT_RPATH) split(text, rpath_dirs);
    }
  }
  // The loader ignores DT_RPATH when DT_RUNPATH is there.
  dirs = runpath ? runpath_dirs : rpath_dirs;
  std::vector<std::string> out;
  for (const std::string& name : needed) {
    if (name.find('/') != std::string::npos) {
      out.push_back(name);  // a path in DT_NEEDED is used as it is
      continue;
    }
    for (const std::string& dir : dirs) {
      const std::string candidate = dir + "/" + name;
      if (memo != nullptr) {
        if (const std::string& resolved = memo->resolvedFile(candidate); !resolved.empty()) {
          out.push_back(resolved);
          break;
        }
        continue;
      }
      struct stat st {};
      if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        char resolved[PATH_MAX];
        out.push_back(::realpath(candidate.c_str(), resolved) != nullptr ? std::string(resolved) : candidate);
        break;
      }
    }
  }
  return out;
}

}  // namespace aotiplug
