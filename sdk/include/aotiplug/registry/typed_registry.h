// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::TypedRegistry<Key, Product, Args...> — creators of Products, keyed by Key.
//
// In the spirit of c10's C10_DECLARE_TYPED_REGISTRY, with what c10 lacks:
//  - every operation (add, remove, lookup, create) is thread-safe;
//  - several registrations may exist for one key: the one with the highest Priority serves
//    it, ties going to the origin that sorts first (plugin name, then library path, then
//    registration order), so the result never depends on load order. The others stay as
//    fallbacks and take over when the winner is removed. add() reports who won and who lost;
//    nothing ever calls exit();
//  - create() on a missing key throws aotiplug::Error naming the key and listing the
//    registered ones — it never returns null, and a creator that returns null or fails
//    becomes an Error naming the plugin;
//  - every registration is tagged with its Origin (plugin name + library) and can be
//    removed with the library it came from; a creator may be given a lease on that library
//    so a created product keeps it loaded (Leased, in registration.h).
//
// Ownership: the registry owns the creators (copies of the std::function objects). A
// product belongs to the caller of create(), together with its lease.
// Thread safety: all member functions may be called concurrently. Creators run without
// the registry's lock held, so a creator may itself use the registry.

#include <aotiplug/error.h>
#include <aotiplug/registry/registration.h>
#include <aotiplug/status.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace aotiplug {

// aotiplug::RegistryKeyTraits<Key> — how a key is named in messages. Specialise for keys
// that are neither strings, numbers nor enums.
template <class Key, class = void>
struct RegistryKeyTraits {
  static std::string name(const Key& key) {
    if constexpr (std::is_enum_v<Key>) {
      return std::to_string(static_cast<long long>(key));
    } else if constexpr (std::is_arithmetic_v<Key>) {
      return std::to_string(key);
    } else {
      return std::string(key);
    }
  }
};

// aotiplug::TypedRegistry
template <class Key, class Product, class... Args>
class TypedRegistry {
 public:
  using Creator = std::function<Created<Product>(Args...)>;

  // One registration, as reported by registrations() and add().
  struct Registration {
    RegistrationId id = 0;
    Key key{};
    Priority priority = kPriorityDefault;
    Origin origin;
    std::string description;
    bool active = false;  // true when this registration serves its key
  };

  // What add() did: the new registration, and the rival it displaced or lost to.
  struct AddResult {
    Registration registration;
    std::optional<Registration> rival;
  };

  explicit TypedRegistry(std::string name) : name_(std::move(name)) {}
  TypedRegistry(const TypedRegistry&) = delete;
  TypedRegistry& operator=(const TypedRegistry&) = delete;

  const std::string& name() const noexcept { return name_; }

  // Adds a creator for key. The same origin may register a key only once
  // (StatusCode::kAlreadyExists); different origins compete by priority.
  AddResult add(Key key, Creator creator, Priority priority, Origin origin,
                std::string description = {}) {
    if (!creator) {
      throw Error(StatusCode::kInvalidArgument,
                  name_ + ": " + origin.describe() + " registered an empty creator for " +
                      keyName(key));
    }
    std::unique_lock lock(mutex_);
    for (const Entry& e : entries_) {
      if (e.info.key == key && e.info.origin == origin) {
        throw Error(StatusCode::kAlreadyExists,
                    name_ + ": " + origin.describe() + " registered " + keyName(key) +
                        " twice");
      }
    }
    const Entry* previous_winner = bestLocked(key);
    std::optional<Registration> previous;
    if (previous_winner != nullptr) previous = snapshotLocked(*previous_winner);

    Entry entry;
    entry.info.id = ++last_id_;
    entry.info.key = key;
    entry.info.priority = priority;
    entry.info.origin = std::move(origin);
    entry.info.description = std::move(description);
    entry.creator = std::move(creator);
    entries_.push_back(std::move(entry));

    AddResult result;
    result.registration = snapshotLocked(entries_.back());
    if (previous) {
      // Either we displaced the previous winner, or we lost to it.
      if (result.registration.active) previous->active = false;
      result.rival = std::move(previous);
    }
    return result;
  }

  // Removes one registration; false when it was not there (already removed). The next
  // best registration for its key, if any, serves the key from now on.
  bool remove(RegistrationId id) noexcept {
    std::unique_lock lock(mutex_);
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [id](const Entry& e) { return e.info.id == id; });
    if (it == entries_.end()) return false;
    Entry removed = std::move(*it);
    entries_.erase(it);
    lock.unlock();  // the creator's destructor runs outside the lock
    return true;
  }

  // Removes every registration made from `library`; returns how many.
  std::size_t removeLibrary(const std::string& library) noexcept {
    std::vector<Entry> removed;
    {
      std::unique_lock lock(mutex_);
      auto it = std::stable_partition(entries_.begin(), entries_.end(), [&](const Entry& e) {
        return e.info.origin.library != library;
      });
      std::move(it, entries_.end(), std::back_inserter(removed));
      entries_.erase(it, entries_.end());
    }
    return removed.size();
  }

  // Gives every registration from `library`, present and future, a lease that products
  // created from it hold. A loader attaches it before loading the library, so even a
  // creator called while the library is still being loaded keeps it alive. The registry
  // keeps only a weak reference: it never keeps a library loaded itself.
  void attachLease(const std::string& library, const std::weak_ptr<const void>& lease) {
    std::unique_lock lock(mutex_);
    for (auto& [lib, weak] : leases_) {
      if (lib == library) {
        weak = lease;
        return;
      }
    }
    leases_.emplace_back(library, lease);
  }

  void detachLease(const std::string& library) noexcept {
    std::unique_lock lock(mutex_);
    leases_.erase(std::remove_if(leases_.begin(), leases_.end(),
                                 [&](const auto& l) { return l.first == library; }),
                  leases_.end());
  }

  // Creates a product with the registration that serves key.
  // Throws Error(kNotFound) naming the key and listing the registered keys; a creator's
  // failure becomes an Error that names its origin.
  Leased<Product> create(const Key& key, Args... args) const {
    return createReporting(nullptr, key, std::forward<Args>(args)...);
  }

  // As create(); also stores in *used (when not null) the origin that made the product.
  Leased<Product> createReporting(Origin* used, const Key& key, Args... args) const {
    std::shared_ptr<const void> lease;  // declared first: released after the creator copy
    Creator creator;
    Origin origin;
    {
      std::shared_lock lock(mutex_);
      const Entry* best = bestLocked(key);
      if (best == nullptr) {
        throw Error(StatusCode::kNotFound,
                    name_ + ": nothing is registered for " + keyName(key) +
                        "; registered: " + listLocked());
      }
      for (const auto& [lib, weak] : leases_) {
        if (lib == best->info.origin.library) lease = weak.lock();
      }
      creator = best->creator;
      origin = best->info.origin;
    }
    Created<Product> created = invoke(creator, std::forward<Args>(args)...);
    if (!created.status.isOk()) {
      throw Error(created.status.code(), origin.describe() + " could not create " +
                                             keyName(key) + ": " + created.status.message());
    }
    if (!created.product) {
      throw Error(StatusCode::kPluginError, origin.describe() + " returned no product for " +
                                                keyName(key) + " and reported no error");
    }
    if (used != nullptr) *used = std::move(origin);
    return Leased<Product>(created.product.release(), LeaseDeleter<Product>{std::move(lease)});
  }

  // True when some registration serves key.
  bool has(const Key& key) const {
    std::shared_lock lock(mutex_);
    return bestLocked(key) != nullptr;
  }

  // Keys that are served, sorted.
  std::vector<Key> keys() const {
    std::shared_lock lock(mutex_);
    std::vector<Key> out;
    for (const Entry& e : entries_) {
      if (std::find(out.begin(), out.end(), e.info.key) == out.end()) out.push_back(e.info.key);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // Every registration (active and shadowed), sorted by key, then best first.
  std::vector<Registration> registrations() const {
    std::shared_lock lock(mutex_);
    std::vector<Registration> out;
    out.reserve(entries_.size());
    for (const Entry& e : entries_) out.push_back(snapshotLocked(e));
    std::sort(out.begin(), out.end(), [](const Registration& a, const Registration& b) {
      if (a.key != b.key) return a.key < b.key;
      return ranksBefore(a, b);
    });
    return out;
  }

  // The registration that serves key, if any.
  std::optional<Registration> winner(const Key& key) const {
    std::shared_lock lock(mutex_);
    const Entry* best = bestLocked(key);
    if (best == nullptr) return std::nullopt;
    return snapshotLocked(*best);
  }

  static std::string keyName(const Key& key) { return RegistryKeyTraits<Key>::name(key); }

 private:
  struct Entry {
    Registration info;
    Creator creator;
  };

  // The deterministic order: higher priority first; then plugin name, library path and
  // registration order.
  static bool ranksBefore(const Registration& a, const Registration& b) {
    if (a.priority != b.priority) return a.priority > b.priority;
    return std::tie(a.origin.plugin, a.origin.library, a.id) <
           std::tie(b.origin.plugin, b.origin.library, b.id);
  }

  const Entry* bestLocked(const Key& key) const {
    const Entry* best = nullptr;
    for (const Entry& e : entries_) {
      if (!(e.info.key == key)) continue;
      if (best == nullptr || ranksBefore(e.info, best->info)) best = &e;
    }
    return best;
  }

  Registration snapshotLocked(const Entry& e) const {
    Registration r = e.info;
    r.active = (bestLocked(e.info.key) == &e);
    return r;
  }

  std::string listLocked() const {
    std::string text;
    for (const Entry& e : entries_) {
      if (bestLocked(e.info.key) != &e) continue;
      if (!text.empty()) text += ", ";
      text += keyName(e.info.key) + " (" + e.info.origin.describe() + ")";
    }
    return text.empty() ? std::string("nothing") : text;
  }

  static Created<Product> invoke(const Creator& creator, Args... args) {
    try {
      return creator(std::forward<Args>(args)...);
    } catch (...) {
      Status status = Status::fromCurrentException();
      return Status(StatusCode::kPluginError, "its creator threw: " + status.message());
    }
  }

  std::string name_;
  mutable std::shared_mutex mutex_;
  std::vector<Entry> entries_;
  std::vector<std::pair<std::string, std::weak_ptr<const void>>> leases_;  // library -> lease
  RegistrationId last_id_ = 0;
};

}  // namespace aotiplug
