// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::checkElfImage — is this file safe to hand to dlopen?
//
// glibc's dlopen trusts the program headers: it maps each PT_LOAD segment as the file
// describes it, so a library cut short (a partial copy, a full disk) is mapped past its end
// and the process dies with SIGBUS while the loader applies relocations — no error is
// returned. checkElfImage reads the ELF and program headers and verifies that every
// segment lies inside the file, so such a file becomes an error message instead; and that
// the section header table, which linkers write last, is there too (a copy cut short past
// the loadable segments would load, and be a broken file all the same).
//
// Used before loading model libraries (ModelLibrary) and plugins (the host's loader).
// Thread safety: reentrant. Never throws.

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace aotiplug {

// Empty when the file at `path` is a 64-bit ELF shared object whose loadable segments lie
// within the file; otherwise why not (without the path, which callers add).
inline std::string checkElfImage(const std::string& path) noexcept {
  try {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) return "cannot open the file";
    const std::uint64_t size = static_cast<std::uint64_t>(in.tellg());
    Elf64_Ehdr eh{};
    if (size < sizeof eh) return "file too short for an ELF header (" + std::to_string(size) + " bytes)";
    in.seekg(0);
    in.read(reinterpret_cast<char*>(&eh), sizeof eh);
    if (!in || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return "invalid ELF header";
    if (eh.e_ident[EI_CLASS] != ELFCLASS64) return "not a 64-bit ELF file";
    if (eh.e_type != ET_DYN) return "not a shared object (ELF type " + std::to_string(eh.e_type) + ")";
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0) return "no usable program headers";
    const std::uint64_t table_end =
        static_cast<std::uint64_t>(eh.e_phoff) + std::uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
    if (eh.e_phoff == 0 || table_end > size) {
      return "truncated: program headers end at byte " + std::to_string(table_end) +
             ", the file has " + std::to_string(size);
    }
    std::vector<Elf64_Phdr> ph(eh.e_phnum);
    in.seekg(static_cast<std::streamoff>(eh.e_phoff));
    in.read(reinterpret_cast<char*>(ph.data()),
            static_cast<std::streamsize>(ph.size() * sizeof(Elf64_Phdr)));
    if (!in) return "cannot read the program headers";
    for (const Elf64_Phdr& p : ph) {
      if (p.p_type != PT_LOAD && p.p_type != PT_DYNAMIC) continue;
      const std::uint64_t end = p.p_offset + p.p_filesz;
      if (end < p.p_offset || end > size) {
        return "truncated: a segment ends at byte " + std::to_string(end) + ", the file has " +
               std::to_string(size);
      }
    }
    // The section headers come last: a file cut short past its loadable segments (they may
    // be a small part of it, e.g. before debug sections) loses them, and is a broken copy.
    if (eh.e_shoff != 0 && eh.e_shnum != 0) {
      const std::uint64_t sections_end =
          static_cast<std::uint64_t>(eh.e_shoff) + std::uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr);
      if (eh.e_shentsize != sizeof(Elf64_Shdr) || sections_end < eh.e_shoff || sections_end > size) {
        return "truncated: section headers end at byte " + std::to_string(sections_end) +
               ", the file has " + std::to_string(size);
      }
    }
    return {};
  } catch (...) {
    return "cannot read the file";
  }
}

}  // namespace aotiplug
