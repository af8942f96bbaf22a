// SPDX-License-Identifier: BSD-3-Clause
// openModel (opened_model.h), compiled into libaotiplug.

#include "opened_model.h"

#include <sys/stat.h>

#include <map>
#include <mutex>
#include <set>
#include <tuple>

namespace aotiplug::detail {
namespace {

// What identifies an unchanged file, and what was asked of it.
using Key = std::tuple<dev_t, ino_t, off_t, long, long, std::string, std::string>;

}  // namespace

std::shared_ptr<const OpenedModel> openModel(const std::string& package_path, const std::string& model_name,
                                             const std::string& extraction_dir) {
  static std::mutex mutex;
  static std::map<Key, std::weak_ptr<const OpenedModel>> open;
  static std::set<std::string> cleaned;  // extraction places cleared of dead hosts' leftovers
  struct stat st {};
  const bool known = ::stat(package_path.c_str(), &st) == 0;
  const Key key{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec, model_name, extraction_dir};
  std::lock_guard<std::mutex> lock(mutex);
  if (known) {
    auto it = open.find(key);
    if (it != open.end()) {
      if (auto shared = it->second.lock()) return shared;
    }
  }
  // Once per process and place: what hosts that died left behind there.
  if (cleaned.insert(extraction_dir).second) PrivateDirectory::removeStale("aotiplug-model-", extraction_dir);
  auto made = std::make_shared<OpenedModel>();
  made->package = std::make_unique<Pt2Package>(package_path);  // throws for a missing file
  made->model = &made->package->model(model_name);
  made->directory = std::make_unique<PrivateDirectory>("aotiplug-model-", extraction_dir);
  made->library = made->package->extract(*made->model, *made->directory);
  for (auto it = open.begin(); it != open.end();) {  // forget the ones gone
    it = it->second.expired() ? open.erase(it) : std::next(it);
  }
  if (known) open[key] = made;
  return made;
}

}  // namespace aotiplug::detail
