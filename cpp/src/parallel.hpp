// A parallel loop over numbered tasks on a small persistent pool of std::threads (no OpenMP, whose
// runtimes clash with TensorFlow's and PyTorch's and hang after fork). In a loop of mid-size calls
// a block is handed to a pool thread that is watching for work instead of creating and joining
// threads (~10s of µs) or waking a sleeping one (tens of µs on a VM). A watching thread watches
// its own slot (a cache line): the caller offers it the job there, without the pool's mutex, so
// the hand-off costs a few cache-line transfers between cores (~0.1 µs each on a KVM guest)
// rather than a dozen (mutex, job queue, counters: ~0.9 µs before the helper's first task).
//
// The pool starts at the first call that wants a second thread and grows to the most threads
// asked for (capped). fork(): the child has none of the parent's threads, and the pool's mutex may
// have been held by one of them; the pool is per_process (per_process.hpp): the child forgets the
// parent's pool (left as it is, never touched) and starts its own at its first parallel call.
#pragma once

#include <algorithm>
#include <atomic>
#include <cfenv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include "fastbce/fastbce.hpp"  // default_threads()
#include "per_process.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace fastbce {

namespace pool_detail {

// How long an idle pool thread, and a caller waiting for helpers, watch memory before sleeping on
// a condition variable. Waking a sleeping thread costs a system call and, on a VM whose idle vCPU
// has halted, 40-50 µs until it runs; a watching one takes a job within ~1 µs. A loop of mid-size
// calls thus keeps its helpers awake, while a pool left idle burns at most this much CPU a thread.
constexpr auto kSpinFor = std::chrono::microseconds(100);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// Calls done() until it is true or `limit` has passed; returns whether it was true. Every few µs
// it yields the CPU: the thread it waits for may be runnable on this one (a woken pool thread is
// often placed on its waker's CPU), and would otherwise wait until this loop ends.
template <class Done>
bool spin_until(Done&& done, std::chrono::microseconds limit = kSpinFor) {
    const auto until = std::chrono::steady_clock::now() + limit;
    for (int round = 1;; ++round) {
        for (int k = 0; k < 16; ++k) {
            if (done()) return true;
            cpu_relax();
        }
        if (std::chrono::steady_clock::now() >= until) return false;
        if (round % 4 == 0) std::this_thread::yield();
    }
}

// The caller's floating-point modes (rounding, flush-to-zero, exception masks), which a pool thread
// takes on to run the caller's tasks as the caller would. On x86 the two control registers are
// read and set directly: fegetenv + fesetenv cost ~120 ns together (x87 environment save/load),
// a tenth of a small call's hand-off; the status flags they also copy do not affect results.
struct FpModes {
#if defined(__x86_64__)
    static constexpr unsigned kMxcsrFlags = 0x3f;  // the sticky exception flags
    unsigned mxcsr = 0;
    unsigned short x87 = 0;
    void capture() {
        mxcsr = _mm_getcsr() & ~kMxcsrFlags;
        asm volatile("fnstcw %0" : "=m"(x87));
    }
    void apply() const {
        const unsigned own = _mm_getcsr();
        if ((own & ~kMxcsrFlags) != mxcsr) _mm_setcsr(mxcsr | (own & kMxcsrFlags));
        unsigned short own_x87;
        asm volatile("fnstcw %0" : "=m"(own_x87));
        if (own_x87 != x87) asm volatile("fldcw %0" : : "m"(x87));
    }
#else
    std::fenv_t env;
    void capture() { std::fegetenv(&env); }
    void apply() const { std::fesetenv(&env); }
#endif
};

// Locks m, trying for a while before blocking: a blocked thread sleeps in the kernel and, on a VM,
// can take tens of µs to run again, while the holders here keep the lock for well under a µs.
template <class Lock>
void lock_soon(Lock& lock) {
    if (spin_until([&] { return lock.try_lock(); }, std::chrono::microseconds(5))) return;
    lock.lock();
}

// One parallel_for call: tasks [0, n_tasks) handed out one at a time, the caller's from the front
// and the pool threads' from the back, until the two ends meet. In a loop of calls each thread
// thus reads the same part of the input as before (still in its core's cache), while a thread
// that runs slower (a vCPU the host slows: 1.5x at times on a KVM guest) leaves the other
// more tasks. Lives on the caller's stack until every helper that joined has left it. What a
// helper reads first shares one cache line.
struct alignas(64) Job {
    void (*run)(void* ctx, int64_t i);
    void* ctx;
    std::atomic<uint64_t> ends{0};  // tasks [front, back) not taken yet: front in the low half
    std::atomic<int64_t> finished{0};  // helpers offered the job (Slot) that have left it
    FpModes modes;                     // the caller's, which helpers take on
    // queued jobs (Pool::run), changed under the pool's mutex (active is read without it by the
    // waiting caller):
    alignas(64) int64_t seats = 0;   // helpers that may still join
    std::atomic<int64_t> active{0};  // helpers inside work()
    std::condition_variable left;

    static constexpr int64_t kMaxTasks = int64_t(1) << 31;  // (front and back: 32 bits each)

    void start(int64_t n_tasks) { ends.store(uint64_t(n_tasks) << 32, std::memory_order_relaxed); }
    void skip_the_rest() { ends.store(0, std::memory_order_relaxed); }

    // Runs tasks until none is left: the caller's from the front, a helper's from the back.
    void work(bool from_back) {
        for (;;) {
            uint64_t e = ends.load(std::memory_order_relaxed), taken;
            uint64_t i;
            do {
                const uint64_t front = e & 0xffffffffu, back = e >> 32;
                if (front >= back) return;
                i = from_back ? back - 1 : front;
                taken = from_back ? (i << 32) | front : (back << 32) | (front + 1);
            } while (!ends.compare_exchange_weak(e, taken, std::memory_order_relaxed));
            run(ctx, int64_t(i));
        }
    }
};

// Where a caller offers a job to one pool thread, on a cache line of its own: closed() while the
// thread does not watch it (it works on a queued job, or sleeps), null while it watches, the Job
// a caller offered until the thread takes it (and closes the slot) or the caller takes it back.
struct alignas(64) Slot {
    std::atomic<Job*> offer{closed()};

    static Job* closed() {
        static char mark;  // (an address no Job has; never read through)
        return reinterpret_cast<Job*>(&mark);
    }
};

class Pool {
public:
    // The pool of this process (of the child, after a fork). Never destroyed: its threads wait
    // for work until the process exits.
    static Pool& get() { return per_process<Pool>(); }

    // Runs job on the caller and up to `helpers` pool threads; returns when every task ran.
    // Threads that watch their slot are offered the job there. With `wake`, the seats left are
    // queued for the others, waking those asleep. Without it (a mid-size call) the caller runs
    // what no watching thread takes: a thread woken for it ran 40-50 µs later on a KVM guest, when
    // the call was over. If calls come in a loop (the pool ran a job within kSpinFor), the caller
    // then, after its work, starts or wakes a thread to watch for the next call.
    void run(Job& job, int64_t helpers, bool wake) {
        job.modes.capture();
        const auto start = std::chrono::steady_clock::now().time_since_epoch();
        const auto last = std::chrono::nanoseconds(last_run_.load(std::memory_order_relaxed));
        const bool in_loop = start - last < kSpinFor;
        Slot* offers[kMaxOffers];
        int64_t n_offers = 0;
        const int64_t started = started_.load(std::memory_order_acquire);
        for (int64_t i = 0; i < started && n_offers < std::min(helpers, kMaxOffers); ++i) {
            Slot& s = slots_[size_t(i)];
            Job* open = nullptr;
            if (s.offer.compare_exchange_strong(open, &job, std::memory_order_acq_rel,
                                                   std::memory_order_relaxed))
                offers[n_offers++] = &s;
        }
        bool queued = false;
        if (wake && helpers > n_offers) {
            try {
                queued = queue(job, helpers, n_offers);
            } catch (...) {
                // (a mutex error or bad_alloc, after offers went out: the job must not leave this
                // frame while their threads may be in it, and it needs no queued seat, since the
                // caller and the offers' threads take its tasks until none is left)
                job.seats = 0;
            }
        }
        // (work() does not throw: parallel_for's tasks catch their exceptions)
        job.work(false);
        int64_t taken = 0;  // offers a thread took: wait until they have left the job
        for (int64_t k = 0; k < n_offers; ++k) {
            Job* mine = &job;
            taken += !offers[k]->offer.compare_exchange_strong(mine, nullptr, std::memory_order_acq_rel,
                                                               std::memory_order_relaxed);
        }
        if (taken > 0) wait_finished(job, taken);
        if (queued) leave_queue(job);
        if (!wake && in_loop && n_offers < helpers) beckon(helpers);
        const auto end = std::chrono::steady_clock::now().time_since_epoch();
        last_run_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(end).count(),
                        std::memory_order_relaxed);
    }

private:
    static constexpr int64_t kMaxOffers = 16;  // more helpers than this take queued seats

    friend Pool& fastbce::per_process<Pool>();  // (starts no thread: a racing caller's is deleted)
    Pool() : cap_(std::max<int64_t>(8, 2 * int64_t(default_threads())) - 1), slots_(new Slot[size_t(cap_)]) {}

    // Queues job for the helpers its n_offers offers do not cover (starting threads until
    // `helpers` run, within the cap); returns whether it did.
    bool queue(Job& job, int64_t helpers, int64_t n_offers) {
        int64_t to_wake = 0;
        {
            std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
            lock_soon(lock);
            const int64_t seats = std::min(helpers, grow(helpers)) - n_offers;
            if (seats <= 0) return false;
            job.seats = seats;
            pending_.push_back(&job);
            pending_count_.store(int64_t(pending_.size()), std::memory_order_release);
            // threads watching for work take it without a wake-up (a system call)
            to_wake = std::min(sleeping_, seats - spinning_.load(std::memory_order_relaxed));
            wakes_ += to_wake > 0;
        }
        if (to_wake > 1)
            wake_.notify_all();
        else if (to_wake == 1)
            wake_.notify_one();
        return true;
    }

    // Has a thread watch for the next of a loop of mid-size calls, unless one does or one was
    // woken for it and has not run yet (a wake-up each call: a system call each, for nothing).
    // Best effort: a failure to start a thread leaves the calls on the caller's thread.
    void beckon(int64_t helpers) {
        if (spinning_.load(std::memory_order_relaxed) > 0) return;
        if (beckoned_.exchange(true, std::memory_order_relaxed)) return;
        bool notify = false;
        try {
            std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
            lock_soon(lock);
            // (a started thread watches first; sleeping_ counts the others)
            const int64_t before = int64_t(threads_.size());
            const bool started = grow(helpers) > before;
            notify = !started && sleeping_ > 0;
            wakes_ += notify;
            if (!notify) beckoned_.store(false, std::memory_order_relaxed);
        } catch (...) {
            beckoned_.store(false, std::memory_order_relaxed);
            return;
        }
        if (notify) wake_.notify_one();
    }

    // After the caller's work() on a queued job: no more seats, and no helper left inside.
    void leave_queue(Job& job) {
        std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
        lock_soon(lock);
        if (job.seats > 0) {
            pending_.erase(std::find(pending_.begin(), pending_.end(), &job));
            pending_count_.store(int64_t(pending_.size()), std::memory_order_relaxed);
            job.seats = 0;
        }
        if (job.active.load(std::memory_order_relaxed) > 0) {
            // a helper is finishing its last task: watch for it before sleeping (the lock, taken
            // again, waits until it has let go of the job)
            lock.unlock();
            spin_until([&] { return job.active.load(std::memory_order_acquire) == 0; });
            lock_soon(lock);
            job.left.wait(lock, [&] { return job.active.load(std::memory_order_relaxed) == 0; });
        }
    }

    // Waits until `taken` threads that took job's offer have left it.
    void wait_finished(Job& job, int64_t taken) {
        if (spin_until([&] { return job.finished.load(std::memory_order_acquire) == taken; })) return;
        std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
        lock_soon(lock);
        // (seq_cst against the helper's finished-then-offer_waiters_: one sees the other's store)
        offer_waiters_.fetch_add(1, std::memory_order_seq_cst);
        offer_ended_.wait(lock, [&] { return job.finished.load(std::memory_order_seq_cst) == taken; });
        offer_waiters_.fetch_sub(1, std::memory_order_relaxed);
    }

    // Starts threads until `wanted` run (within the cap); returns how many run.
    int64_t grow(int64_t wanted) {
        // a few threads more than CPUs is the most that can help (threads=N beyond it still runs:
        // on fewer threads, with the same result)
        wanted = std::min(wanted, cap_);
        while (int64_t(threads_.size()) < wanted) {
            Slot* s = &slots_[threads_.size()];
            try {
                threads_.emplace_back([this, s] { serve(*s); });
            } catch (const std::system_error&) {
                break;  // no more threads to be had: those running share the tasks
            }
            started_.store(int64_t(threads_.size()), std::memory_order_release);
        }
        return int64_t(threads_.size());
    }

    // Idle, a thread first watches its slot and the queue (unless as many others as there are
    // other CPUs do: more would only take CPU from the callers), then sleeps.
    void serve(Slot& s) {
        const int64_t max_spinning = int64_t(default_threads()) - 1;
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            if (pending_.empty() && spinning_.load(std::memory_order_relaxed) < max_spinning) {
                spinning_.fetch_add(1, std::memory_order_relaxed);
                lock.unlock();
                watch(s);
                // (decremented before the lock: a caller that saw this thread watching queued
                // its job before this thread looks at pending_ again)
                spinning_.fetch_sub(1, std::memory_order_relaxed);
                lock_soon(lock);
            }
            if (pending_.empty()) {
                ++sleeping_;
                const int64_t seen = wakes_;
                wake_.wait(lock, [&] { return !pending_.empty() || wakes_ != seen; });
                --sleeping_;
                beckoned_.store(false, std::memory_order_relaxed);
                // Woken for a job whose caller ran it alone before this thread ran (often, on a
                // busy machine), or beckoned: calls come in a loop, so watch for the next one
                // rather than sleep (and be woken for nothing at each call).
                if (pending_.empty()) continue;
            }
            Job* job = pending_.front();
            if (--job->seats == 0) {
                pending_.pop_front();
                pending_count_.store(int64_t(pending_.size()), std::memory_order_relaxed);
            }
            job->active.fetch_add(1, std::memory_order_relaxed);
            lock.unlock();
            job->modes.apply();  // the caller's rounding and flush modes, as if it ran alone
            job->work(true);
            lock_soon(lock);
            if (job->active.fetch_sub(1, std::memory_order_release) == 1 && job->seats == 0)
                job->left.notify_one();
        }
    }

    // Runs the jobs offered in slot s until kSpinFor passes without one or a job is queued.
    void watch(Slot& s) {
        for (;;) {
            s.offer.store(nullptr, std::memory_order_release);  // open for offers
            spin_until([&] {
                return s.offer.load(std::memory_order_relaxed) != nullptr ||
                       pending_count_.load(std::memory_order_relaxed) > 0;
            });
            Job* job = s.offer.exchange(Slot::closed(), std::memory_order_acq_rel);
            if (job == nullptr) return;
            job->modes.apply();
            job->work(true);
            // the last touch of the job: its caller may return as soon as it sees this
            job->finished.fetch_add(1, std::memory_order_seq_cst);
            if (offer_waiters_.load(std::memory_order_seq_cst) > 0) {
                { std::lock_guard<std::mutex> hold(mutex_); }  // (a waiter is inside wait())
                offer_ended_.notify_all();
            }
            if (pending_count_.load(std::memory_order_relaxed) > 0) return;
        }
    }

    const int64_t cap_;                // the most threads the pool starts
    const std::unique_ptr<Slot[]> slots_;  // one per thread the pool may start
    std::atomic<int64_t> started_{0};  // threads_.size(), for callers offering without the mutex
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable offer_ended_;  // callers asleep until their offers' helpers leave
    std::atomic<int64_t> offer_waiters_{0};  // callers inside offer_ended_.wait
    std::deque<Job*> pending_;  // queued jobs with seats left for helpers, oldest first
    std::vector<std::thread> threads_;
    int64_t sleeping_ = 0;                   // threads waiting on wake_ (under the mutex)
    int64_t wakes_ = 0;                      // wake-ups sent to wake_ (under the mutex)
    std::atomic<bool> beckoned_{false};      // a thread was woken to watch and has not woken yet
    std::atomic<int64_t> spinning_{0};       // threads watching pending_count_
    std::atomic<int64_t> pending_count_{0};  // pending_.size(), for the watching threads
    std::atomic<int64_t> last_run_{0};       // when a job last ended (steady clock, ns)
};

}  // namespace pool_detail

// Runs task(i) for every i in [0, n_tasks) on up to `threads` threads (the caller is one of them).
// Tasks are handed out one at a time, the caller's from the front and the pool threads' from the
// back (Job). wake=false (a mid-size call): only pool threads watching for work join; in a loop
// of calls one is kept watching (Pool::run).
// A task that throws (bad_alloc in a report task) neither ends a pool thread (std::terminate) nor
// lets the job leave the caller's frame while others run it: the first exception is kept, tasks
// not yet handed out are skipped, and it is rethrown here once every thread has left the job.
template <class Task>
void parallel_for(int64_t n_tasks, int64_t threads, Task&& task, bool wake = true) {
    // (a task is a block of 2^9 elements or more, or a chunk of bytes: 2^31 of them would be
    // terabytes of input)
    if (n_tasks > pool_detail::Job::kMaxTasks) throw std::length_error("parallel_for: over 2^31 tasks");
    using Fn = std::remove_reference_t<Task>;
    struct Guarded {
        Fn* task;
        pool_detail::Job* job;
        std::exception_ptr error;
        std::atomic<bool> failed{false};
    };
    pool_detail::Job job;
    Guarded guarded{&task, &job, nullptr};
    job.run = [](void* ctx, int64_t i) {
        auto& g = *static_cast<Guarded*>(ctx);
        try {
            (*g.task)(i);
        } catch (...) {
            if (!g.failed.exchange(true, std::memory_order_acq_rel)) g.error = std::current_exception();
            g.job->skip_the_rest();
        }
    };
    job.ctx = &guarded;
    job.start(n_tasks);
    const int64_t helpers = std::min(threads, n_tasks) - 1;
    if (helpers <= 0)
        job.work(false);
    else
        pool_detail::Pool::get().run(job, helpers, wake);
    if (guarded.error) std::rethrow_exception(guarded.error);
}

}  // namespace fastbce
