// A parallel loop over numbered tasks on a small persistent pool of std::threads (no OpenMP, whose
// runtimes clash with TensorFlow's and PyTorch's and hang after fork). A call on a mid-size input
// then costs a wake-up of a waiting thread (~µs) instead of creating and joining threads (~10s of
// µs), so two threads pay off from about 1e5 elements.
//
// The pool starts at the first call that wants a second thread and grows to the most threads
// asked for (capped). fork(): the child has none of the parent's threads, and the pool's mutex may
// have been held by one of them; a handler registered with pthread_atfork makes the child forget
// the parent's pool (left as it is, never touched) and start its own at its first parallel call.
#pragma once

#include <algorithm>
#include <atomic>
#include <cfenv>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include "fastbce/fastbce.hpp"  // default_threads()

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace fastbce {

namespace pool_detail {

// One parallel_for call: tasks [0, n_tasks) handed out in index order, one at a time, to the
// caller and to the pool threads that join it. Lives on the caller's stack until every helper
// that joined has left it.
struct Job {
    void (*run)(void* ctx, int64_t i);
    void* ctx;
    int64_t n_tasks;
    std::atomic<int64_t> next{0};
    std::fenv_t fenv;  // the caller's floating-point environment, which helpers take on
    // guarded by the pool's mutex:
    int64_t seats = 0;   // helpers that may still join
    int64_t active = 0;  // helpers inside work()
    std::condition_variable left;

    void work() {
        for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n_tasks;) run(ctx, i);
    }
};

class Pool {
public:
    // The pool of this process (of the child, after a fork). Never destroyed: its threads wait
    // for work until the process exits.
    static Pool& get();

    // Runs job on the caller and up to `helpers` pool threads; returns when every task ran.
    void run(Job& job, int64_t helpers) {
        std::fegetenv(&job.fenv);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            helpers = std::min(helpers, grow(helpers));
            if (helpers > 0) {
                job.seats = helpers;
                pending_.push_back(&job);
            }
        }
        if (helpers > 1)
            wake_.notify_all();
        else if (helpers == 1)
            wake_.notify_one();
        // (a task does not throw: the kernel reports bad values as a fault, not an exception)
        job.work();
        std::unique_lock<std::mutex> lock(mutex_);
        if (job.seats > 0) pending_.erase(std::find(pending_.begin(), pending_.end(), &job));
        job.seats = 0;
        job.left.wait(lock, [&] { return job.active == 0; });
    }

    // Makes a forked child forget the parent's pool (registered once, when the library loads).
    static void forget_after_fork() { slot().store(nullptr, std::memory_order_relaxed); }

private:
    Pool() = default;

    static std::atomic<Pool*>& slot() {
        static std::atomic<Pool*> current{nullptr};
        return current;
    }

    // Starts threads until `wanted` run (within the cap); returns how many run.
    int64_t grow(int64_t wanted) {
        // a few threads more than CPUs is the most that can help (threads=N beyond it still runs:
        // on fewer threads, with the same result)
        const int64_t cap = std::max<int64_t>(8, 2 * int64_t(default_threads())) - 1;
        wanted = std::min(wanted, cap);
        while (int64_t(threads_.size()) < wanted) {
            try {
                threads_.emplace_back([this] { serve(); });
            } catch (const std::system_error&) {
                break;  // no more threads to be had: those running share the tasks
            }
        }
        return int64_t(threads_.size());
    }

    void serve() {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return !pending_.empty(); });
            Job* job = pending_.front();
            if (--job->seats == 0) pending_.pop_front();
            ++job->active;
            lock.unlock();
            std::fesetenv(&job->fenv);  // the caller's rounding and flush modes, as if it ran alone
            job->work();
            lock.lock();
            if (--job->active == 0 && job->seats == 0) job->left.notify_one();
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job*> pending_;  // jobs with seats left for helpers, oldest first
    std::vector<std::thread> threads_;
};

#if defined(__unix__) || defined(__APPLE__)
// Registered when the library loads, before any thread of ours exists.
inline const bool fork_handler_registered =
    pthread_atfork(nullptr, nullptr, [] { Pool::forget_after_fork(); }) == 0;
#endif

inline Pool& Pool::get() {
#if defined(__unix__) || defined(__APPLE__)
    static_cast<void>(fork_handler_registered);
#endif
    Pool* p = slot().load(std::memory_order_acquire);
    if (p != nullptr) return *p;
    auto* fresh = new Pool();
    if (slot().compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) return *fresh;
    delete fresh;  // another caller's came first (no thread was started in this one)
    return *p;
}

}  // namespace pool_detail

// Runs task(i) for every i in [0, n_tasks) on up to `threads` threads (the caller is one of them).
// Tasks are handed out in index order, one at a time.
template <class Task>
void parallel_for(int64_t n_tasks, int64_t threads, Task&& task) {
    using Fn = std::remove_reference_t<Task>;
    pool_detail::Job job;
    job.run = [](void* ctx, int64_t i) { (*static_cast<Fn*>(ctx))(i); };
    job.ctx = const_cast<void*>(static_cast<const void*>(&task));
    job.n_tasks = n_tasks;
    const int64_t helpers = std::min(threads, n_tasks) - 1;
    if (helpers <= 0) {
        job.work();
        return;
    }
    pool_detail::Pool::get().run(job, helpers);
}

}  // namespace fastbce
