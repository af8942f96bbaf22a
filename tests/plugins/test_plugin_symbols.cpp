// SPDX-License-Identifier: BSD-3-Clause
// Every plugin this project builds (ours, the test plugins, the benchmark's) is checked for what makes a
// plugin library dangerous to load and unload: STB_GNU_UNIQUE symbols (glibc then never
// unloads it, silently) and exported symbols (a plugin needs none; exported ones can
// interpose on the host's). The plugin paths are the test's arguments.
#define BOOST_TEST_MODULE plugin_symbols
#include <boost/test/unit_test.hpp>

#include <gelf.h>
#include <libelf.h>

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace {

struct Symbols {
  std::vector<std::string> unique;
  std::vector<std::string> exported;  // defined, global or weak, default visibility
};

Symbols dynamicSymbols(const std::string& path) {
  elf_version(EV_CURRENT);
  Symbols out;
  const int fd = ::open(path.c_str(), O_RDONLY);
  BOOST_REQUIRE_MESSAGE(fd >= 0, "cannot open " << path);
  Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
  BOOST_REQUIRE(elf != nullptr);
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr || shdr.sh_type != SHT_DYNSYM) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    const std::size_t count = shdr.sh_entsize == 0 ? 0 : shdr.sh_size / shdr.sh_entsize;
    for (std::size_t i = 0; i < count; ++i) {
      GElf_Sym sym;
      if (gelf_getsym(data, static_cast<int>(i), &sym) == nullptr) continue;
      const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
      const std::string n = name != nullptr ? name : "";
      const int binding = GELF_ST_BIND(sym.st_info);
      if (binding == STB_GNU_UNIQUE) out.unique.push_back(n);
      const bool defined = sym.st_shndx != SHN_UNDEF;
      if (defined && (binding == STB_GLOBAL || binding == STB_WEAK || binding == STB_GNU_UNIQUE) &&
          GELF_ST_VISIBILITY(sym.st_other) == STV_DEFAULT) {
        out.exported.push_back(n);
      }
    }
  }
  elf_end(elf);
  ::close(fd);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(no_plugin_has_unique_symbols_or_exports_anything) {
  const auto& args = boost::unit_test::framework::master_test_suite().argv;
  const int argc = boost::unit_test::framework::master_test_suite().argc;
  BOOST_REQUIRE_MESSAGE(argc > 1, "pass the plugin libraries as arguments");
  for (int i = 1; i < argc; ++i) {
    const std::string path = args[i];
    BOOST_TEST_CONTEXT(path) {
      const Symbols s = dynamicSymbols(path);
      BOOST_TEST(s.unique.empty(), s.unique.size() << " STB_GNU_UNIQUE symbol(s), e.g. "
                                                     << (s.unique.empty() ? "" : s.unique[0]));
      BOOST_TEST(s.exported.empty(), s.exported.size() << " exported symbol(s), e.g. "
                                                        << (s.exported.empty() ? "" : s.exported[0]));
    }
  }
}
