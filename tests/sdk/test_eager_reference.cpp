// SPDX-License-Identifier: BSD-3-Clause
// Unit tests of compareWithEager (eager_reference.h), the one "matches eager" rule of the
// CLI, the plugin probe and the conformance kit.
#define BOOST_TEST_MODULE eager_reference
#include <boost/test/unit_test.hpp>

#include <aotiplug/executor/eager_reference.h>

#include <ATen/ATen.h>

#include <limits>
#include <string>
#include <vector>

using aotiplug::compareWithEager;

namespace {

bool has(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return true;
  BOOST_TEST_MESSAGE("'" << part << "' not in: " << text);
  return false;
}

}  // namespace

BOOST_AUTO_TEST_CASE(equal_and_close_outputs_match) {
  const at::Tensor a = at::rand({4, 8});
  const at::Tensor idx = at::arange(6);
  auto r = compareWithEager({a, idx}, {a.clone(), idx.clone()});
  BOOST_TEST(r.match);
  BOOST_TEST(r.mismatch.empty());
  BOOST_TEST(r.max_abs_diff == 0.0);
  // Within 1e-4 of the reference's magnitude (here 100).
  const at::Tensor big = at::full({3}, 100.0);
  r = compareWithEager({big + 0.009}, {big});
  BOOST_TEST(r.match, r.mismatch);
  BOOST_TEST(r.max_abs_diff > 0.0);
  // Half precision gets 2e-2.
  r = compareWithEager({at::ones({3}, at::kHalf) * 1.01}, {at::ones({3}, at::kHalf)});
  BOOST_TEST(r.match, r.mismatch);
  BOOST_TEST(compareWithEager({}, {}).match);
}

BOOST_AUTO_TEST_CASE(mismatches_name_the_output_and_why) {
  const at::Tensor a = at::zeros({2, 3});
  auto r = compareWithEager({a}, {a, a});
  BOOST_TEST(!r.match);
  BOOST_TEST(has(r.mismatch, "the model returned 1 output(s), the eager reference has 2"));
  r = compareWithEager({a, a.to(at::kDouble)}, {a, a});
  BOOST_TEST(!r.match);
  BOOST_TEST(has(r.mismatch, "output 1 is Double [2, 3], the eager reference Float [2, 3]"));
  r = compareWithEager({a.reshape({3, 2})}, {a});
  BOOST_TEST(has(r.mismatch, "output 0 is Float [3, 2]"));
  r = compareWithEager({a + 0.001}, {a});
  BOOST_TEST(!r.match);
  BOOST_TEST(has(r.mismatch, "output 0 differs from eager by 0.001"));
  // The worst element, where it is, and both values.
  at::Tensor off = at::zeros({2, 3});
  off.index_put_({1, 2}, 0.5);
  off.index_put_({0, 1}, 0.25);
  r = compareWithEager({a, off}, {a, a});
  BOOST_TEST(!r.match);
  BOOST_TEST(has(r.mismatch, "output 1 differs from eager by 0.5 at index [1, 2] (0.5, eager 0; allowed 0.0001)"),
             r.mismatch);
  // Integers must be equal; NaN never matches.
  BOOST_TEST(!compareWithEager({at::arange(4) + 1}, {at::arange(4)}).match);
  BOOST_TEST(!compareWithEager({at::full({2}, std::numeric_limits<float>::quiet_NaN())}, {at::zeros({2})}).match);
  BOOST_TEST(!compareWithEager({at::Tensor()}, {a}).match);
}
