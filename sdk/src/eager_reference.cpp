// SPDX-License-Identifier: BSD-3-Clause
// compareWithEager (eager_reference.h).

#include <aotiplug/executor/eager_reference.h>

#include <ATen/ops/abs.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/max.h>
#include <ATen/ops/sub.h>

#include <algorithm>
#include <sstream>

namespace aotiplug {
namespace {

std::string describe(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream os;
  os << c10::toString(t.scalar_type()) << " " << t.sizes();
  return os.str();
}

double toleranceFor(c10::ScalarType dtype) {
  if (dtype == at::kHalf || dtype == at::kBFloat16) return 2e-2;
  if (at::isFloatingType(dtype) || at::isComplexType(dtype)) return 1e-4;
  return 0.0;
}

}  // namespace

EagerComparison compareWithEager(const std::vector<at::Tensor>& outputs,
                                 const std::vector<at::Tensor>& reference) {
  EagerComparison result;
  if (outputs.size() != reference.size()) {
    result.mismatch = "the model returned " + std::to_string(outputs.size()) +
                      " output(s), the eager reference has " + std::to_string(reference.size());
    return result;
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const at::Tensor& want = reference[i];
    const at::Tensor got = outputs[i].defined() ? outputs[i].cpu() : outputs[i];
    if (!got.defined() || !want.defined() || got.sizes() != want.sizes() ||
        got.scalar_type() != want.scalar_type()) {
      result.mismatch = "output " + std::to_string(i) + " is " + describe(got) +
                        ", the eager reference " + describe(want);
      return result;
    }
    if (want.numel() == 0) continue;
    const at::Tensor got_d = got.to(at::kDouble), want_d = want.to(at::kDouble);
    const at::Tensor diffs = at::sub(got_d, want_d).abs();
    const double diff = diffs.max().item<double>();
    const double scale = std::max(1.0, want_d.abs().max().item<double>());
    result.max_abs_diff = std::max(result.max_abs_diff, diff);
    const double allowed = toleranceFor(want.scalar_type()) * scale;
    if (!(diff <= allowed) && result.mismatch.empty()) {  // NaN differences fail too
      // Where: the element with the worst difference (a NaN counts as the worst).
      std::int64_t flat = diffs.reshape({-1}).argmax().item<std::int64_t>();
      std::vector<std::int64_t> at_index(static_cast<std::size_t>(want.dim()));
      for (std::int64_t d = want.dim() - 1; d >= 0; --d) {
        at_index[static_cast<std::size_t>(d)] = flat % want.size(d);
        flat /= want.size(d);
      }
      std::ostringstream os;
      os << "output " << i << " differs from eager by " << diff << " at index [";
      for (std::size_t d = 0; d < at_index.size(); ++d) os << (d == 0 ? "" : ", ") << at_index[d];
      at::Tensor g = got_d, w = want_d;
      for (std::int64_t index : at_index) {
        g = g.select(0, index);
        w = w.select(0, index);
      }
      os << "] (" << g.item<double>() << ", eager " << w.item<double>() << "; allowed " << allowed << ")";
      result.mismatch = os.str();
    }
  }
  result.match = result.mismatch.empty();
  return result;
}

}  // namespace aotiplug
