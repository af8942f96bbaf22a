// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::Pt2Package — reads an AOTInductor .pt2 package, defensively.
//
// A .pt2 is a zip archive (read with LibTorch's caffe2::serialize::PyTorchStreamReader)
// whose entries sit under one top-level folder. AOTInductor puts each compiled model under
// data/aotinductor/<model>/: the model library (<hash>.wrapper.so), its metadata
// (<hash>.wrapper_metadata.json, with AOTI_DEVICE_KEY), CUDA kernels, an extern-kernel file,
// and sometimes its weights (<hash>.wrapper_weights.blob, or data/weights/ with
// data/aotinductor/<model>/weights_config.json). aotiplug's packager adds input specs to the
// metadata, sample inputs (data/sample_inputs/<model>.pt) and eager reference outputs
// (data/aotiplug/<model>/reference_outputs.pt; extra/aotiplug/ in packages made before
// aotiplug 0.1's second packager format, still read).
//
// The package is untrusted input. Opening it checks every entry name (no "..", no absolute
// path; directory entries, as `zip -r` writes them, are skipped), the number of entries,
// and the declared sizes against the archive's size, each entry's and all of them together
// (a zip bomb declares gigabytes in a few bytes; overlapping entries declare the same bytes
// many times over); a model is found by exact directory match (data/aotinductor/<name>/,
// not a prefix). Every entry read or extracted is checked against its CRC-32. extract()
// writes a model's files into a PrivateDirectory, keeping their relative paths, so nothing
// lands outside it and no two files collide.
//
// Ownership: owns the archive reader. Thread safety: const member functions may be called
// concurrently (the reader serializes its own access). Compiled into libaotiplug
// (sdk/src/pt2_package.cpp): hosts include this header without the archive reader's,
// the unpickler's or the JSON parser's.

#include <aotiplug/detail/export.h>
#include <aotiplug/error.h>
#include <aotiplug/executor/tensor_spec.h>
#include <aotiplug/executor/weights.h>
#include <aotiplug/package/private_directory.h>
#include <aotiplug/runner/wrapper_source.h>
#include <aotiplug/status.h>

#include <ATen/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace caffe2::serialize {
class PyTorchStreamReader;
}  // namespace caffe2::serialize

namespace aotiplug {

// aotiplug::PackagedModel — one compiled model inside a package.
struct PackagedModel {
  std::string name;                  // "model"
  std::string directory;             // "data/aotinductor/model/"
  std::vector<std::string> records;  // every entry under directory (archive-relative)
  std::string library;               // the model library entry
  std::string weights_blob;          // "<hash>.wrapper_weights.blob" entry, or empty
  std::string weights_config;        // "weights_config.json" entry (data/weights/), or empty
  std::string wrapper_source;        // the generated wrapper source entry, or empty
  std::map<std::string, std::string> metadata;  // AOTI metadata (string values)
  // Input specs: from "aotiplug.inputs", else derived from the wrapper source (a package
  // made by plain aoti_compile_and_package); empty when neither is there.
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;   // from "aotiplug.outputs"
  // The input dimensions that must agree with another (from the inputs' symbols).
  std::vector<SharedSize> shared_sizes;
  // Where `inputs` came from ("aotiplug metadata", "wrapper source <entry>"); empty when
  // nowhere. spec_problem: why the wrapper source could not be read (then inputs is empty).
  std::string specs_source;
  std::string spec_problem;
  // Constant shapes from the wrapper source, by AOTI constant name (for weights compiled
  // outside the library, whose shapes the library's C ABI does not tell).
  std::map<std::string, WrapperConstant> wrapper_constants;

  // AOTI_DEVICE_KEY: the device the model was compiled for ("cpu", "cuda").
  std::string deviceKey() const {
    auto it = metadata.find("AOTI_DEVICE_KEY");
    return it == metadata.end() ? std::string() : it->second;
  }
};

// The tensors of a torch.save'd object (a tensor, or lists and tuples of them; of the
// (args, kwargs) pair torch.export stores, the args), in order. Throws c10::Error when the
// bytes are not a pickle LibTorch can read, and Error(kInvalidArgument) when a tensor's
// sizes, strides or offset reach past the storage the pickle holds for it.
AOTIPLUG_API std::vector<at::Tensor> tensorsFromPickledBytes(const std::string& bytes);

// aotiplug::Pt2Package
class AOTIPLUG_API Pt2Package {
 public:
  // A declared entry size above kBombRatio x the archive size (plus kBombSlack) is refused.
  // The same bound holds for the sum over all entries; and a package has at most
  // kMaxEntries entries.
  static constexpr std::uint64_t kBombRatio = 16;
  static constexpr std::uint64_t kBombSlack = 1u << 20;
  static constexpr std::size_t kMaxEntries = 65536;

  explicit Pt2Package(const std::string& path);
  ~Pt2Package();
  Pt2Package(const Pt2Package&) = delete;
  Pt2Package& operator=(const Pt2Package&) = delete;

  const std::string& path() const noexcept { return path_; }
  std::vector<std::string> modelNames() const;
  // The named model; with an empty name the only one (an error lists them if several).
  const PackagedModel& model(const std::string& name = {}) const;
  bool hasRecord(const std::string& name) const;
  // Reads a whole entry (size-checked against the archive).
  std::string readRecord(const std::string& name) const;

  // Writes the files a model library needs (everything under the model's directory except
  // C++ sources) into dir; returns the path of the extracted model library. The wrapper
  // source goes too when the package records no constant shapes (a plain package), so
  // that any runner can check constants against the shapes it states (wrapper_source.h).
  std::string extract(const PackagedModel& m, PrivateDirectory& dir) const;

  // Sample inputs (data/sample_inputs/<model>.pt), reference outputs
  // (data/aotiplug/<model>/reference_outputs.pt, or extra/aotiplug/ in older packages) and stored weights (data/weights/); empty
  // or null when the package has none.
  std::vector<at::Tensor> sampleInputs(const PackagedModel& m) const;
  std::vector<at::Tensor> referenceOutputs(const PackagedModel& m) const;
  std::shared_ptr<Weights> storedWeights(const PackagedModel& m) const;

 private:
  [[noreturn]] void fail(StatusCode code, const std::string& why) const {
    throw Error(code, "package " + path_ + ": " + why);
  }
  std::vector<at::Tensor> tensorsFromPickle(const std::string& record) const;
  // Input specs and constant shapes of a package without aotiplug's metadata.
  void readWrapperSource(PackagedModel& m) const;
  // Where a stored (uncompressed) entry's bytes lie in the archive file; nullopt when the
  // entry is compressed (or its header is not what the zip format says).
  struct Span {
    std::uint64_t offset, size;
  };
  // Throws unless `crc` is the CRC-32 the archive records for entry `name`.
  void checkCrc(const std::string& name, std::uint32_t crc, std::uint32_t expected) const;
  std::optional<Span> storedSpan(const std::string& name) const;
  // The CRC-32 the central directory records for an entry; nullopt when it has none (the
  // directory could not be read: then the reader's own checks are all there is).
  std::optional<std::uint32_t> recordedCrc(const std::string& name) const;
  void readCentralDirectory();
  // Copies archive bytes into `out` through a buffer of this size (pread, CRC, write).
  static constexpr std::size_t kCopyChunk = std::size_t{1} << 20;
  void copySpan(const std::string& name, const Span& span, int out, const std::string& target) const;

  std::string path_;
  struct FileDescriptor {  // closed with the package, also when its constructor throws
    int fd = -1;
    FileDescriptor() = default;
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
    ~FileDescriptor();
  };
  FileDescriptor archive_;  // the archive, for copying stored entries without a user-space buffer
  std::uint64_t archive_size_ = 0;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader_;
  std::vector<std::string> records_;
  std::map<std::string, std::uint32_t> crcs_;  // by record name, from the central directory
  std::vector<PackagedModel> models_;
};

}  // namespace aotiplug
