// SPDX-License-Identifier: BSD-3-Clause
// The docs cannot rot: every ```sh block in README.md and docs/*.md is either run here, as
// a bash script per file (from a scratch directory where `build`, `examples` and `.venv`
// point at this build, the sources and this build's venv), or consists only of commands that .ci/run runs itself, or
// is marked long-running (the line before it is `<!-- long-running -->`: sanitizer builds,
// fuzzing, benchmarks take far longer than a test may) and then consists only of `./dev`
// subcommands that `./dev help` documents.
#define BOOST_TEST_MODULE docs
#include <boost/test/unit_test.hpp>

#include "../common/test_support.h"

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using aotiplug_test::contains;

struct Block {
  int line = 0;
  bool long_running = false;
  std::vector<std::string> commands;  // non-empty, non-comment lines
  std::string text;
};

std::vector<Block> shellBlocks(const fs::path& markdown) {
  std::istringstream in(aotiplug_test::readFile(markdown));
  std::vector<Block> blocks;
  bool inside = false;
  int number = 0;
  std::string previous;  // the last non-blank line outside a block
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (!inside && line.rfind("```sh", 0) == 0) {
      inside = true;
      blocks.push_back(Block{number, previous == "<!-- long-running -->", {}, {}});
      continue;
    }
    if (!inside && line.find_first_not_of(" \t") != std::string::npos) previous = line;
    if (inside && line.rfind("```", 0) == 0) {
      inside = false;
      continue;
    }
    if (!inside) continue;
    blocks.back().text += line + "\n";
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    std::string command = line.substr(first, line.find(" #") == std::string::npos
                                                 ? std::string::npos
                                                 : line.find(" #") - first);
    command.erase(command.find_last_not_of(" \t") + 1);  // without a trailing comment
    blocks.back().commands.push_back(command);
  }
  return blocks;
}

std::vector<std::string> ciCommands() {
  std::istringstream in(aotiplug_test::readFile(aotiplug_test::sourceRoot() / ".ci" / "run"));
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(" \t");
    if (first != std::string::npos && line[first] != '#') out.push_back(line.substr(first));
  }
  return out;
}

// A long-running block's commands are `./dev SUB ...` with SUB listed by `./dev help`.
std::string undocumentedDevCommand(const Block& b, const std::string& help) {
  if (b.commands.empty()) return "(an empty block)";
  for (const std::string& c : b.commands) {
    if (c.rfind("./dev ", 0) != 0) return c;
    const std::string sub = c.substr(6, c.find(' ', 6) == std::string::npos ? std::string::npos : c.find(' ', 6) - 6);
    if (!contains(help, "  ./dev " + sub)) return c;
  }
  return {};
}

bool runByCi(const Block& b, const std::vector<std::string>& ci) {
  return !b.commands.empty() && std::all_of(b.commands.begin(), b.commands.end(), [&](const std::string& c) {
    return std::find(ci.begin(), ci.end(), c) != ci.end();
  });
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_shell_block_in_the_docs_runs) {
  const fs::path source = aotiplug_test::sourceRoot();
  std::vector<fs::path> files = {source / "README.md"};
  for (const auto& e : fs::directory_iterator(source / "docs")) {
    if (e.path().extension() == ".md") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  const auto ci = ciCommands();
  const auto help = aotiplug_test::runCommand({(source / "dev").string(), "help"});
  BOOST_TEST_REQUIRE(help.exit_code == 0, "./dev help: exit " << help.exit_code << "\n" << help.err);
  int run_blocks = 0, ci_blocks = 0, long_blocks = 0;
  for (const fs::path& md : files) {
    std::string script = "set -euo pipefail\n";
    int here = 0;
    for (const Block& b : shellBlocks(md)) {
      if (runByCi(b, ci)) {
        ++ci_blocks;
        continue;
      }
      if (b.long_running) {
        const std::string bad = undocumentedDevCommand(b, help.out);
        BOOST_TEST(bad.empty(), md.filename().string() << ":" << b.line
                                    << ": a long-running block may only hold `./dev` subcommands "
                                       "that `./dev help` lists, not: "
                                    << bad);
        ++long_blocks;
        continue;
      }
      script += "# " + md.filename().string() + ":" + std::to_string(b.line) + "\n" + b.text;
      ++here;
    }
    if (here == 0) continue;
    run_blocks += here;
    BOOST_TEST_CONTEXT(md.filename().string()) {
      aotiplug_test::TempDir work("aotiplug-docs-");
      fs::create_directory_symlink(aotiplug_test::buildRoot(), work.path() / "build");
      fs::create_directory_symlink(source / "examples", work.path() / "examples");
      // The venv this build uses (with the packager's command), as `.venv` in the README.
      fs::create_directory_symlink(aotiplug_test::requireEnv("AOTIPLUG_VENV"), work.path() / ".venv");
      aotiplug_test::writeFile(work.path() / "script.sh", script);
      const auto r = aotiplug_test::runCommand(
          {"bash", "-c", "cd " + aotiplug_test::shellQuote(work.str()) + " && bash script.sh"});
      BOOST_TEST(r.exit_code == 0, "exit " << r.exit_code << "\n--- script\n" << script
                                            << "--- stdout\n" << r.out << "--- stderr\n" << r.err);
      BOOST_TEST_MESSAGE(md.filename().string() << ": " << here << " block(s) ran");
    }
  }
  BOOST_TEST_MESSAGE(run_blocks << " block(s) run here, " << ci_blocks << " run by .ci/run, "
                                << long_blocks << " long-running checked against ./dev help");
  BOOST_TEST(run_blocks > 0);
}

namespace {

// The SDK's headers on disk, by path under sdk/include/aotiplug/ ("runner/runner.h").
std::set<std::string> sdkHeadersOnDisk(const fs::path& source) {
  const fs::path root = source / "sdk" / "include" / "aotiplug";
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file() && e.path().extension() == ".h") {
      out.insert(e.path().lexically_relative(root).generic_string());
    }
  }
  out.insert("version.h");  // generated from version.h.in
  return out;
}

// The table of docs/architecture.md's "The SDK's headers": every `x.h` of a row, with the
// row's folder in front ("(top)" rows have none).
std::set<std::string> headersTheArchitectureLists(const fs::path& source) {
  std::istringstream in(aotiplug_test::readFile(source / "docs" / "architecture.md"));
  std::set<std::string> out;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("## ", 0) == 0) inside = line == "## The SDK's headers";
    if (!inside || line.rfind("| ", 0) != 0) continue;
    const auto cells = line.find(" | ", 2);
    if (cells == std::string::npos) continue;
    std::string folder = line.substr(2, cells - 2);
    if (folder.size() > 2 && folder.front() == '`') folder = folder.substr(1, folder.size() - 2);
    else if (folder == "(top)") folder.clear();
    else continue;  // the header row
    const std::string rest = line.substr(line.rfind(" | ", line.size() - 3) + 3);
    static const std::regex header("`([a-z0-9_]+\\.h)`");
    for (std::sregex_iterator m(rest.begin(), rest.end(), header), end; m != end; ++m) {
      out.insert(folder + (*m)[1].str());
    }
  }
  return out;
}

std::vector<fs::path> textFiles(const fs::path& source, std::initializer_list<const char*> dirs) {
  std::vector<fs::path> out;
  for (const char* d : dirs) {
    if (!fs::exists(source / d)) continue;
    if (fs::is_regular_file(source / d)) {
      out.push_back(source / d);
      continue;
    }
    for (const auto& e : fs::recursive_directory_iterator(source / d)) {
      const std::string ext = e.path().extension().string();
      if (e.is_regular_file() && (ext == ".md" || ext == ".h" || ext == ".cpp" || ext == ".in")) {
        out.push_back(e.path());
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

// docs/architecture.md's header table is the SDK's layout: it lists every header there is,
// and no more.
BOOST_AUTO_TEST_CASE(the_architecture_lists_every_sdk_header) {
  const fs::path source = aotiplug_test::sourceRoot();
  const auto on_disk = sdkHeadersOnDisk(source);
  const auto listed = headersTheArchitectureLists(source);
  BOOST_TEST_REQUIRE(on_disk.size() > 20u);
  for (const auto& h : on_disk) {
    BOOST_TEST(listed.count(h) == 1u, "sdk/include/aotiplug/" << h << " is not in docs/architecture.md's header table");
  }
  for (const auto& h : listed) {
    BOOST_TEST(on_disk.count(h) == 1u, "docs/architecture.md lists " << h << ", which does not exist");
  }
}

// Every <aotiplug/...h> the docs, examples, plugins and host name exists.
BOOST_AUTO_TEST_CASE(every_header_the_docs_and_sources_name_exists) {
  const fs::path source = aotiplug_test::sourceRoot();
  const auto sdk = sdkHeadersOnDisk(source);
  static const std::regex named("(^|[^A-Za-z0-9_/])aotiplug/([a-z0-9_/]+\\.h)\\b");
  int checked = 0;
  for (const fs::path& f : textFiles(source, {"README.md", "docs", "examples", "plugins", "host", "sdk", "tests", "bench"})) {
    const std::string text = aotiplug_test::readFile(f);
    for (std::sregex_iterator m(text.begin(), text.end(), named), end; m != end; ++m) {
      const std::string h = (*m)[2].str();
      ++checked;
      const bool exists = sdk.count(h) == 1 || fs::exists(source / "host" / "include" / "aotiplug" / h);
      BOOST_TEST(exists, f.lexically_relative(source).string() << " names aotiplug/" << h << ", which does not exist");
    }
  }
  BOOST_TEST_MESSAGE(checked << " header names checked");
  BOOST_TEST(checked > 100);
}

// detail/ is included only where docs/architecture.md says: the SDK's own headers and
// sources, the host library and the unit tests of what detail/ holds.
BOOST_AUTO_TEST_CASE(only_the_sdk_and_host_library_include_detail) {
  const fs::path source = aotiplug_test::sourceRoot();
  for (const fs::path& f : textFiles(source, {"examples", "plugins", "host/cli", "host/conformance", "host/scanner", "tests", "bench"})) {
    if (f.parent_path() == source / "tests" / "sdk" && f.filename().string().rfind("test_", 0) == 0) continue;
    const std::string text = aotiplug_test::readFile(f);
    BOOST_TEST(!contains(text, std::string("#include <aotiplug/") + "detail/"),
               f.lexically_relative(source).string() << " includes an SDK detail/ header");
  }
}
