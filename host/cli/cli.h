// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Shared pieces of the aotiplug command-line tool: exit codes, where plugins and the demo
// live, output helpers. Each command lives in its own file (cmd_*.cpp).

#include <aotiplug/host/plugin_loader.h>

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>
#include <nlohmann/json.hpp>

#include <ATen/Tensor.h>

#include <signal.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace aotiplug::cli {

// Exit codes, documented in `aotiplug --help` and docs/cli.md.
enum ExitCode : int {
  kExitOk = 0,        // success
  kExitError = 1,     // the work failed: bad package, model or plugin error, I/O
  kExitUsage = 2,     // bad command line
  kExitCheck = 3,     // the work ran but a check failed: outputs differ from eager, a plugin
                      // was rejected, a plugin check found a problem
};

// The plugin directory to use when none is given: next to the executable, in the build
// tree (<build>/plugins) or the install tree (<prefix>/<libdir>/aotiplug/plugins). Never
// the current directory, never an environment variable.
std::string defaultPluginDir();

// The directory holding the running executable.
std::string executableDir();

// Loads the plugins of `dir` into `loader`; returns what happened.
DirectoryLoad loadPlugins(PluginLoader& loader, const std::string& dir);

// "float32 [2, 10]".
std::string describeTensor(const at::Tensor& t);

// FNV-1a 64 of a tensor's bytes (made contiguous, on the CPU), as 16 hex digits.
std::string tensorHash(const at::Tensor& t);

// FNV-1a (64-bit) of n bytes, continuing from h: the CLI's one content hash (tensor
// hashes, the demo package's cache key). Not for security.
inline constexpr std::uint64_t kFnvOffset = 1469598103934665603ULL;
std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h = kFnvOffset);

// Parses a command's arguments against `options` and one positional argument stored as
// `positional` (not shown in the help); prints the options and returns nullopt for --help.
// Throws boost::program_options::error for a bad command line (main() makes it exit 2).
std::optional<boost::program_options::variables_map> parseArguments(
    const boost::program_options::options_description& options, int argc, char** argv,
    const char* positional);

// A --device value: nothing when empty or a device string ("cpu", "cuda:1"); otherwise a
// boost::program_options::error naming it (exit 2: a typo is a bad command line). Call it
// once the plugins are loaded: a plugin may register a name for its own device type.
void requireDeviceSyntax(const std::string& device);

// Whether standard error is a terminal (progress indicators are shown only then).
bool stderrIsTerminal();

// For commands that extract packages: SIGINT, SIGTERM and SIGHUP are blocked in every
// thread (call it before any thread starts) and waited for by a thread of its own, which
// removes this process's extraction directories and then dies of the signal as the process
// would have. Child processes (runChild) start with the signals unblocked.
void removeExtractionsOnSignals();

// The commands. Each parses its own arguments (argv[0] is the command name).
int runPluginsCommand(int argc, char** argv);
int runRunCommand(int argc, char** argv);
int runPluginCheckCommand(int argc, char** argv);
int runInspectCommand(int argc, char** argv);

// Compiles the bundled demo model (models/demo.py) into cache_dir unless it is already
// there; returns the .pt2 path. Shows progress on standard error.
std::string ensureDemoPackage(const std::string& cache_dir);

}  // namespace aotiplug::cli
