// SPDX-License-Identifier: BSD-3-Clause
// The docs cannot rot: every ```sh block in README.md and docs/*.md is either run here, as
// a bash script per file (from a scratch directory where `build` and `examples` point at
// this build and the sources), or consists only of commands that .ci/run runs itself, or
// is marked long-running (the line before it is `<!-- long-running -->`: sanitizer builds,
// fuzzing, benchmarks take far longer than a test may) and then consists only of `./dev`
// subcommands that `./dev help` documents.
#define BOOST_TEST_MODULE docs
#include <boost/test/unit_test.hpp>

#include "../common/test_support.h"

#include <algorithm>
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
