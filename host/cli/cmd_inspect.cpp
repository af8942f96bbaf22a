// SPDX-License-Identifier: BSD-3-Clause
// aotiplug inspect: what a .pt2 package holds, and whether this host can run it.
#include "cli.h"

#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/host/op_library.h>
#include <aotiplug/package/pt2_package.h>
#include <aotiplug/registry/runner_registry.h>
#include <aotiplug/runner/device.h>

#include <ATen/core/dispatch/Dispatcher.h>
#include <boost/program_options.hpp>
#include <c10/core/ScalarType.h>

#include <elf.h>

#include <cstring>
#include <iomanip>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>

namespace aotiplug::cli {

namespace po = boost::program_options;
using nlohmann::json;

namespace {

struct InspectOptions {
  std::string package, plugins, model, device;
  std::vector<std::string> op_libraries;
  bool json = false;
  bool open = true;
};

std::optional<InspectOptions> parseInspectOptions(int argc, char** argv) {
  po::options_description options(
      "Usage: aotiplug inspect MODEL.pt2 [options]\n\n"
      "Shows what a .pt2 package holds — a plain aoti_compile_and_package file or one made\n"
      "by aotiplug's packager: each model's device and CPU ISA or CUDA kernels, its inputs\n"
      "and outputs (dtypes, shapes with dynamic ranges, where the specs came from), its\n"
      "constants and where its weights are, the torch version that compiled it where the\n"
      "package records it, the operators its extern kernels call and the op libraries it\n"
      "names — and whether this host can run it: the model is opened (its library loaded,\n"
      "not run) through the plugins, and the plugin that would serve it, or why none can,\n"
      "is shown.\n\n"
      "Exit codes: 0 ok, 1 error (the package cannot be read), 2 bad arguments,\n"
      "3 a model of the package cannot run on this host.\n\nOptions");
  options.add_options()
      ("help,h", "show this help")
      ("plugins,p", po::value<std::string>()->default_value(defaultPluginDir()), "plugin directory")
      ("model", po::value<std::string>()->default_value(""), "only this model of the package")
      ("device", po::value<std::string>()->default_value(""), "check on this device (cpu, cuda:N) instead of the package's")
      ("op-library", po::value<std::vector<std::string>>()->composing(),
       "load this op library first (TORCH_LIBRARY), as aotiplug run does; repeatable")
      ("no-open", "read the package only: do not load model libraries (no 'runs here' answer)")
      ("json", "print JSON instead of text");
  const std::optional<po::variables_map> parsed = parseArguments(options, argc, argv, "package");
  if (!parsed) return std::nullopt;
  const po::variables_map& vm = *parsed;
  if (vm.count("package") == 0) throw po::error("inspect needs a package (aotiplug inspect MODEL.pt2)");
  InspectOptions o;
  o.package = vm["package"].as<std::string>();
  o.plugins = vm["plugins"].as<std::string>();
  o.model = vm["model"].as<std::string>();
  o.device = vm["device"].as<std::string>();
  if (vm.count("op-library") != 0) o.op_libraries = vm["op-library"].as<std::vector<std::string>>();
  o.json = vm.count("json") != 0;
  o.open = vm.count("no-open") == 0;
  return o;
}

std::string humanBytes(std::uint64_t n) {
  std::ostringstream os;
  if (n < 1024) {
    os << n << " B";
  } else {
    const char* units[] = {"KiB", "MiB", "GiB"};
    double v = static_cast<double>(n) / 1024.0;
    int u = 0;
    while (v >= 1024.0 && u < 2) {
      v /= 1024.0;
      ++u;
    }
    os << std::fixed << std::setprecision(1) << v << " " << units[u];
  }
  return os.str();
}

std::uint64_t tensorBytes(c10::ScalarType dtype, const std::vector<std::int64_t>& sizes) {
  if (dtype == c10::ScalarType::Undefined) return 0;
  std::uint64_t n = c10::elementSize(dtype);
  for (std::int64_t s : sizes) n *= static_cast<std::uint64_t>(std::max<std::int64_t>(s, 0));
  return n;
}

json specJson(const TensorSpec& s, std::size_t index) {
  return {{"index", index},       {"name", s.name},     {"dtype", c10::toString(s.dtype)},
          {"shape", s.sizes},     {"min", s.min},       {"max", s.max},
          {"layout", s.layoutName()}, {"symbols", s.symbols}, {"describe", s.describe()}};
}

// The CUDA architecture a cubin was built for (its ELF header's e_flags), e.g. "sm_90".
std::string cubinArch(const std::string& bytes) {
  Elf64_Ehdr eh{};
  if (bytes.size() < sizeof eh) return {};
  std::memcpy(&eh, bytes.data(), sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_machine != EM_CUDA) return {};
  // ELF ABI version 8 (nvcc 13.0 here: sm_80 -> e_flags 0x6005004, sm_90 -> 0x6005a04) keeps
  // the SM number in bits 8..15; older cubins keep it in bits 0..7.
  const unsigned sm = eh.e_ident[EI_ABIVERSION] >= 8 ? (eh.e_flags >> 8) & 0xffu : eh.e_flags & 0xffu;
  return sm == 0 ? std::string() : "sm_" + std::to_string(sm);
}

// What one model of the package is, from the package alone.
json describeModel(const Pt2Package& package, const PackagedModel& m) {
  json out;
  out["name"] = m.name;
  out["directory"] = m.directory;
  out["library"] = m.library;
  out["device"] = m.deviceKey().empty() ? json(nullptr) : json(m.deviceKey());
  auto meta = [&](const char* key) -> json {
    auto it = m.metadata.find(key);
    return it == m.metadata.end() ? json(nullptr) : json(it->second);
  };
  out["cpu_isa"] = meta("AOTI_CPU_ISA");
  out["compute_capability"] = meta("AOTI_COMPUTE_CAPABILITY");
  if (out["compute_capability"] == "") out["compute_capability"] = nullptr;
  if (out["cpu_isa"] == "") out["cpu_isa"] = nullptr;
  out["torch_version"] = meta("aotiplug.torch_version");

  // CUDA kernels and the architectures they were built for.
  json cubins = json::array();
  std::set<std::string> arches;
  for (const std::string& r : m.records) {
    if (r.size() < 6 || r.compare(r.size() - 6, 6, ".cubin") != 0) continue;
    cubins.push_back(r);
    if (std::string arch = cubinArch(package.readRecord(r)); !arch.empty()) arches.insert(arch);
  }
  out["cuda_kernels"] = {{"count", cubins.size()}, {"arches", arches}};

  out["inputs_source"] = m.specs_source.empty() ? json(nullptr) : json(m.specs_source);
  if (!m.spec_problem.empty()) out["spec_problem"] = m.spec_problem;
  out["inputs"] = json::array();
  for (std::size_t i = 0; i < m.inputs.size(); ++i) out["inputs"].push_back(specJson(m.inputs[i], i));
  out["outputs_source"] = m.outputs.empty() ? json(nullptr) : json("aotiplug metadata");
  out["outputs"] = json::array();
  for (std::size_t i = 0; i < m.outputs.size(); ++i) out["outputs"].push_back(specJson(m.outputs[i], i));

  // Where the weights are.
  json weights;
  if (!m.weights_blob.empty()) {
    weights = {{"where", "weights blob"}, {"entry", m.weights_blob}};
  } else if (!m.weights_config.empty()) {
    weights = {{"where", "data/weights/"}, {"entry", m.weights_config}};
  } else {
    weights = {{"where", "model library"}};
  }
  out["weights"] = weights;

  // Constants as the package states them (aotiplug metadata or the wrapper source); the
  // model library's own list replaces this when the model is opened.
  json constants = {{"source", nullptr}, {"count", 0}, {"bytes", 0}, {"folded", 0}};
  if (auto it = m.metadata.find("aotiplug.constants"); it != m.metadata.end()) {
    const json c = json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (c.is_object()) {
      std::uint64_t bytes = 0;
      for (const auto& [fqn, spec] : c.items()) {
        const auto dtype = spec.is_object() && spec.contains("dtype") && spec["dtype"].is_string()
                               ? scalarTypeFromName(spec["dtype"].get<std::string>())
                               : std::nullopt;
        std::vector<std::int64_t> sizes;
        if (spec.is_object() && spec.contains("sizes") && spec["sizes"].is_array()) {
          for (const json& d : spec["sizes"]) sizes.push_back(d.is_number_integer() ? d.get<std::int64_t>() : 0);
        }
        if (dtype) bytes += tensorBytes(*dtype, sizes);
      }
      constants = {{"source", "aotiplug metadata"}, {"count", c.size()}, {"bytes", bytes}, {"folded", 0}};
    }
  } else if (!m.wrapper_constants.empty()) {
    std::uint64_t bytes = 0;
    std::size_t folded = 0;
    for (const auto& [name, c] : m.wrapper_constants) {
      bytes += c.data_size != 0 ? c.data_size : tensorBytes(c.dtype, c.sizes);
      folded += c.from_folded ? 1 : 0;
    }
    constants = {{"source", "wrapper source"}, {"count", m.wrapper_constants.size()}, {"bytes", bytes}, {"folded", folded}};
  }
  out["constants"] = constants;

  // Extern kernels: the operators the model calls through the proxy executor.
  json ops = json::array();
  std::string kernels_entry = m.library;
  if (kernels_entry.size() > 3 && kernels_entry.compare(kernels_entry.size() - 3, 3, ".so") == 0) {
    kernels_entry.replace(kernels_entry.size() - 3, 3, ".json");
  }
  if (kernels_entry != m.library && package.hasRecord(kernels_entry)) {
    const json doc = json::parse(package.readRecord(kernels_entry), nullptr, /*allow_exceptions=*/false);
    if (doc.is_object() && doc.contains("nodes") && doc["nodes"].is_array()) {
      std::set<std::string> seen;
      for (const json& entry : doc["nodes"]) {
        if (!entry.is_object() || !entry.contains("node") || !entry["node"].is_object()) continue;
        const json& node = entry["node"];
        if (!node.contains("target") || !node["target"].is_string()) continue;
        const std::string target = node["target"].get<std::string>();
        if (!seen.insert(target).second) continue;
        const auto dot = target.find('.');
        const bool registered =
            c10::Dispatcher::singleton()
                .findSchema({target.substr(0, dot), dot == std::string::npos ? std::string() : target.substr(dot + 1)})
                .has_value();
        ops.push_back({{"operator", target}, {"registered", registered}});
      }
    }
  }
  out["extern_kernels"] = ops;
  json op_libraries = json::array();
  if (auto it = m.metadata.find("aotiplug.op_libraries"); it != m.metadata.end()) {
    const json named = json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (named.is_array()) op_libraries = named;
  }
  out["op_libraries"] = op_libraries;
  return out;
}

// Opens the model (loads its library, runs nothing) to say whether and how it runs here.
void addRunsHere(json& out, const InspectOptions& o, const PackagedModel& m) {
  ExecutorConfig config;
  config.maxNumConcurrentThreads = 1;
  config.device = o.device;
  config.validateInputs = false;  // a missing spec is reported above, not a reason it cannot run
  config.log = [](const std::string&) {};
  try {
    AOTIDelegateExecutor exec(o.package, nullptr, config, m.name);
    json runs = {{"ok", true}, {"device", exec.device()}};
    if (auto winner = runnerRegistry().winner(parseDevice(exec.device()).type())) {
      runs["plugin"] = winner->origin.plugin;
      runs["plugin_path"] = winner->origin.library;
    }
    out["runs_here"] = runs;
    const ModelInfo& info = exec.modelInfo();
    std::uint64_t bytes = 0;
    std::size_t folded = 0;
    for (const ConstantInfo& c : info.constants) {
      bytes += c.data_size != 0 ? c.data_size : tensorBytes(c.dtype, c.sizes);
      folded += c.from_folded ? 1 : 0;
    }
    out["constants"] = {{"source", "model library"}, {"count", info.constants.size()}, {"bytes", bytes},
                        {"folded", folded}};
    if (out["weights"]["where"] == "model library" && !info.constants_in_library) {
      out["weights"] = {{"where", "none: compiled without its weights (supply them with initWeights)"}};
    }
    if (out["outputs"].empty()) {
      out["outputs_source"] = "model library (names only)";
      for (std::size_t i = 0; i < info.output_names.size(); ++i) {
        out["outputs"].push_back({{"index", i}, {"name", info.output_names[i]}});
      }
    }
  } catch (const std::exception& e) {
    out["runs_here"] = {{"ok", false}, {"error", e.what()}};
  }
}

void printText(const json& r) {
  std::cout << "package  " << r["package"].get<std::string>() << " (" << r["models"].size() << " model"
            << (r["models"].size() == 1 ? "" : "s") << ")\n";
  for (const json& m : r["models"]) {
    std::cout << "model    '" << m["name"].get<std::string>() << "' (" << m["library"].get<std::string>() << ")\n";
    std::cout << "  device         " << (m["device"].is_null() ? std::string("not recorded") : m["device"].get<std::string>());
    if (!m["cpu_isa"].is_null()) std::cout << ", CPU ISA " << m["cpu_isa"].get<std::string>();
    if (!m["compute_capability"].is_null()) {
      std::cout << ", CUDA compute capability " << m["compute_capability"].get<std::string>();
    }
    const json& cuda = m["cuda_kernels"];
    if (cuda["count"].get<std::size_t>() > 0) {
      std::cout << ", " << cuda["count"].get<std::size_t>() << " CUDA kernel file(s)";
      for (const json& a : cuda["arches"]) std::cout << " " << a.get<std::string>();
    }
    std::cout << "\n  compiled by    "
              << (m["torch_version"].is_null()
                      ? std::string("torch version not recorded (only aotiplug's packager records it)")
                                               : "torch " + m["torch_version"].get<std::string>())
              << "\n";
    std::cout << "  inputs         "
              << (m["inputs_source"].is_null() ? std::string("no specs") : "from " + m["inputs_source"].get<std::string>())
              << (m.contains("spec_problem") ? " (" + m["spec_problem"].get<std::string>() + ")" : std::string())
              << "\n";
    for (const json& s : m["inputs"]) {
      std::cout << "    " << s["index"].get<std::size_t>() << " " << std::left << std::setw(14)
                << s["name"].get<std::string>() << " " << s["describe"].get<std::string>() << "\n";
    }
    std::cout << "  outputs        "
              << (m["outputs_source"].is_null() ? std::string("no specs") : "from " + m["outputs_source"].get<std::string>())
              << "\n";
    for (const json& s : m["outputs"]) {
      std::cout << "    " << s["index"].get<std::size_t>() << " " << std::left << std::setw(14)
                << s["name"].get<std::string>() << " "
                << (s.contains("describe") ? s["describe"].get<std::string>() : "") << "\n";
    }
    const json& c = m["constants"];
    std::cout << "  constants      " << c["count"].get<std::size_t>() << " (" << humanBytes(c["bytes"].get<std::uint64_t>())
              << (c["folded"].get<std::size_t>() > 0 ? ", " + std::to_string(c["folded"].get<std::size_t>()) + " folded" : "")
              << (c["source"].is_null() ? std::string(", not recorded") : ", per " + c["source"].get<std::string>())
              << ")\n";
    std::cout << "  weights        " << m["weights"]["where"].get<std::string>();
    if (m["weights"].contains("entry")) std::cout << " (" << m["weights"]["entry"].get<std::string>() << ")";
    std::cout << "\n";
    if (!m["extern_kernels"].empty()) {
      std::cout << "  extern kernels " << m["extern_kernels"].size() << " operator(s)\n";
      for (const json& k : m["extern_kernels"]) {
        std::cout << "    " << k["operator"].get<std::string>()
                  << (k["registered"].get<bool>() ? "" : " (not registered in this process)") << "\n";
      }
    }
    if (!m["op_libraries"].empty()) std::cout << "  op libraries   " << m["op_libraries"].dump() << "\n";
    if (!m.contains("runs_here")) {
      std::cout << "  runs here      not checked (--no-open)\n";
    } else if (m["runs_here"]["ok"].get<bool>()) {
      const json& runs = m["runs_here"];
      std::cout << "  runs here      yes, on " << runs["device"].get<std::string>();
      if (runs.contains("plugin")) {
        std::cout << ", served by plugin '" << runs["plugin"].get<std::string>() << "' ("
                  << runs["plugin_path"].get<std::string>() << ")";
      }
      std::cout << "\n";
    } else {
      std::cout << "  runs here      NO: " << m["runs_here"]["error"].get<std::string>() << "\n";
    }
  }
}

}  // namespace

int runInspectCommand(int argc, char** argv) {
  const std::optional<InspectOptions> parsed = parseInspectOptions(argc, argv);
  if (!parsed) return kExitOk;
  const InspectOptions& o = *parsed;
  removeExtractionsOnSignals();

  // Op libraries first, as aotiplug run loads them: the extern kernels resolve against them.
  for (const std::string& library : o.op_libraries) loadOpLibrary(library);
  const Pt2Package package(o.package);
  std::vector<std::string> names = package.modelNames();
  if (!o.model.empty()) names = {package.model(o.model).name};  // an error lists the models

  PluginLoader loader;
  std::optional<DirectoryLoad> plugins;
  if (o.open) {
    plugins = loadPlugins(loader, o.plugins);
    if (!plugins->usable()) throw Error(StatusCode::kNotFound, plugins->error);
  }
  requireDeviceSyntax(o.device);  // after the plugins: one may name its own device type
  json report;
  report["package"] = o.package;
  report["models"] = json::array();
  bool all_run = true;
  for (const std::string& name : names) {
    const PackagedModel& m = package.model(name);
    json model = describeModel(package, m);
    if (o.open) {
      addRunsHere(model, o, m);
      all_run = all_run && model["runs_here"]["ok"].get<bool>();
    }
    report["models"].push_back(std::move(model));
  }
  if (plugins) {
    report["rejected_plugins"] = json::array();
    for (const auto& r : *plugins) {
      if (!r.loaded()) report["rejected_plugins"].push_back({{"path", r.path}, {"reason", r.reason}});
    }
  }
  if (o.json) {
    std::cout << report.dump(2) << "\n";
  } else {
    printText(report);
    if (plugins) {
      for (const json& r : report["rejected_plugins"]) {
        std::cout << "note     plugin " << r["path"].get<std::string>() << " rejected: " << r["reason"].get<std::string>() << "\n";
      }
    }
  }
  return all_run ? kExitOk : kExitCheck;
}

}  // namespace aotiplug::cli
