// SPDX-License-Identifier: BSD-3-Clause
#include "model_config.h"

#include <aotiplug/error.h>
#include <aotiplug/runner/device.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <set>
#include <sstream>

namespace aotiplug::triton {
namespace {

using nlohmann::json;

std::string describeDims(const std::vector<std::int64_t>& dims) {
  std::ostringstream os;
  os << "[";
  for (std::size_t d = 0; d < dims.size(); ++d) os << (d > 0 ? ", " : "") << dims[d];
  os << "]";
  return os.str();
}

std::string nameList(const std::vector<TensorSignature>& tensors) {
  std::string out;
  for (const auto& t : tensors) out += (out.empty() ? "" : ", ") + t.name;
  return out.empty() ? "none" : out;
}

[[noreturn]] void refuse(const json& config, const std::string& what) {
  throw Error(StatusCode::kInvalidArgument,
              "config of model '" + config.value("name", std::string()) + "': " + what);
}

std::string typeName(c10::ScalarType type) {
  auto t = dataTypeOf(type);
  return torchTypeName(type) + (t ? std::string(" (") + t->config_name + ")" : std::string());
}

// The dims a config states for `tensor`: without the batch dimension when batching.
std::vector<std::int64_t> configDims(const TensorSignature& tensor, bool batching) {
  if (!batching || tensor.dims.empty()) return tensor.dims;
  return {tensor.dims.begin() + 1, tensor.dims.end()};
}

std::vector<std::int64_t> dimsOf(const json& config, const json& entry, const std::string& field) {
  std::vector<std::int64_t> out;
  auto it = entry.find("dims");
  if (it == entry.end()) return out;
  if (!it->is_array()) refuse(config, field + " dims is not a list");
  for (const json& d : *it) {
    if (d.is_number_integer()) {
      out.push_back(d.get<std::int64_t>());
    } else if (d.is_string()) {  // protobuf's JSON writes int64 as strings
      try {
        out.push_back(std::stoll(d.get<std::string>()));
      } catch (const std::exception&) {
        refuse(config, field + " dims holds '" + d.get<std::string>() + "', not a number");
      }
    } else {
      refuse(config, field + " dims holds " + d.dump() + ", not a number");
    }
  }
  return out;
}

bool parseBool(const json& config, const std::string& key, const std::string& value) {
  std::string v = value;
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off" || v.empty()) return false;
  refuse(config, "parameters '" + key + "' is '" + value + "'; expected true or false");
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::string resolvePath(const std::string& path, const std::string& directory) {
  if (path.empty()) return path;
  std::filesystem::path p(path);
  if (p.is_relative()) p = std::filesystem::path(directory) / p;
  return p.lexically_normal().string();
}

json tensorEntry(const TensorSignature& t, bool batching) {
  const auto type = dataTypeOf(t.dtype);
  std::vector<std::int64_t> dims = configDims(t, batching);
  json entry = {{"name", t.name}, {"data_type", type ? type->config_name : "TYPE_INVALID"}};
  if (dims.empty()) {
    // Triton needs at least one dimension: a scalar (per batch item) is [1], reshaped.
    entry["dims"] = json::array({1});
    entry["reshape"] = {{"shape", json::array()}};
  } else {
    entry["dims"] = dims;
  }
  return entry;
}

// Adds the tensors the config's `key` list lacks, and the types and dims its entries lack.
void fillTensors(json& config, const char* key, const std::vector<TensorSignature>& tensors, bool batching,
                 std::vector<std::string>& notes) {
  json& list = config[key];
  if (!list.is_array()) list = json::array();
  for (const TensorSignature& t : tensors) {
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const json& e) { return e.is_object() && e.value("name", std::string()) == t.name; });
    const json filled = tensorEntry(t, batching);
    if (it == list.end()) {
      list.push_back(filled);
      notes.push_back(std::string(key) + " '" + t.name + "' " + filled["data_type"].get<std::string>() + " " +
                      filled["dims"].dump());
      continue;
    }
    const std::string type = it->value("data_type", std::string());
    if (type.empty() || type == "TYPE_INVALID") (*it)["data_type"] = filled["data_type"];
    auto dims = it->find("dims");
    if (dims == it->end() || (dims->is_array() && dims->empty())) {
      (*it)["dims"] = filled["dims"];
      if (filled.contains("reshape")) (*it)["reshape"] = filled["reshape"];
    }
  }
}

// Checks one configured tensor's dims against the package's; returns whether it is the
// [1] stand-in for a scalar.
bool checkDims(const json& config, const std::string& field, const std::vector<std::int64_t>& dims,
               const TensorSignature& tensor, bool batching, bool is_input) {
  const std::vector<std::int64_t> want = configDims(tensor, batching);
  const std::vector<std::int64_t> lo = batching && !tensor.min.empty()
                                           ? std::vector<std::int64_t>(tensor.min.begin() + 1, tensor.min.end())
                                           : tensor.min;
  const std::vector<std::int64_t> hi = batching && !tensor.max.empty()
                                           ? std::vector<std::int64_t>(tensor.max.begin() + 1, tensor.max.end())
                                           : tensor.max;
  const std::string batch_note = batching ? " (without the batch dimension: max_batch_size is set)" : "";
  if (want.empty()) {
    if (dims == std::vector<std::int64_t>{1} || dims.empty()) return true;
    refuse(config, field + " dims " + describeDims(dims) + ": the package's tensor is a scalar" + batch_note +
                       "; write dims [1] (with reshape { shape: [] })");
  }
  if (dims.size() != want.size()) {
    refuse(config, field + " dims " + describeDims(dims) + " has " + std::to_string(dims.size()) +
                       " dimension(s); the package's tensor has " + std::to_string(want.size()) + ": " +
                       describeDims(want) + batch_note);
  }
  for (std::size_t d = 0; d < want.size(); ++d) {
    const std::string at = field + " dims[" + std::to_string(d) + "]";
    if (want[d] >= 0) {
      if (dims[d] == want[d]) continue;
      if (dims[d] == -1 && !is_input) continue;  // an output described less exactly
      refuse(config, at + " is " + std::to_string(dims[d]) + ", but the package fixes it to " +
                         std::to_string(want[d]) + " (package dims " + describeDims(want) + batch_note + ")");
    }
    if (dims[d] == -1) continue;
    if (dims[d] < 0) refuse(config, at + " is " + std::to_string(dims[d]) + "; a size is -1 (dynamic) or >= 0");
    if (!is_input) continue;
    const std::int64_t min = d < lo.size() ? lo[d] : 0;
    const std::int64_t max = d < hi.size() ? hi[d] : -1;
    if (dims[d] < min || (max >= 0 && dims[d] > max)) {
      refuse(config, at + " is " + std::to_string(dims[d]) + ", outside the package's range " + std::to_string(min) +
                         ".." + (max >= 0 ? std::to_string(max) : std::string("")) + " for it");
    }
  }
  return false;
}

std::vector<ServedTensor> checkTensors(const json& config, const char* key, const std::vector<TensorSignature>& tensors,
                                       bool batching, bool is_input, bool types_known) {
  std::vector<ServedTensor> out;
  auto list = config.find(key);
  if (list == config.end() || !list->is_array()) return out;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const json& entry = (*list)[i];
    const std::string name = entry.is_object() ? entry.value("name", std::string()) : std::string();
    const std::string field = std::string(key) + "[" + std::to_string(i) + "] '" + name + "'";
    auto it = std::find_if(tensors.begin(), tensors.end(), [&](const TensorSignature& t) { return t.name == name; });
    if (it == tensors.end()) {
      std::string renamed;  // the package's own names, where the parameters rename them
      for (const auto& t : tensors) {
        if (!t.package_name.empty()) {
          renamed += (renamed.empty() ? "" : ", ") + t.package_name + " as " + t.name;
        }
      }
      refuse(config, field + " is not an " + key + " of the package (its " + key + "s: " + nameList(tensors) + ")" +
                         (renamed.empty() ? "" : "; parameters '" + std::string(key) + "_names' serves " + renamed));
    }
    if (!seen.insert(name).second) refuse(config, field + " is listed twice");
    const std::string type_name = entry.value("data_type", std::string());
    if (type_name == "TYPE_STRING") {
      refuse(config, field + " data_type TYPE_STRING: the aotiplug backend serves tensors, not BYTES; the package's " +
                         key + " is " + typeName(it->dtype));
    }
    auto type = dataTypeFromConfigName(type_name);
    if (!type) refuse(config, field + " data_type '" + type_name + "' is not a type the aotiplug backend serves");
    if (types_known && type->scalar_type != it->dtype) {
      refuse(config, field + " data_type " + type_name + ", but the package's " + key + " is " + typeName(it->dtype));
    }
    const std::vector<std::int64_t> dims = dimsOf(config, entry, field);
    ServedTensor served;
    served.name = name;
    served.type = *type;
    served.dims = dims;
    served.index = static_cast<std::size_t>(it - tensors.begin());
    served.scalar = types_known ? checkDims(config, field, dims, *it, batching, is_input) : false;
    out.push_back(std::move(served));
  }
  return out;
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// A comma-separated list of tensor names: none empty, none twice.
std::vector<std::string> parseNames(const json& config, const std::string& key, const std::string& value) {
  std::vector<std::string> names;
  std::stringstream list(value);
  for (std::string item; std::getline(list, item, ',');) {
    const std::string name = trim(item);
    if (name.empty()) refuse(config, "parameters '" + key + "' is '" + value + "': a name is empty");
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      refuse(config, "parameters '" + key + "' names '" + name + "' twice");
    }
    names.push_back(name);
  }
  if (names.empty()) refuse(config, "parameters '" + key + "' is empty; expected names separated by commas");
  if (trim(value).back() == ',') refuse(config, "parameters '" + key + "' is '" + value + "': a name is empty");
  return names;
}

}  // namespace

const ServedTensor* ServingConfig::findInput(const std::string& name) const noexcept {
  for (const auto& t : inputs) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const ServedTensor* ServingConfig::findOutput(const std::string& name) const noexcept {
  for (const auto& t : outputs) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

ModelParameters parseParameters(const json& config, const std::string& model_directory) {
  ModelParameters p;
  auto params = config.find("parameters");
  if (params == config.end() || !params->is_object()) return p;
  static const std::vector<std::string> known = {"package_model", "device",      "run_single_threaded",
                                                 "op_libraries",  "initial_weights", "weights_control",
                                                 "weights_dir",   "input_names",     "output_names"};
  for (const auto& [key, value] : params->items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      refuse(config, "parameters '" + key + "' is not a parameter of the aotiplug backend (its parameters: " +
                         joinNames(known) + ")");
    }
    const std::string s = value.is_object() ? trim(value.value("string_value", std::string())) : std::string();
    if (key == "package_model") {
      p.package_model = s;
    } else if (key == "device") {
      p.device = s;
      if (!s.empty()) {
        try {
          parseDevice(s);
        } catch (const Error& e) {
          refuse(config, "parameters 'device': " + std::string(e.what()));
        }
      }
    } else if (key == "run_single_threaded") {
      p.run_single_threaded = parseBool(config, key, s);
    } else if (key == "op_libraries") {
      std::stringstream list(s);
      for (std::string item; std::getline(list, item, ',');) {
        if (!trim(item).empty()) p.op_libraries.push_back(resolvePath(trim(item), model_directory));
      }
    } else if (key == "initial_weights") {
      p.initial_weights = resolvePath(s, model_directory);
    } else if (key == "weights_control") {
      p.weights_control = parseBool(config, key, s);
    } else if (key == "weights_dir") {
      p.weights_dir = resolvePath(s, model_directory);
    } else if (key == "input_names" || key == "output_names") {
      (key == "input_names" ? p.input_names : p.output_names) = parseNames(config, key, s);
    }
  }
  return p;
}

void nameTensors(const json& config, const ModelParameters& parameters, PackageSignature& signature) {
  for (const bool inputs : {true, false}) {
    const std::vector<std::string>& names = inputs ? parameters.input_names : parameters.output_names;
    std::vector<TensorSignature>& tensors = inputs ? signature.inputs : signature.outputs;
    const std::string key = inputs ? "input_names" : "output_names";
    if (names.empty()) continue;
    if (names.size() != tensors.size()) {
      refuse(config, "parameters '" + key + "' names " + std::to_string(names.size()) + " (" + joinNames(names) +
                         "); package " + signature.package + " has " + std::to_string(tensors.size()) + " " +
                         (inputs ? "input" : "output") + (tensors.size() == 1 ? "" : "s") + " (" +
                         nameList(tensors) + "), named in that order");
    }
    for (std::size_t i = 0; i < names.size(); ++i) {
      tensors[i].package_name = tensors[i].name;
      tensors[i].name = names[i];
    }
  }
}

bool configTextSets(const std::string& pbtxt, const std::string& field) {
  // Top level only: count braces outside comments and strings.
  int depth = 0;
  bool in_string = false;
  char quote = 0;
  for (std::size_t i = 0; i < pbtxt.size(); ++i) {
    const char c = pbtxt[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        in_string = false;
      }
      continue;
    }
    if (c == '#') {
      while (i < pbtxt.size() && pbtxt[i] != '\n') ++i;
      continue;
    }
    if (c == '"' || c == '\'') {
      in_string = true;
      quote = c;
      continue;
    }
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    if (depth == 0 && pbtxt.compare(i, field.size(), field) == 0 &&
        (i == 0 || !(std::isalnum(static_cast<unsigned char>(pbtxt[i - 1])) || pbtxt[i - 1] == '_'))) {
      std::size_t j = i + field.size();
      while (j < pbtxt.size() && (pbtxt[j] == ' ' || pbtxt[j] == '\t')) ++j;
      if (j < pbtxt.size() && (pbtxt[j] == ':' || pbtxt[j] == '{')) return true;
    }
  }
  return false;
}

json autoCompleteConfig(json config, const PackageSignature& signature, const AutoCompleteOptions& options,
                        std::vector<std::string>& notes) {
  std::int64_t max_batch_size = config.value("max_batch_size", 0);
  if (max_batch_size == 0 && signature.batchable && !options.max_batch_size_explicit) {
    if (signature.batch_max > 0) {
      max_batch_size = std::min<std::int64_t>(signature.batch_max, INT_MAX);
      notes.push_back("max_batch_size " + std::to_string(max_batch_size) + " (the package's batch range " +
                      std::to_string(signature.batch_min) + ".." + std::to_string(signature.batch_max) + ")");
    } else if (options.default_max_batch_size > 0) {
      max_batch_size = options.default_max_batch_size;
      notes.push_back("max_batch_size " + std::to_string(max_batch_size) +
                      " (default-max-batch-size: the package's batch has no upper bound)");
    }
    config["max_batch_size"] = max_batch_size;
    if (max_batch_size > 1 && !config.contains("dynamic_batching") && !config.contains("sequence_batching")) {
      config["dynamic_batching"] = json::object();
      notes.push_back("dynamic_batching {}");
    }
  }
  const bool batching = max_batch_size > 0 && signature.batchable;
  fillTensors(config, "input", signature.inputs, batching, notes);
  if (signature.outputs_unknown.empty()) fillTensors(config, "output", signature.outputs, batching, notes);
  return config;
}

std::string instanceDevice(const std::string& kind, std::int64_t device_id, const PackageSignature& signature,
                           const ModelParameters& parameters, const std::string& where) {
  std::string device;
  if (kind == "KIND_CPU") {
    device = "cpu";
  } else if (kind == "KIND_GPU") {
    device = "cuda:" + std::to_string(device_id);
  } else {  // KIND_MODEL (and KIND_AUTO, which Triton resolves before a backend sees it)
    device = parameters.device.empty() ? signature.device_type : parameters.device;
  }
  const std::string type = parseDevice(device).type() == c10::DeviceType::CPU ? "cpu" : device.substr(0, device.find(':'));
  if (type != signature.device_type) {
    throw Error(StatusCode::kIncompatible,
                where + " is " + kind + " (device " + device + "), but package " + signature.package +
                    " was compiled for " + signature.device_type + ": use " +
                    (signature.device_type == "cpu" ? "KIND_CPU" : "KIND_GPU") + " or KIND_MODEL" +
                    (parameters.device.empty() ? "" : " (parameters 'device' is " + parameters.device + ")"));
  }
  return device;
}

ServingConfig checkConfig(const json& config, const PackageSignature& signature, const ModelParameters& parameters) {
  ServingConfig c;
  c.model = config.value("name", std::string());
  c.parameters = parameters;
  const json mbs = config.value("max_batch_size", json(0));
  if (!mbs.is_number_integer() || mbs.get<std::int64_t>() < 0 || mbs.get<std::int64_t>() > INT_MAX) {
    refuse(config, "max_batch_size is " + mbs.dump() + "; expected 0 or a positive number");
  }
  c.max_batch_size = mbs.get<int>();
  const bool batching = c.max_batch_size > 0;
  if (batching && !signature.batchable) {
    refuse(config, "max_batch_size is " + std::to_string(c.max_batch_size) + ", but package " + signature.package +
                       " cannot batch: " + signature.not_batchable + " (serve it with max_batch_size: 0)");
  }

  c.inputs = checkTensors(config, "input", signature.inputs, batching, /*is_input=*/true, /*types_known=*/true);
  for (std::size_t i = 0; i < signature.inputs.size(); ++i) {
    if (std::none_of(c.inputs.begin(), c.inputs.end(), [&](const ServedTensor& t) { return t.index == i; })) {
      refuse(config, "input lacks '" + signature.inputs[i].name + "' (package " + signature.package + " takes " +
                         nameList(signature.inputs) + "): list it, or let the backend complete the config");
    }
  }
  std::sort(c.inputs.begin(), c.inputs.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  c.outputs = checkTensors(config, "output", signature.outputs, batching, /*is_input=*/false,
                           signature.outputs_unknown.empty());
  if (c.outputs.empty()) {
    refuse(config, "lists no output" + (signature.outputs_unknown.empty()
                                            ? " (the package's: " + nameList(signature.outputs) + ")"
                                            : " and they cannot be completed: " + signature.outputs_unknown));
  }

  auto groups = config.find("instance_group");
  if (groups != config.end() && groups->is_array()) {
    for (std::size_t g = 0; g < groups->size(); ++g) {
      const json& group = (*groups)[g];
      const std::string kind = group.value("kind", std::string("KIND_AUTO"));
      const int count = group.value("count", 1);
      const std::string where = "instance_group[" + std::to_string(g) + "] '" + group.value("name", std::string()) + "'";
      if (count < 0) refuse(config, where + " count is " + std::to_string(count));
      std::vector<std::int64_t> ids;
      if (kind == "KIND_GPU") {
        for (const json& id : group.value("gpus", json::array())) ids.push_back(id.get<std::int64_t>());
        if (ids.empty()) refuse(config, where + " is KIND_GPU but names no GPU (none visible to Triton?)");
      } else {
        ids.push_back(0);
      }
      for (std::int64_t id : ids) {
        try {
          c.instances_per_device[instanceDevice(kind, id, signature, parameters, where)] += count;
        } catch (const Error& e) {
          refuse(config, e.what());
        }
      }
    }
  }
  return c;
}

json controlModelConfig(json config, bool auto_complete) {
  struct Io {
    const char* name;
    const char* type;
    bool optional;
  };
  static const Io inputs[] = {{"action", "TYPE_STRING", false},
                              {"model", "TYPE_STRING", false},
                              {"weights", "TYPE_STRING", true},
                              {"version", "TYPE_STRING", true},
                              {"model_version", "TYPE_INT64", true}};
  static const Io outputs[] = {
      {"status", "TYPE_STRING", false}, {"active_version", "TYPE_STRING", false}, {"commits", "TYPE_INT64", false}};
  const std::int64_t mbs = config.value("max_batch_size", 0);
  if (mbs != 0) {
    refuse(config, "max_batch_size is " + std::to_string(mbs) + "; a weights control model takes 0");
  }
  auto fill = [&](const char* key, const auto& ios, bool inputs_list) {
    json& list = config[key];
    if (!list.is_array()) list = json::array();
    for (const Io& io : ios) {
      auto it = std::find_if(list.begin(), list.end(),
                             [&](const json& e) { return e.value("name", std::string()) == io.name; });
      if (it == list.end()) {
        if (!auto_complete) {
          refuse(config, std::string(key) + " lacks '" + io.name + "' (" + io.type + " dims [1]) of a weights control model");
        }
        json entry = {{"name", io.name}, {"data_type", io.type}, {"dims", json::array({1})}};
        if (inputs_list) entry["optional"] = io.optional;
        list.push_back(entry);
        continue;
      }
      if (it->value("data_type", std::string()) != io.type) {
        refuse(config, std::string(key) + " '" + io.name + "' of a weights control model is " + io.type + ", not " +
                           it->value("data_type", std::string("unset")));
      }
    }
  };
  fill("input", inputs, true);
  fill("output", outputs, false);
  return config;
}

}  // namespace aotiplug::triton
