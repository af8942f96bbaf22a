// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::missingShimFunctions — the LibTorch C shim functions a model library calls that
// this process does not provide.
//
// A model library calls LibTorch through its C shim (aoti_torch_*). Each torch release adds
// shim functions, and changes old ones by adding versioned successors (..._v2): a library
// compiled by a newer torch may call functions the host's LibTorch lacks. dlopen would
// then fail with "undefined symbol: <one name>" and nothing else. ModelLibrary checks first:
// it reads the library's dynamic symbol table (bounds-checked, before anything is mapped
// or run) and looks up every undefined, non-weak aoti_torch_* symbol in the process, so the
// error lists what is missing and says which LibTorch this is.
//
// Thread safety: reentrant. Never throws.

#include <dlfcn.h>
#include <elf.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace aotiplug {

// The undefined, non-weak symbols of the ELF shared object at `path` whose names start with
// `prefix`, sorted; empty when there are none or the file has no readable dynamic symbol
// table (checkElfImage reports broken files).
inline std::vector<std::string> undefinedSymbols(const std::string& path,
                                                 const std::string& prefix) noexcept {
  try {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) return {};
    const std::uint64_t size = static_cast<std::uint64_t>(in.tellg());
    const auto read = [&](std::uint64_t offset, void* out, std::uint64_t n) {
      if (offset > size || n > size - offset) return false;
      in.seekg(static_cast<std::streamoff>(offset));
      in.read(static_cast<char*>(out), static_cast<std::streamsize>(n));
      return static_cast<bool>(in);
    };
    Elf64_Ehdr eh{};
    if (!read(0, &eh, sizeof eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0) {
      return {};
    }
    std::vector<Elf64_Shdr> sections(eh.e_shnum);
    if (!read(eh.e_shoff, sections.data(), sizeof(Elf64_Shdr) * sections.size())) return {};
    std::set<std::string> out;
    for (const Elf64_Shdr& s : sections) {
      if (s.sh_type != SHT_DYNSYM || s.sh_entsize != sizeof(Elf64_Sym) || s.sh_link >= sections.size()) continue;
      const Elf64_Shdr& strtab = sections[s.sh_link];
      if (strtab.sh_size > (std::uint64_t{64} << 20) || s.sh_size > (std::uint64_t{64} << 20)) return {};
      std::string names(strtab.sh_size, '\0');
      std::vector<Elf64_Sym> symbols(s.sh_size / sizeof(Elf64_Sym));
      if (!read(strtab.sh_offset, names.data(), names.size()) ||
          !read(s.sh_offset, symbols.data(), sizeof(Elf64_Sym) * symbols.size())) {
        return {};
      }
      for (const Elf64_Sym& sym : symbols) {
        if (sym.st_shndx != SHN_UNDEF || ELF64_ST_BIND(sym.st_info) == STB_WEAK || sym.st_name >= names.size()) {
          continue;
        }
        const char* name = names.c_str() + sym.st_name;  // names ends in NUL: bounded
        if (std::strncmp(name, prefix.c_str(), prefix.size()) == 0) out.insert(name);
      }
    }
    return {out.begin(), out.end()};
  } catch (...) {
    return {};
  }
}

// The aoti_torch_* functions the model library at `path` needs that no library loaded in
// this process exports, sorted.
inline std::vector<std::string> missingShimFunctions(const std::string& path) noexcept {
  std::vector<std::string> missing;
  try {
    for (const std::string& name : undefinedSymbols(path, "aoti_torch_")) {
      if (::dlsym(RTLD_DEFAULT, name.c_str()) == nullptr) missing.push_back(name);
    }
  } catch (...) {
  }
  return missing;
}

}  // namespace aotiplug
