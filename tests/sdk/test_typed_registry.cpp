// SPDX-License-Identifier: BSD-3-Clause
// Unit tests of aotiplug::TypedRegistry: priorities and tie rule, duplicate and missing
// keys, creator failures, library removal, leases, and concurrent use.
#define BOOST_TEST_MODULE typed_registry
#include <boost/test/unit_test.hpp>

#include <aotiplug/registry/typed_registry.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using aotiplug::Created;
using aotiplug::Error;
using aotiplug::Origin;
using aotiplug::Status;
using aotiplug::StatusCode;

struct Widget {
  explicit Widget(std::string made_by) : made_by(std::move(made_by)) {}
  virtual ~Widget() = default;
  std::string made_by;
};

enum class Kind { kRed = 1, kBlue = 2, kGreen = 3 };
using Registry = aotiplug::TypedRegistry<Kind, Widget, const std::string&>;

Registry::Creator maker(const std::string& who) {
  return [who](const std::string& arg) -> Created<Widget> {
    return std::make_unique<Widget>(who + ":" + arg);
  };
}

Origin plugin(const std::string& name) { return Origin{name, "/plugins/lib" + name + ".so"}; }

// Runs f, expecting an aotiplug::Error with `code` whose message contains every fragment.
template <class F>
void expectError(F&& f, StatusCode code, const std::vector<std::string>& fragments) {
  try {
    f();
    BOOST_FAIL("expected an aotiplug::Error");
  } catch (const Error& e) {
    BOOST_TEST(static_cast<int>(e.code()) == static_cast<int>(code));
    for (const std::string& fragment : fragments) {
      BOOST_TEST(std::string(e.what()).find(fragment) != std::string::npos,
                 "message '" << e.what() << "' lacks '" << fragment << "'");
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(creates_with_the_registered_creator) {
  Registry registry("widget registry");
  registry.add(Kind::kRed, maker("a"), aotiplug::kPriorityDefault, plugin("a"));
  auto w = registry.create(Kind::kRed, "x");
  BOOST_TEST(w->made_by == "a:x");
  BOOST_TEST(registry.has(Kind::kRed));
  BOOST_TEST(!registry.has(Kind::kBlue));
}

BOOST_AUTO_TEST_CASE(missing_key_names_the_key_and_lists_registered_keys) {
  Registry registry("widget registry");
  registry.add(Kind::kRed, maker("a"), aotiplug::kPriorityDefault, plugin("a"));
  registry.add(Kind::kGreen, maker("b"), aotiplug::kPriorityDefault, plugin("b"));
  expectError([&] { registry.create(Kind::kBlue, "x"); }, StatusCode::kNotFound,
              {"widget registry", "nothing is registered for 2", "1 (plugin 'a'",
               "3 (plugin 'b'"});
}

BOOST_AUTO_TEST_CASE(empty_registry_says_nothing_is_registered) {
  Registry registry("widget registry");
  expectError([&] { registry.create(Kind::kBlue, "x"); }, StatusCode::kNotFound,
              {"registered: nothing"});
}

BOOST_AUTO_TEST_CASE(higher_priority_wins_whatever_the_order) {
  for (bool high_first : {true, false}) {
    Registry registry("r");
    auto add_high = [&] {
      return registry.add(Kind::kRed, maker("high"), aotiplug::kPriorityPreferred,
                          plugin("high"));
    };
    auto add_low = [&] {
      return registry.add(Kind::kRed, maker("low"), aotiplug::kPriorityFallback, plugin("low"));
    };
    if (high_first) {
      add_high();
      auto lost = add_low();
      BOOST_TEST(!lost.registration.active);
      BOOST_REQUIRE(lost.rival.has_value());
      BOOST_TEST(lost.rival->origin.plugin == "high");
      BOOST_TEST(lost.rival->active);
    } else {
      add_low();
      auto won = add_high();
      BOOST_TEST(won.registration.active);
      BOOST_REQUIRE(won.rival.has_value());
      BOOST_TEST(won.rival->origin.plugin == "low");
      BOOST_TEST(!won.rival->active);
    }
    BOOST_TEST(registry.create(Kind::kRed, "x")->made_by == "high:x");
    BOOST_TEST(registry.winner(Kind::kRed)->origin.plugin == "high");
  }
}

BOOST_AUTO_TEST_CASE(equal_priority_goes_to_the_plugin_name_that_sorts_first) {
  for (bool alpha_first : {true, false}) {
    Registry registry("r");
    if (alpha_first) {
      registry.add(Kind::kRed, maker("alpha"), 5, plugin("alpha"));
      registry.add(Kind::kRed, maker("beta"), 5, plugin("beta"));
    } else {
      registry.add(Kind::kRed, maker("beta"), 5, plugin("beta"));
      registry.add(Kind::kRed, maker("alpha"), 5, plugin("alpha"));
    }
    BOOST_TEST(registry.create(Kind::kRed, "x")->made_by == "alpha:x");
    auto all = registry.registrations();
    BOOST_REQUIRE(all.size() == 2u);
    BOOST_TEST(all[0].origin.plugin == "alpha");
    BOOST_TEST(all[0].active);
    BOOST_TEST(all[1].origin.plugin == "beta");
    BOOST_TEST(!all[1].active);
  }
}

BOOST_AUTO_TEST_CASE(removing_the_winner_lets_the_fallback_serve) {
  Registry registry("r");
  auto high = registry.add(Kind::kRed, maker("high"), 10, plugin("high"));
  registry.add(Kind::kRed, maker("low"), 1, plugin("low"));
  BOOST_TEST(registry.remove(high.registration.id));
  BOOST_TEST(!registry.remove(high.registration.id), "removing twice is a no-op");
  BOOST_TEST(registry.create(Kind::kRed, "x")->made_by == "low:x");
}

BOOST_AUTO_TEST_CASE(same_origin_registering_a_key_twice_is_refused) {
  Registry registry("r");
  registry.add(Kind::kRed, maker("a"), 1, plugin("a"));
  expectError([&] { registry.add(Kind::kRed, maker("a"), 2, plugin("a")); },
              StatusCode::kAlreadyExists, {"plugin 'a'", "registered 1 twice"});
  BOOST_TEST(registry.registrations().size() == 1u);
}

BOOST_AUTO_TEST_CASE(empty_creator_is_refused) {
  Registry registry("r");
  expectError([&] { registry.add(Kind::kRed, Registry::Creator(), 1, plugin("a")); },
              StatusCode::kInvalidArgument, {"empty creator"});
}

BOOST_AUTO_TEST_CASE(creator_failures_become_errors_naming_the_plugin) {
  Registry registry("r");
  registry.add(Kind::kRed,
               [](const std::string&) -> Created<Widget> {
                 throw std::runtime_error("no such widget");
               },
               1, plugin("thrower"));
  registry.add(Kind::kBlue,
               [](const std::string&) -> Created<Widget> {
                 return Status(StatusCode::kUnavailable, "no blue paint");
               },
               1, plugin("status"));
  registry.add(Kind::kGreen,
               [](const std::string&) -> Created<Widget> { return std::unique_ptr<Widget>(); },
               1, plugin("null"));
  expectError([&] { registry.create(Kind::kRed, "x"); }, StatusCode::kPluginError,
              {"plugin 'thrower'", "threw", "no such widget"});
  expectError([&] { registry.create(Kind::kBlue, "x"); }, StatusCode::kUnavailable,
              {"plugin 'status'", "no blue paint"});
  expectError([&] { registry.create(Kind::kGreen, "x"); }, StatusCode::kPluginError,
              {"plugin 'null'", "returned no product"});
}

BOOST_AUTO_TEST_CASE(remove_library_drops_all_its_registrations) {
  Registry registry("r");
  registry.add(Kind::kRed, maker("a"), 1, plugin("a"));
  registry.add(Kind::kBlue, maker("a"), 1, plugin("a"));
  registry.add(Kind::kBlue, maker("b"), 0, plugin("b"));
  BOOST_TEST(registry.removeLibrary("/plugins/liba.so") == 2u);
  BOOST_TEST(!registry.has(Kind::kRed));
  BOOST_TEST(registry.create(Kind::kBlue, "x")->made_by == "b:x");
  BOOST_TEST((registry.keys() == std::vector<Kind>{Kind::kBlue}));
}

BOOST_AUTO_TEST_CASE(products_hold_the_lease_of_their_library) {
  Registry registry("r");
  registry.add(Kind::kRed, maker("a"), 1, plugin("a"));
  auto library = std::make_shared<int>(42);  // stands in for a loaded library
  std::weak_ptr<int> watch = library;
  registry.attachLease("/plugins/liba.so", library);
  auto product = registry.create(Kind::kRed, "x");
  library.reset();  // the loader lets go
  BOOST_TEST(!watch.expired(), "the product keeps the library");
  product.reset();
  BOOST_TEST(watch.expired(), "the last product released it");
}

BOOST_AUTO_TEST_CASE(the_registry_itself_never_keeps_a_library) {
  Registry registry("r");
  registry.add(Kind::kRed, maker("a"), 1, plugin("a"));
  auto library = std::make_shared<int>(1);
  std::weak_ptr<int> watch = library;
  registry.attachLease("/plugins/liba.so", library);
  library.reset();
  BOOST_TEST(watch.expired());
  BOOST_TEST(registry.create(Kind::kRed, "x")->made_by == "a:x");
}

BOOST_AUTO_TEST_CASE(concurrent_register_unregister_and_create) {
  Registry registry("r");
  // A stable fallback, so creates always have something to hit.
  registry.add(Kind::kRed, maker("base"), 0, plugin("base"));
  // Boost.Test assertions are not thread-safe: workers count problems, the main thread checks.
  std::atomic<bool> stop{false};
  std::atomic<long> problems{0};
  std::atomic<long> created{0};
  std::atomic<long> churned{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      const std::string name = "churn" + std::to_string(t);
      while (!stop.load()) {
        auto r = registry.add(Kind::kRed, maker(name), t + 1, plugin(name));
        registry.add(Kind::kBlue, maker(name), t + 1, plugin(name));
        registry.keys();
        registry.remove(r.registration.id);
        registry.removeLibrary("/plugins/lib" + name + ".so");
        churned.fetch_add(1);
      }
    });
  }
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        auto w = registry.create(Kind::kRed, "x");
        if (w->made_by.empty()) problems.fetch_add(1);
        try {
          registry.create(Kind::kBlue, "y");
        } catch (const Error& e) {
          if (e.code() != StatusCode::kNotFound) problems.fetch_add(1);
        }
        registry.registrations();
        created.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  stop = true;
  for (auto& th : threads) th.join();
  BOOST_TEST(problems.load() == 0);
  BOOST_TEST(created.load() > 0);
  BOOST_TEST(churned.load() > 0);
  // Everything the churn threads added is gone again; the base registration stays.
  auto left = registry.registrations();
  BOOST_REQUIRE(left.size() == 1u);
  BOOST_TEST(left[0].origin.plugin == "base");
  BOOST_TEST_MESSAGE("creates: " << created.load() << ", register/unregister rounds: "
                                 << churned.load());
}

BOOST_AUTO_TEST_CASE(status_round_trips_error_codes) {
  Status s;
  try {
    throw Error(StatusCode::kIncompatible, "abi");
  } catch (...) {
    s = Status::fromCurrentException();
  }
  BOOST_TEST(static_cast<int>(s.code()) == static_cast<int>(StatusCode::kIncompatible));
  BOOST_TEST(s.message() == "abi");
  try {
    aotiplug::throwIfError(s, "plugin 'x'");
    BOOST_FAIL("throwIfError must throw");
  } catch (const Error& e) {
    BOOST_TEST(std::string(e.what()) == "plugin 'x': abi");
  }
  try {
    throw 7;
  } catch (...) {
    s = Status::fromCurrentException();
  }
  BOOST_TEST(static_cast<int>(s.code()) == static_cast<int>(StatusCode::kInternal));
}
