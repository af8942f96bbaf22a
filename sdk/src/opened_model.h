// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::detail::OpenedModel — a package opened and checked, and one of its models
// extracted, shared by every executor of this process that opens the same unchanged file
// (device, inode, size, modification time), the same model and the same extraction place.
// A second executor on a package (another Triton instance, a reload) then neither reads
// and checks the archive nor extracts it again, and its runner maps the library already
// mapped: what is left is the model library's own start-up (its container, its constants).
//
// Ownership: shared by the executors (std::shared_ptr); the extraction directory goes with
// the last of them, after its runner (the executor destroys its runner first). The cache
// holds weak references only. Thread safety: openModel may be called from any thread.
// Private to libaotiplug (sdk/src).

#include <aotiplug/package/private_directory.h>
#include <aotiplug/package/pt2_package.h>

#include <memory>
#include <string>

namespace aotiplug::detail {

struct OpenedModel {
  std::unique_ptr<const Pt2Package> package;  // const: shared across threads
  const PackagedModel* model = nullptr;
  std::unique_ptr<PrivateDirectory> directory;
  std::string library;  // the extracted model library
};

// The model `model_name` of `package_path` (empty: the only one), extracted under
// `extraction_dir` (empty: $TMPDIR or /tmp): shared when this process has it open already.
std::shared_ptr<const OpenedModel> openModel(const std::string& package_path, const std::string& model_name,
                                             const std::string& extraction_dir);

}  // namespace aotiplug::detail
