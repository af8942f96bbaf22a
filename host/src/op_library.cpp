// SPDX-License-Identifier: BSD-3-Clause
#include <aotiplug/host/op_library.h>

#include <aotiplug/detail/op_library_loader.h>
#include <aotiplug/error.h>
#include <aotiplug/host/manifest_reader.h>
#include <aotiplug/host/path_trust.h>
#include <aotiplug/runner/elf_image_check.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

namespace aotiplug {

namespace {
std::mutex& opLibraryMutex() {
  static std::mutex m;
  return m;
}
std::vector<std::string>& opLibraries() {
  static std::vector<std::string>* v = new std::vector<std::string>();  // never unloaded
  return *v;
}

// What executors load ExecutorConfig::opLibraries with (detail/op_library_loader.h),
// installed while this library is loaded. Only stores a pointer: cannot throw.
void loadForExecutors(const std::string& path, bool require_trusted_paths) {
  OpLibraryOptions options;
  options.require_trusted_paths = require_trusted_paths;
  loadOpLibrary(path, options);
}
[[maybe_unused]] const bool kLoaderInstalled = (detail::setOpLibraryLoader(&loadForExecutors), true);
}  // namespace

void loadOpLibrary(const std::string& path, const OpLibraryOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path resolved = fs::canonical(fs::absolute(path, ec), ec);
  if (ec || !fs::is_regular_file(resolved, ec)) {
    throw Error(StatusCode::kNotFound, "op library " + path + " does not exist");
  }
  const std::string file = resolved.string();
  std::lock_guard<std::mutex> lock(opLibraryMutex());
  auto& loaded = opLibraries();
  if (std::find(loaded.begin(), loaded.end(), file) != loaded.end()) return;

  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(StatusCode::kNotFound, "cannot open op library " + file + ": " + std::strerror(errno));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (options.require_trusted_paths) {
    const TrustCheck trust = checkTrustedFile(fd, file, "op library");
    if (!trust.ok()) {
      throw Error(StatusCode::kFailedPrecondition,
                  "op library " + file + " was not loaded: " + trust.reason);
    }
    for (const std::string& dependency : runpathDependencies(fd, resolved.parent_path().string())) {
      if (std::string why = checkTrustedPath(dependency, "library"); !why.empty()) {
        throw Error(StatusCode::kFailedPrecondition,
                    "op library " + file + " was not loaded: " + why +
                        " (a library it takes from its RUNPATH)");
      }
    }
  }
  if (std::string why = checkElfImage("/proc/self/fd/" + std::to_string(fd)); !why.empty()) {
    throw Error(StatusCode::kInvalidArgument, "op library " + file + " was not loaded: " + why);
  }
  // A runner plugin loaded as an op library would register its runners in this process
  // without the plugin loader's checks (manifest, compatibility, the child-process scan).
  if (const ManifestReadResult manifest = readManifest(file);
      manifest.status == ManifestReadStatus::kOk || manifest.status == ManifestReadStatus::kBadManifest) {
    throw Error(StatusCode::kInvalidArgument,
                "op library " + file + " was not loaded: it is an aotiplug plugin" +
                    (manifest.manifest ? " ('" + manifest.manifest->name + "')" : std::string()) +
                    ", which is loaded from a plugin directory, where it is checked first (--plugins DIR)");
  }
  if (::dlopen(file.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    const char* error = ::dlerror();
    std::string why = error != nullptr ? error : "dlopen failed";
    if (why.find("libtorch_python") != std::string::npos) {
      // torchvision's wheel ships its ops in _C.so, a Python extension module.
      why += " (it is a Python extension module, which needs a Python interpreter's "
             "libtorch_python.so; a C++ host needs the library built for C++, e.g. "
             "torchvision's CMake build of its ops)";
    }
    throw Error(StatusCode::kInvalidArgument, "op library " + file + " was not loaded: " + why);
  }
  loaded.push_back(file);
}

std::vector<std::string> loadedOpLibraries() {
  std::lock_guard<std::mutex> lock(opLibraryMutex());
  return opLibraries();
}

}  // namespace aotiplug
