// SPDX-License-Identifier: BSD-3-Clause
// Writes the fuzzers' seed corpora: small valid inputs that reach deep into each reader.
//   make_seeds MANIFEST_DIR PACKAGE_DIR SEED_PLUGIN.so
#include <aotiplug/plugin/manifest.h>

#include <ATen/ops/arange.h>
#include <ATen/ops/ones.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <filesystem>
#include <fstream>
#include <iostream>

namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& data) { std::ofstream(p, std::ios::binary) << data; }

std::string pickled(const c10::IValue& v) {
  const auto bytes = torch::jit::pickle_save(v);
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: make_seeds MANIFEST_DIR PACKAGE_DIR SEED_PLUGIN.so\n";
    return 2;
  }
  const fs::path manifests = argv[1], packages = argv[2];
  fs::create_directories(manifests);
  fs::create_directories(packages);
  std::ifstream in(argv[3], std::ios::binary);
  const std::string plugin((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write(manifests / "seed_plugin.so", plugin);
  write(manifests / "elf_header_only.so", plugin.substr(0, 64));
  write(manifests / "not_elf.so", "not an ELF file");
  constexpr auto note = aotiplug::detail::makeManifestNote("seed", "1.0", {c10::DeviceType::CPU}, 1, 0,
                                                           "2.11.0", 2, 11, 0, 1);
  write(manifests / "note_payload.bin", std::string(reinterpret_cast<const char*>(&note.data), sizeof note.data));

  // A small package with everything the reader looks at.
  const std::string dir = "data/aotinductor/model/";
  caffe2::serialize::PyTorchStreamWriter writer((packages / "seed.pt2").string());
  auto put = [&](const std::string& name, const std::string& data) {
    writer.writeRecord(name, data.data(), data.size());
  };
  put("archive_format", "pt2");
  put(dir + "m.wrapper.so", plugin.substr(0, 256));
  put(dir + "m.wrapper_metadata.json",
      R"({"AOTI_DEVICE_KEY": "cpu", "aotiplug.inputs": "[{\"name\": \"x\", \"dtype\": \"float32\", \"sizes\": [-1, 4], \"min\": [1, 4], \"max\": [8, 4]}]", "aotiplug.outputs": "[]"})");
  put(dir + "weights_config.json", R"({"w": ["weight_0", [2, 3], [3, 1], 0]})");
  put("data/weights/weight_0", pickled(at::ones({2, 3})));
  put("data/sample_inputs/model.pt", pickled(c10::List<at::Tensor>({at::arange(8).reshape({2, 4}).to(at::kFloat)})));
  put("data/aotiplug/model/reference_outputs.pt", pickled(c10::List<at::Tensor>({at::ones({2})})));
  put("extra/aotiplug/model/reference_outputs.pt", pickled(c10::List<at::Tensor>({at::ones({2})})));  // older packages
  writer.writeEndOfFile();
  return 0;
}
