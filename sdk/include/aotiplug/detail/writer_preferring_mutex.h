// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::WriterPreferringMutex — a shared mutex under which writers do not starve, with
// a shared lock that costs one atomic add.
//
// Runs hold the runner's lock shared; a weight swap needs it exclusively. With
// std::shared_mutex (glibc's default rwlock prefers readers) a steady stream of runs from
// several threads keeps a swap waiting indefinitely: measured here, one commit in two
// seconds under four running threads. Under this lock a new shared locker waits behind a
// waiting exclusive locker, so a swap waits only for the runs already in flight.
//
// Every run takes the lock, so its uncontended path matters: lock_shared/unlock_shared are
// one atomic add each, inline, and touch no other memory — measured 14 ns a pair here,
// against 27 ns for glibc's writer-preferring pthread_rwlock (what this class used before).
// Waiting (a reader behind a writer, a writer behind readers) goes through a std::mutex and
// a condition variable; only writers, which are rare, take that path when uncontended.
//
// State: one 32-bit word, the writer bit (held or wanted), two bits of a handed-over action
// (wanted, claimed) and the count of shared holders. A reader adds one and checks the writer
// bit it added to; a writer sets the bit and waits until the count drains. Both are
// read-modify-writes of the same word, so one of the two always sees the other: the reader
// backs out, or the writer waits for it.
//
// Writers do not starve readers either (phase fairness): readers that a writer held back
// get in before the next writer does. Without this, a thread that takes the lock
// exclusively again and again (weights swapped in a loop) re-took it before the woken
// readers ran: measured 7 swaps per run, run() p99 3.6x steady. A writer therefore first
// waits until the readers sleeping in lockSharedSlow have come in (they stay counted as
// waiting until they have), then sets its bit.
//
// A short exclusive action can also be handed over (runExclusive): instead of the writer
// sleeping until the shared holders drain and then waking to act — two cross-thread wake-ups
// a held-back reader waits through — the last holder out runs the action on its own thread
// as it leaves. A run that finishes while a weight swap waits thus swaps the weights itself
// and goes on to its next run without sleeping (measured in the bench: see
// docs/performance.md, "What was profiled and changed").
//
// Meets the SharedMutex requirements (use with std::shared_lock / std::unique_lock).
// Not recursive. Thread safety: it is a mutex.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <type_traits>

namespace aotiplug {

// aotiplug::WriterPreferringMutex
class WriterPreferringMutex {
 public:
  WriterPreferringMutex() = default;
  WriterPreferringMutex(const WriterPreferringMutex&) = delete;
  WriterPreferringMutex& operator=(const WriterPreferringMutex&) = delete;

  void lock_shared() {
    if ((state_.fetch_add(1, std::memory_order_acquire) & kWriter) == 0) return;
    lockSharedSlow();
  }
  bool try_lock_shared() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while ((s & kWriter) == 0) {
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  void unlock_shared() noexcept {
    const std::uint32_t before = state_.fetch_sub(1, std::memory_order_release);
    // The last shared holder out while a writer waits: run its action or wake it.
    if ((before & kWriter) != 0 && (before & kReaders) == 1) lastOut(before);
  }

  void lock() {
    takeWriterTurn();
    const std::uint32_t before = state_.fetch_or(kWriter, std::memory_order_acq_rel);
    if ((before & kReaders) != 0) {
      std::unique_lock<std::mutex> lock(waiting_);
      changed_.wait(lock, [&] { return (state_.load(std::memory_order_acquire) & kReaders) == 0; });
    }
  }
  bool try_lock() {
    if (!writers_.try_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(waiting_);
      if (waiting_readers_ != 0) {
        writers_.unlock();
        return false;
      }
    }
    std::uint32_t expected = 0;
    if (state_.compare_exchange_strong(expected, kWriter, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      return true;
    }
    writers_.unlock();
    return false;
  }
  void unlock() {
    {
      // Under waiting_, so a reader checking the bit before it sleeps cannot miss the change.
      std::lock_guard<std::mutex> lock(waiting_);
      state_.fetch_and(~kWriter, std::memory_order_release);
    }
    changed_.notify_all();
    writers_.unlock();
  }

  // Runs `action` with the lock held exclusively, as { lock(); action(); unlock(); } would,
  // and returns once it has run; rethrows what it threw. When shared holders are in, the
  // last one out runs it on its own thread (this thread sleeps meanwhile), so `action` must
  // be short, must not take this mutex, and must not depend on the thread it runs on.
  template <class Action>
  void runExclusive(Action&& action) {
    using Fn = std::remove_reference_t<Action>;
    Handover h;
    h.run = [](void* a) { (*static_cast<Fn*>(a))(); };
    h.action = const_cast<void*>(static_cast<const void*>(&action));
    takeWriterTurn();
    // Posted before the bit is set: whoever sees the bit with the count at zero finds it.
    handover_.store(&h, std::memory_order_release);
    const std::uint32_t before = state_.fetch_or(kWriter | kHandover, std::memory_order_acq_rel);
    if ((before & kReaders) == 0) claimAndRun();  // none in (or a reader leaving claims it)
    {
      std::unique_lock<std::mutex> lock(waiting_);
      changed_.wait(lock, [&] { return h.done; });
    }
    writers_.unlock();
    if (h.error) std::rethrow_exception(h.error);
  }

  // Readers sleeping in lockSharedSlow; for tests and diagnostics.
  std::uint32_t waitingReaders() const {
    std::lock_guard<std::mutex> lock(waiting_);
    return waiting_readers_;
  }

 private:
  static constexpr std::uint32_t kWriter = std::uint32_t{1} << 31;    // held or wanted
  static constexpr std::uint32_t kHandover = std::uint32_t{1} << 30;  // by runExclusive
  static constexpr std::uint32_t kClaimed = std::uint32_t{1} << 29;   // its action taken
  static constexpr std::uint32_t kReaders = kClaimed - 1;

  // One writer at a time (the others queue on writers_), and the readers a previous writer
  // held back come in first.
  void takeWriterTurn() {
    writers_.lock();
    std::unique_lock<std::mutex> lock(waiting_);
    changed_.wait(lock, [&] { return waiting_readers_ == 0; });
  }

  // A writer holds or wants the lock: back out, sleep until it is done, try again. Counted
  // as waiting until in, so that no new writer sets its bit before this reader has come in.
  void lockSharedSlow() {
    unlock_shared();  // wakes the writer if it was waiting for this count alone
    std::unique_lock<std::mutex> lock(waiting_);
    ++waiting_readers_;
    for (;;) {
      changed_.wait(lock, [&] { return (state_.load(std::memory_order_acquire) & kWriter) == 0; });
      const std::uint32_t before = state_.fetch_add(1, std::memory_order_acquire);
      if ((before & kWriter) == 0) break;
      // A writer that had looked before this reader counted itself: its turn, then ours.
      const std::uint32_t was = state_.fetch_sub(1, std::memory_order_release);
      if ((was & kReaders) == 1) {  // it may be waiting for this count, or have an action
        lock.unlock();
        lastOut(was);
        lock.lock();
      }
    }
    if (--waiting_readers_ == 0) changed_.notify_all();  // a writer may wait for us to come in
  }
  // An action handed over by runExclusive, run by exactly one thread (the one that claims it).
  struct Handover {
    void (*run)(void*) = nullptr;
    void* action = nullptr;
    std::exception_ptr error;  // under waiting_ once run
    bool done = false;         // under waiting_
  };

  // A shared holder left the count at zero with the writer bit set (`before`: the state it
  // changed): run the handed-over action, or wake the writer waiting in lock().
  void lastOut(std::uint32_t before) noexcept {
    if ((before & kHandover) != 0) {
      claimAndRun();
    } else {
      wakeAll();
    }
  }
  // Runs the handed-over action if, at this instant, a handover is wanted, nobody has
  // claimed it and no shared holder is in. The check and the claim are one
  // compare-exchange: a thread that saw the count reach zero in one exclusive phase may get
  // here late, in the next one, while shared holders are in again (a unit test caught a
  // separate check running an action beside a reader). When it fails, the count was not
  // zero (whoever is in claims it on the way out), or another thread claimed it.
  void claimAndRun() noexcept {
    std::uint32_t expected = kWriter | kHandover;
    if (!state_.compare_exchange_strong(expected, kWriter | kHandover | kClaimed,
                                        std::memory_order_acq_rel, std::memory_order_relaxed)) {
      return;
    }
    // Posted before the bits were set; the acquire above also orders the action after
    // everything the shared holders did (every change of state_ is a read-modify-write).
    Handover* h = handover_.exchange(nullptr, std::memory_order_acquire);
    std::exception_ptr error;
    try {
      h->run(h->action);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(waiting_);
      state_.fetch_and(~(kWriter | kHandover | kClaimed), std::memory_order_release);
      h->error = std::move(error);
      h->done = true;  // the writer may return (and `h` go) once waiting_ is released
    }
    changed_.notify_all();
  }
  // Taking waiting_ orders this wake-up after a waiter's check of the state: a waiter either
  // saw the new state or is already asleep and gets the notification.
  void wakeAll() noexcept {
    { std::lock_guard<std::mutex> lock(waiting_); }
    changed_.notify_all();
  }

  std::atomic<std::uint32_t> state_{0};
  std::atomic<Handover*> handover_{nullptr};  // posted by runExclusive, claimed once
  std::mutex writers_;
  mutable std::mutex waiting_;
  std::condition_variable changed_;
  std::uint32_t waiting_readers_ = 0;  // under waiting_
};

}  // namespace aotiplug
