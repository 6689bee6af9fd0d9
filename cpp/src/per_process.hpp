// One instance of a type per process, made at its first use and made anew in a forked child.
//
// fork() copies the parent's memory but only the forking thread: an instance whose mutex a
// parent thread held, or whose threads the child does not have, is unusable there. A handler
// registered with pthread_atfork, when the library loads (before any thread of ours exists),
// makes the child forget the parent's instance (left as it is, never touched nor freed) and make
// its own at its first use. Instances are never destroyed: threads of ours may outlive statics.
// Used by the thread pool (parallel.hpp) and the report's buffer pools (report.cpp).
#pragma once

#include <atomic>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace fastbce {

namespace per_process_detail {

template <class T>
std::atomic<T*>& current() {
    static std::atomic<T*> instance{nullptr};  // (constant-initialised: no guard)
    return instance;
}

#if defined(__unix__) || defined(__APPLE__)
// Registered during the library's static initialisation, for each T that per_process<T>() uses.
template <class T>
inline const bool forget_after_fork =
    pthread_atfork(nullptr, nullptr, [] { current<T>().store(nullptr, std::memory_order_relaxed); }) == 0;
#endif

}  // namespace per_process_detail

// This process's T (the child's, after a fork); T() is made by the first caller. Thread-safe:
// callers racing at the first use agree on one instance (the others' are deleted unused, so T()
// must start no thread and take no lock that outlives it).
template <class T>
T& per_process() {
#if defined(__unix__) || defined(__APPLE__)
    static_cast<void>(per_process_detail::forget_after_fork<T>);
#endif
    std::atomic<T*>& slot = per_process_detail::current<T>();
    T* p = slot.load(std::memory_order_acquire);
    if (p != nullptr) return *p;
    auto* fresh = new T();
    if (slot.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) return *fresh;
    delete fresh;  // another caller's came first
    return *p;
}

}  // namespace fastbce
