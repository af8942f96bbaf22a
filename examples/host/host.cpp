// A minimal aotiplug host: load the plugins of a directory, run a .pt2 package through the
// plugin that serves its device, then swap in new weights while the model stays usable.
//
//   example-host PLUGIN_DIR MODEL.pt2
#include <aotiplug/executor/aoti_delegate_executor.h>
#include <aotiplug/host/plugin_loader.h>

#include <ATen/ops/mul.h>

#include <filesystem>
#include <iostream>
#include <map>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: example-host PLUGIN_DIR MODEL.pt2\n";
    return 2;
  }
  try {
    // 1. Plugins. The loader takes absolute paths only, and never throws for a bad plugin:
    //    each one gets a record saying loaded or rejected, and why.
    aotiplug::PluginLoader loader;
    for (const auto& p : loader.loadDirectory(std::filesystem::absolute(argv[1]).string())) {
      std::cout << "plugin " << p.path << ": " << aotiplug::pluginStateName(p.state)
                << (p.loaded() ? "" : " (" + p.reason + ")") << "\n";
    }

    // 2. The model. The executor creates its runner through the registry, for the device the
    //    package was compiled for; the loader must outlive it.
    aotiplug::AOTIDelegateExecutor executor(argv[2]);
    std::vector<at::Tensor> inputs = executor.package().sampleInputs(executor.packagedModel());
    std::vector<at::Tensor> outputs = executor.run(inputs);
    std::cout << "ran " << executor.packagedModel().name << " on " << executor.device() << ": "
              << outputs.size() << " output(s), first has sum " << outputs.at(0).sum().item<double>()
              << "\n";

    // 3. New weights: here the current ones, scaled. processWeights validates and prepares
    //    them without disturbing runs; commitWeights makes them active.
    std::map<std::string, at::Tensor> scaled;
    for (const auto& [fqn, tensor] : executor.runner().extract_constants_map(false)) {
      scaled.emplace(fqn, at::mul(tensor, 0.5));
    }
    executor.processWeights(std::make_shared<aotiplug::Weights>(scaled));
    executor.commitWeights();
    std::cout << "after the swap, first output has sum " << executor.run(inputs).at(0).sum().item<double>()
              << "\n";
    return 0;
  } catch (const aotiplug::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
