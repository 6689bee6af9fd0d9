// parallel_for (cpp/src/parallel.hpp) with a task that throws: the exception reaches the caller
// after every thread has left the job, and the pool keeps working (no Python, no framework).
// And every task runs once, the caller taking tasks from the front and the pool threads from
// the back, for 1 to 300 tasks on 2, 3 and 8 threads, calls in a loop (pool threads watching)
// and after a pause (asleep).
//
// tests/test_thread_pool.py builds and runs it alone, with its own default_threads (the
// library's reads the CPU affinity); by hand, from the repository root:
//   g++ -std=c++20 -O2 -DFASTBCE_STANDALONE -I cpp/include -I cpp/src
//       tests/cpp/test_parallel_for.cpp -lpthread -o /tmp/tpf && /tmp/tpf
// Prints "ok" and exits 0, or names the round that went wrong and exits 1.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

#include "parallel.hpp"

#if defined(FASTBCE_STANDALONE)
int fastbce::default_threads() { return int(std::max(1u, std::thread::hardware_concurrency())); }
#endif

int main() {
    for (int round = 0; round < 2000; ++round) {
        bool caught = false;
        try {
            fastbce::parallel_for(64, 2, [&](int64_t i) {
                if (i == 5 + round % 40) throw std::runtime_error("task");
            });
        } catch (const std::runtime_error&) {
            caught = true;
        }
        std::atomic<int64_t> sum{0};
        fastbce::parallel_for(1000, 2, [&](int64_t i) { sum += i; });
        if (!caught || sum != 499500) {
            std::printf("round %d: caught %d, sum %lld\n", round, int(caught), (long long)sum.load());
            return 1;
        }
    }
    for (int threads : {2, 3, 8}) {
        for (int64_t n = 1; n <= 300; n += (n < 40 ? 1 : 37)) {
            for (int round = 0; round < 20; ++round) {
                std::vector<std::atomic<int>> runs(static_cast<size_t>(n));
                fastbce::parallel_for(n, threads, [&](int64_t i) { runs[size_t(i)].fetch_add(1); }, round % 2 == 0);
                for (int64_t i = 0; i < n; ++i) {
                    if (runs[size_t(i)].load() != 1) {
                        std::printf("%d threads, %lld tasks: task %lld ran %d times\n", threads, (long long)n,
                                    (long long)i, runs[size_t(i)].load());
                        return 1;
                    }
                }
            }
            if (n == 40) std::this_thread::sleep_for(std::chrono::milliseconds(5));  // (pool asleep)
        }
    }
    std::printf("ok\n");
    return 0;
}
