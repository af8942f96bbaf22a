// SPDX-License-Identifier: BSD-3-Clause
// aotiplug::ExternKernels: the extern-kernel file's nodes bound to the dispatcher's
// schemas at load; boxed calls with the model's flat arguments at run time.
#include <aotiplug/runner/extern_kernels.h>

#include <aotiplug/error.h>
#include <aotiplug/status_code.h>

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/ivalue.h>
#include <ATen/core/jit_type.h>
#include <ATen/Tensor.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <optional>
#include <utility>

namespace aotiplug {

namespace {

using nlohmann::json;

// Where an operator of a well-known namespace usually comes from.
std::string providerHint(const std::string& op) {
  const std::string ns = op.substr(0, op.find("::"));
  if (ns == "torchvision") {
    return "load a C++ build of torchvision's ops (libtorchvision.so from torchvision's CMake "
           "build for this torch; the wheel's _C.so is a Python extension a C++ host cannot load)";
  }
  if (ns == "torchaudio") return "load torchaudio's op library (torchaudio/lib/libtorchaudio.so)";
  if (ns == "fbgemm") return "load fbgemm_gpu's op library (fbgemm_gpu_py.so)";
  return "load the library that registers the '" + ns + "' operators (TORCH_LIBRARY(" + ns +
         ", ...))";
}

// serde (torch/_export/serde/schema.py) numbering to c10's.
std::optional<int64_t> scalarTypeFromSerde(int64_t v) {
  if (v >= 1 && v <= 12) return v - 1;  // BYTE..BOOL = Byte..Bool
  switch (v) {
    case 13: return static_cast<int64_t>(c10::ScalarType::BFloat16);
    case 28: return static_cast<int64_t>(c10::ScalarType::UInt16);
    case 29: return static_cast<int64_t>(c10::ScalarType::Float8_e4m3fn);
    case 30: return static_cast<int64_t>(c10::ScalarType::Float8_e5m2);
    case 31: return static_cast<int64_t>(c10::ScalarType::Float8_e4m3fnuz);
    case 32: return static_cast<int64_t>(c10::ScalarType::Float8_e5m2fnuz);
    default: return std::nullopt;
  }
}
std::optional<int64_t> layoutFromSerde(int64_t v) {
  switch (v) {
    case 1: return static_cast<int64_t>(c10::Layout::Sparse);
    case 2: return static_cast<int64_t>(c10::Layout::SparseCsr);
    case 3: return static_cast<int64_t>(c10::Layout::SparseCsc);
    case 4: return static_cast<int64_t>(c10::Layout::SparseBsr);
    case 5: return static_cast<int64_t>(c10::Layout::SparseBsc);
    case 6: return static_cast<int64_t>(c10::Layout::Mkldnn);
    case 7: return static_cast<int64_t>(c10::Layout::Strided);
    default: return std::nullopt;
  }
}
std::optional<int64_t> memoryFormatFromSerde(int64_t v) {
  switch (v) {
    case 1: return static_cast<int64_t>(c10::MemoryFormat::Contiguous);
    case 2: return static_cast<int64_t>(c10::MemoryFormat::ChannelsLast);
    case 3: return static_cast<int64_t>(c10::MemoryFormat::ChannelsLast3d);
    case 4: return static_cast<int64_t>(c10::MemoryFormat::Preserve);
    default: return std::nullopt;
  }
}

// The one key of a serialized Argument object ({"as_int": 3} -> "as_int").
std::string argumentKind(const json& arg) {
  if (!arg.is_object() || arg.empty()) return "(not an argument object)";
  for (auto it = arg.begin(); it != arg.end(); ++it) {
    if (!it.value().is_null()) return it.key();
  }
  return arg.begin().key();
}

}  // namespace

struct ExternKernels::Node {
  enum class Slot { kInt, kIntList, kTensor, kTensorList, kOptionalTensorList };
  struct Dynamic {
    Dynamic(std::size_t i, Slot s, std::size_t n = 1) : index(i), slot(s), length(n) {}
    std::size_t index;        // in the stack
    Slot slot;
    std::size_t length;       // list length
    std::vector<bool> present;  // kOptionalTensorList: which elements are tensors
  };
  enum class Out { kTensor, kTensorList, kInt, kNone };
  struct Output {
    Output(Out k, std::size_t n = 1) : kind(k), length(n) {}
    Out kind;
    std::size_t length;
  };

  std::string target;
  c10::OperatorHandle op;
  std::vector<c10::IValue> stack;  // static arguments and defaults filled in
  std::vector<Dynamic> dynamic;
  std::vector<Output> outputs;
  int ints_in = 0, tensors_in = 0, ints_out = 0, tensors_out = 0;

  Node(std::string t, c10::OperatorHandle h) : target(std::move(t)), op(std::move(h)) {}
};

std::string ExternKernels::fileFor(const std::string& model_path) {
  std::filesystem::path file = model_path;
  file.replace_extension(".json");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) return {};
  return file.string();
}

ExternKernels::ExternKernels(const std::string& json_path, const std::string& model_path,
                             c10::Device device)
    : model_path_(model_path) {
  const std::string where = "model " + model_path + " (extern kernels in " + json_path + ")";
  json doc;
  try {
    std::ifstream in(json_path);
    doc = json::parse(in);
  } catch (const std::exception& e) {
    throw Error(StatusCode::kModelError, "cannot read the extern-kernel file " + json_path +
                                             " of model " + model_path + ": " + e.what());
  }
  if (!doc.is_object() || !doc.contains("nodes") || !doc["nodes"].is_array()) {
    throw Error(StatusCode::kModelError, "the extern-kernel file " + json_path + " of model " +
                                             model_path + " has no \"nodes\" list");
  }
  const json& nodes = doc["nodes"];
  nodes_.reserve(nodes.size());
  // A value of the wrong JSON type anywhere (a hand-edited or corrupt file) is the
  // file's fault, said as such, not an exception of the JSON library.
  try {
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      const json& entry = nodes[n];
      const json* node = entry.contains("node") ? &entry["node"] : nullptr;
      if (node == nullptr || !node->contains("target") || !(*node)["target"].is_string()) {
        throw Error(StatusCode::kModelError, where + ": node " + std::to_string(n) + " has no target");
      }
      const std::string target = (*node)["target"].get<std::string>();
      const std::string at_node = where + ", node " + std::to_string(n) + " (" + target + ")";
      if (target == "call_torchbind") {
        throw Error(StatusCode::kModelError,
                    at_node + ": calls a TorchBind method, which aotiplug's extern-kernel "
                              "executor does not handle");
      }
      const auto dot = target.find('.');
      const std::string name = target.substr(0, dot);
      const std::string overload = dot == std::string::npos ? std::string() : target.substr(dot + 1);
      auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
      if (!handle) {
        throw Error(StatusCode::kFailedPrecondition,
                    "model " + model_path + " needs operator " + target +
                        ", which no library loaded in this process registers: " +
                        providerHint(name) + " before opening the model (aotiplug run --op-library PATH; "
                        "a host names it in ExecutorConfig::opLibraries or calls aotiplug::loadOpLibrary)");
      }
      Node k(target, *handle);
      const c10::FunctionSchema& schema = k.op.schema();
      const auto& params = schema.arguments();
      k.stack.resize(params.size());
      std::vector<bool> filled(params.size(), false);
      const json inputs = node->value("inputs", json::array());
      auto differs = [&](const std::string& what) {
        return Error(StatusCode::kIncompatible,
                     at_node + ": " + what + "; the registered schema is " + c10::toString(schema) +
                         ": the op library loaded differs from the one the model was compiled with");
      };
      for (const json& input : inputs) {
        const std::string arg_name = input.value("name", std::string());
        std::size_t i = 0;
        while (i < params.size() && params[i].name() != arg_name) ++i;
        if (i == params.size()) throw differs("the model passes argument '" + arg_name + "'");
        filled[i] = true;
        const json& arg = input.contains("arg") ? input["arg"] : json();
        const std::string kind = argumentKind(arg);
        const json& value = arg.is_object() && arg.contains(kind) ? arg[kind] : json();
        c10::TypePtr type = params[i].type();
        const bool optional = type->kind() == c10::TypeKind::OptionalType;
        if (optional) type = type->castRaw<c10::OptionalType>()->getElementType();
        const std::string described = "argument '" + arg_name + "' (" + kind + " for " +
                                      params[i].type()->str() + ")";
        auto unhandled = [&] {
          return Error(StatusCode::kModelError,
                       at_node + ": " + described +
                           " is an argument kind aotiplug's extern-kernel executor does not handle");
        };
        auto mismatch = [&] { return differs("the model passes " + described); };
        if (kind == "as_none") {
          if (!optional && !params[i].default_value()) throw mismatch();
          k.stack[i] = c10::IValue();
          continue;
        }
        switch (type->kind()) {
          case c10::TypeKind::TensorType:
            if (kind != "as_tensor") throw mismatch();
            k.dynamic.emplace_back(i, Node::Slot::kTensor);
            k.tensors_in += 1;
            break;
          case c10::TypeKind::IntType:
          case c10::TypeKind::SymIntType:
            if (kind != "as_int" && kind != "as_sym_int") throw mismatch();
            k.dynamic.emplace_back(i, Node::Slot::kInt);
            k.ints_in += 1;
            break;
          case c10::TypeKind::FloatType:
            if (kind == "as_float") k.stack[i] = value.get<double>();
            else if (kind == "as_int") k.stack[i] = static_cast<double>(value.get<int64_t>());
            else throw mismatch();
            break;
          case c10::TypeKind::BoolType:
            if (kind != "as_bool") throw mismatch();
            k.stack[i] = value.get<bool>();
            break;
          case c10::TypeKind::StringType:
            if (kind != "as_string") throw mismatch();
            k.stack[i] = value.get<std::string>();
            break;
          case c10::TypeKind::NumberType:  // Scalar
            if (kind == "as_int") {
              k.dynamic.emplace_back(i, Node::Slot::kInt);
              k.ints_in += 1;
            } else if (kind == "as_float") {
              k.stack[i] = value.get<double>();
            } else {
              throw unhandled();  // a bool Scalar: 2.11's code generator gives it an int slot
            }
            break;
          case c10::TypeKind::ScalarTypeType: {
            const auto v = kind == "as_scalar_type" ? scalarTypeFromSerde(value.get<int64_t>()) : std::nullopt;
            if (!v) throw mismatch();
            k.stack[i] = *v;
            break;
          }
          case c10::TypeKind::LayoutType: {
            const auto v = kind == "as_layout" ? layoutFromSerde(value.get<int64_t>()) : std::nullopt;
            if (!v) throw mismatch();
            k.stack[i] = *v;
            break;
          }
          case c10::TypeKind::MemoryFormatType: {
            const auto v = kind == "as_memory_format" ? memoryFormatFromSerde(value.get<int64_t>()) : std::nullopt;
            if (!v) throw mismatch();
            k.stack[i] = *v;
            break;
          }
          case c10::TypeKind::DeviceObjType:
            if (kind != "as_device") throw mismatch();
            k.stack[i] = device;  // the model's device, as the package's runners do
            break;
          case c10::TypeKind::ListType: {
            const c10::TypePtr element = type->castRaw<c10::ListType>()->getElementType();
            const auto ek = element->kind();
            if (ek == c10::TypeKind::TensorType && kind == "as_tensors") {
              k.dynamic.emplace_back(i, Node::Slot::kTensorList, value.size());
              k.tensors_in += static_cast<int>(value.size());
            } else if (ek == c10::TypeKind::OptionalType && kind == "as_optional_tensors") {
              Node::Dynamic d(i, Node::Slot::kOptionalTensorList, value.size());
              for (const json& e : value) {
                const bool is_tensor = e.contains("as_tensor");
                d.present.push_back(is_tensor);
                k.tensors_in += is_tensor ? 1 : 0;
              }
              k.dynamic.push_back(std::move(d));
            } else if ((ek == c10::TypeKind::IntType || ek == c10::TypeKind::SymIntType) &&
                       (kind == "as_ints" || kind == "as_sym_ints")) {
              k.dynamic.emplace_back(i, Node::Slot::kIntList, value.size());
              k.ints_in += static_cast<int>(value.size());
            } else if (ek == c10::TypeKind::FloatType && kind == "as_floats") {
              k.stack[i] = value.get<std::vector<double>>();
            } else if (ek == c10::TypeKind::BoolType && kind == "as_bools") {
              c10::List<bool> list;
              for (const json& e : value) list.push_back(e.get<bool>());
              k.stack[i] = std::move(list);
            } else if (ek == c10::TypeKind::StringType && kind == "as_strings") {
              k.stack[i] = value.get<std::vector<std::string>>();
            } else {
              throw unhandled();
            }
            break;
          }
          default:
            throw unhandled();
        }
      }
      for (std::size_t i = 0; i < params.size(); ++i) {
        if (filled[i]) continue;
        if (!params[i].default_value()) {
          throw differs("the model does not pass argument '" + params[i].name() +
                        "', which has no default");
        }
        k.stack[i] = *params[i].default_value();
      }
      const json outputs = node->value("outputs", json::array());
      const auto& returns = schema.returns();
      if (outputs.size() != returns.size()) {
        throw differs("the model expects " + std::to_string(outputs.size()) + " output(s), the op returns " +
                      std::to_string(returns.size()));
      }
      for (std::size_t r = 0; r < outputs.size(); ++r) {
        const std::string kind = argumentKind(outputs[r]);
        const json& value = outputs[r].contains(kind) ? outputs[r][kind] : json();
        if (kind == "as_tensor") {
          k.outputs.emplace_back(Node::Out::kTensor);
          k.tensors_out += 1;
        } else if (kind == "as_tensors") {
          k.outputs.emplace_back(Node::Out::kTensorList, value.size());
          k.tensors_out += static_cast<int>(value.size());
        } else if (kind == "as_int") {
          k.outputs.emplace_back(Node::Out::kInt);  // its int slot holds the compiled value
          k.ints_out += 1;
        } else if (kind == "as_none") {
          k.outputs.emplace_back(Node::Out::kNone, 0);
        } else {
          throw Error(StatusCode::kModelError,
                      at_node + ": output " + std::to_string(r) + " is " + kind +
                          ", an output kind aotiplug's extern-kernel executor does not handle");
        }
      }
      nodes_.push_back(std::move(k));
    }
  } catch (const json::exception& e) {
    throw Error(StatusCode::kModelError, where + ": malformed extern-kernel file: " + e.what());
  }
}

ExternKernels::~ExternKernels() = default;

std::vector<std::string> ExternKernels::operators() const {
  std::vector<std::string> out;
  for (const Node& n : nodes_) out.push_back(n.target);
  return out;
}

namespace {
struct ThreadError {
  const ExternKernels* owner = nullptr;
  std::string message;
};
thread_local ThreadError t_error;
}  // namespace

std::string ExternKernels::takeError() noexcept {
  if (t_error.owner != this) return {};
  t_error.owner = nullptr;
  return std::move(t_error.message);
}

void ExternKernels::call_function(int extern_node_index, int num_ints, int64_t* ints,
                                  int num_tensors, AtenTensorHandle* tensors) {
  // Named only on failure: nothing is formatted on the run path.
  auto where = [&] {
    std::string text = "extern kernel " + std::to_string(extern_node_index);
    if (extern_node_index >= 0 && static_cast<std::size_t>(extern_node_index) < nodes_.size()) {
      text += " (" + nodes_[static_cast<std::size_t>(extern_node_index)].target + ")";
    }
    return text + " of model " + model_path_ + " failed";
  };
  try {
    if (extern_node_index < 0 || static_cast<std::size_t>(extern_node_index) >= nodes_.size()) {
      throw Error(StatusCode::kModelError,
                  "the model library called it, but its extern-kernel file lists " +
                      std::to_string(nodes_.size()) + " node(s)");
    }
    const Node& n = nodes_[static_cast<std::size_t>(extern_node_index)];
    if (num_ints != n.ints_in + n.ints_out || num_tensors != n.tensors_in + n.tensors_out) {
      throw Error(StatusCode::kModelError,
                  "called with " + std::to_string(num_ints) + " int(s) and " +
                      std::to_string(num_tensors) + " tensor(s), its extern-kernel file says " +
                      std::to_string(n.ints_in + n.ints_out) + " and " +
                      std::to_string(n.tensors_in + n.tensors_out));
    }
    auto tensorAt = [&](int i) -> at::Tensor& { return *reinterpret_cast<at::Tensor*>(tensors[i]); };
    std::vector<c10::IValue> stack = n.stack;
    int ip = 0, tp = 0;
    for (const Node::Dynamic& d : n.dynamic) {
      switch (d.slot) {
        case Node::Slot::kInt:
          stack[d.index] = ints[ip++];
          break;
        case Node::Slot::kIntList:
          stack[d.index] = std::vector<int64_t>(ints + ip, ints + ip + d.length);
          ip += static_cast<int>(d.length);
          break;
        case Node::Slot::kTensor:
          stack[d.index] = tensorAt(tp++);
          break;
        case Node::Slot::kTensorList: {
          std::vector<at::Tensor> list;
          for (std::size_t e = 0; e < d.length; ++e) list.push_back(tensorAt(tp++));
          stack[d.index] = std::move(list);
          break;
        }
        case Node::Slot::kOptionalTensorList: {
          c10::List<std::optional<at::Tensor>> list;
          for (std::size_t e = 0; e < d.length; ++e) {
            list.push_back(d.present[e] ? std::optional<at::Tensor>(tensorAt(tp++)) : std::nullopt);
          }
          stack[d.index] = std::move(list);
          break;
        }
      }
    }
    n.op.callBoxed(stack);
    if (stack.size() != n.outputs.size()) {
      throw Error(StatusCode::kModelError, "returned " + std::to_string(stack.size()) +
                                               " value(s), expected " +
                                               std::to_string(n.outputs.size()));
    }
    for (std::size_t r = 0; r < n.outputs.size(); ++r) {
      const Node::Output& o = n.outputs[r];
      switch (o.kind) {
        case Node::Out::kTensor:
          tensorAt(tp++) = stack[r].toTensor();
          break;
        case Node::Out::kTensorList: {
          const auto list = stack[r].toTensorVector();
          if (list.size() != o.length) {
            throw Error(StatusCode::kModelError,
                        "output " + std::to_string(r) + " holds " + std::to_string(list.size()) +
                            " tensors, the model was compiled for " + std::to_string(o.length));
          }
          for (const at::Tensor& t : list) tensorAt(tp++) = t;
          break;
        }
        case Node::Out::kInt: {
          const int64_t got = stack[r].toInt();
          if (got != ints[ip]) {
            throw Error(StatusCode::kModelError,
                        "output " + std::to_string(r) + " is " + std::to_string(got) +
                            ", the model was compiled for " + std::to_string(ints[ip]));
          }
          ++ip;
          break;
        }
        case Node::Out::kNone:
          break;
      }
    }
  } catch (const std::exception& e) {
    if (t_error.owner != this) {
      t_error.owner = this;
      t_error.message = where() + ": " + e.what();
    }
    throw;  // the shim turns it into an error code
  } catch (...) {
    if (t_error.owner != this) {
      t_error.owner = this;
      t_error.message = where();
    }
    throw;
  }
}

}  // namespace aotiplug
