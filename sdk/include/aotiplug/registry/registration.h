// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// What a registration is and what it hands out, for any TypedRegistry (typed_registry.h):
//  - Priority: which of several registrations for one key serves it;
//  - Origin: who registered (a plugin and its library, or the host);
//  - Created<Product>: what a creator returns, a product or a Status;
//  - Leased<Product>: a created product that keeps its plugin library loaded.
//
// Ownership: a Leased product owns the product and a share of the lease on its library.
// Thread safety: plain values; Leased as std::unique_ptr (one owner at a time).

#include <aotiplug/status.h>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace aotiplug {

// aotiplug::Priority — which of several registrations for one key serves it (higher wins).
using Priority = std::int32_t;
inline constexpr Priority kPriorityFallback = 100;
inline constexpr Priority kPriorityDefault = 200;
inline constexpr Priority kPriorityPreferred = 300;

// aotiplug::Origin — who made a registration.
struct Origin {
  std::string plugin;   // the plugin's declared name; empty for the host itself
  std::string library;  // absolute path of the plugin library; empty for the host

  // "plugin 'cpu' (/opt/plugins/libaotiplug_cpu.so)", or "the host".
  std::string describe() const {
    if (plugin.empty() && library.empty()) return "the host";
    std::string text = "plugin '" + plugin + "'";
    if (!library.empty()) text += " (" + library + ")";
    return text;
  }
  friend bool operator==(const Origin& a, const Origin& b) {
    return a.plugin == b.plugin && a.library == b.library;
  }
};

using RegistrationId = std::uint64_t;

// aotiplug::Created<Product> — what a creator returns: a product, or a Status saying why
// not. Creators that cross the plugin boundary return errors this way instead of throwing.
template <class Product>
struct Created {
  Created(std::unique_ptr<Product> p) noexcept : product(std::move(p)) {}  // NOLINT
  template <class Derived,
            class = std::enable_if_t<std::is_convertible_v<Derived*, Product*>>>
  Created(std::unique_ptr<Derived> p) noexcept : product(std::move(p)) {}  // NOLINT
  Created(Status s) noexcept : status(std::move(s)) {}                      // NOLINT

  std::unique_ptr<Product> product;
  Status status;
};

// aotiplug::LeaseDeleter / Leased<Product> — a product that keeps its plugin loaded.
// The deleter destroys the product first and releases the lease (and with it, possibly,
// the library) afterwards — in the caller's code, never in code that belongs to the
// library being released. reset() releases both, as destruction does.
template <class Product>
struct LeaseDeleter {
  std::shared_ptr<const void> lease;
  void operator()(Product* product) noexcept {
    delete product;
    lease.reset();
  }
};
template <class Product>
using Leased = std::unique_ptr<Product, LeaseDeleter<Product>>;

}  // namespace aotiplug
