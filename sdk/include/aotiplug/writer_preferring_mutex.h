// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// aotiplug::WriterPreferringMutex — a shared mutex under which writers do not starve.
//
// Runs hold the runner's lock shared; a weight swap needs it exclusively. With
// std::shared_mutex (glibc's default rwlock prefers readers) a steady stream of runs from
// several threads keeps a swap waiting indefinitely: measured here, one commit in two
// seconds under four running threads. This lock makes new shared lockers wait behind a
// waiting exclusive locker (glibc's PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP), so a
// swap waits only for the runs already in flight.
//
// Meets the SharedMutex requirements (use with std::shared_lock / std::unique_lock).
// Not recursive. Thread safety: it is a mutex.

#include <pthread.h>

#include <system_error>

namespace aotiplug {

// aotiplug::WriterPreferringMutex
class WriterPreferringMutex {
 public:
  WriterPreferringMutex() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
#if defined(__GLIBC__)
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    const int rc = pthread_rwlock_init(&lock_, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_rwlock_init");
  }
  ~WriterPreferringMutex() { pthread_rwlock_destroy(&lock_); }
  WriterPreferringMutex(const WriterPreferringMutex&) = delete;
  WriterPreferringMutex& operator=(const WriterPreferringMutex&) = delete;

  void lock() { check(pthread_rwlock_wrlock(&lock_)); }
  bool try_lock() { return pthread_rwlock_trywrlock(&lock_) == 0; }
  void unlock() { pthread_rwlock_unlock(&lock_); }
  void lock_shared() { check(pthread_rwlock_rdlock(&lock_)); }
  bool try_lock_shared() { return pthread_rwlock_tryrdlock(&lock_) == 0; }
  void unlock_shared() { pthread_rwlock_unlock(&lock_); }

 private:
  static void check(int rc) {
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "pthread_rwlock");
  }
  pthread_rwlock_t lock_;
};

}  // namespace aotiplug
