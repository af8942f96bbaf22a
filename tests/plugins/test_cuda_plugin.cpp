// SPDX-License-Identifier: BSD-3-Clause
// The CUDA runner plugin on any machine: it links no CUDA runtime of its own, loads and
// registers without a GPU, and then refuses to create runners with a clear error. (On a
// GPU machine, tests/gpu/ runs real CUDA models through it.)
#define BOOST_TEST_MODULE cuda_plugin
#include <boost/test/unit_test.hpp>

#include "../common/fixtures.h"
#include "../common/build_plugins.h"
#include "../common/package_edit.h"

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/host/plugin_loader.h>
#include <aotiplug/registry/runner_registry.h>

#include <c10/cuda/CUDAFunctions.h>

#include <gelf.h>
#include <libelf.h>

#include <fcntl.h>
#include <unistd.h>

namespace {

using aotiplug::StatusCode;
using aotiplug_test::expectError;
namespace fs = std::filesystem;

fs::path cudaPlugin() { return aotiplug_test::buildRoot() / "plugins" / "cuda" / "libaotiplug_cuda.so"; }

std::vector<std::string> neededLibraries(const fs::path& path) {
  elf_version(EV_CURRENT);
  std::vector<std::string> out;
  const int fd = ::open(path.c_str(), O_RDONLY);
  BOOST_REQUIRE(fd >= 0);
  Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr || shdr.sh_type != SHT_DYNAMIC) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    for (std::size_t i = 0; i < shdr.sh_size / shdr.sh_entsize; ++i) {
      GElf_Dyn dyn;
      if (gelf_getdyn(data, static_cast<int>(i), &dyn) != nullptr && dyn.d_tag == DT_NEEDED) {
        out.emplace_back(elf_strptr(elf, shdr.sh_link, dyn.d_un.d_val));
      }
    }
  }
  elf_end(elf);
  ::close(fd);
  return out;
}

using BuildPlugins = aotiplug_test::BuildPlugins;
BOOST_TEST_GLOBAL_FIXTURE(BuildPlugins);

// A precondition: these cases are about a machine without a GPU (tests/gpu/ covers one
// with), and report themselves skipped elsewhere.
boost::test_tools::assertion_result noGpu(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result r(c10::cuda::device_count() == 0);
  r.message() << "this machine has a GPU: tests/gpu/ covers it";
  return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(links_libtorchs_cuda_libraries_and_no_cuda_runtime_of_its_own) {
  const auto needed = neededLibraries(cudaPlugin());
  std::string all;
  for (const auto& n : needed) all += n + " ";
  BOOST_TEST_MESSAGE("NEEDED: " << all);
  BOOST_TEST(aotiplug_test::contains(all, "libc10_cuda.so"));
  BOOST_TEST(aotiplug_test::contains(all, "libtorch_cuda.so"));
  for (const auto& n : needed) {
    BOOST_TEST(n.rfind("libcudart", 0) != 0, "links a CUDA runtime: " << n);
  }
}

BOOST_AUTO_TEST_CASE(loads_and_registers_for_cuda_on_any_machine) {
  auto winner = aotiplug::runnerRegistry().winner(c10::DeviceType::CUDA);
  BOOST_REQUIRE(winner.has_value());
  BOOST_TEST(winner->origin.plugin == "cuda");
}

BOOST_AUTO_TEST_CASE(refuses_device_strings_that_are_not_cuda) {
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("mlp");
  expectError([&] {
    aotiplug::createRunner(c10::DeviceType::CUDA, f.so.string(), 1, "cpu", "", false);
  }, StatusCode::kInvalidArgument, {"plugin 'cuda'", "serves 'cuda' and 'cuda:N'", "'cpu'"});
}

BOOST_AUTO_TEST_CASE(without_a_gpu_creating_a_runner_says_no_cuda_device,
                     *boost::unit_test::precondition(noGpu)) {
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("mlp");
  for (const char* device : {"cuda", "cuda:0", "cuda:3"}) {
    expectError([&] { aotiplug::createRunner(f.so.string(), 1, device, "", false); },
                StatusCode::kUnavailable,
                {"plugin 'cuda'", "no CUDA device is available", std::string("'") + device + "'"});
  }
}

BOOST_AUTO_TEST_CASE(without_a_gpu_a_cuda_package_fails_the_same_clear_way,
                     *boost::unit_test::precondition(noGpu)) {
  aotiplug_test::Fixture f = aotiplug_test::loadFixture("mlp");
  aotiplug_test::TempDir dir;
  const fs::path cuda_package = dir.path() / "cuda_model.pt2";
  aotiplug_test::rewritePackage(f.pt2, cuda_package,
                                aotiplug_test::replaceIn("_metadata.json", "\"AOTI_DEVICE_KEY\": \"cpu\"",
                                                         "\"AOTI_DEVICE_KEY\": \"cuda\""));
  aotiplug::ExecutorConfig config;
  config.extractionDir = dir.str();
  expectError([&] { aotiplug::AOTIDelegateExecutor(cuda_package.string(), nullptr, config); },
              StatusCode::kUnavailable, {"plugin 'cuda'", "no CUDA device is available", "'cuda'"});
  std::size_t left = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) left += e.path() != cuda_package ? 1 : 0;
  BOOST_TEST(left == 0u, "the failed load removed its extracted files");
}
