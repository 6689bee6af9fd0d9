// parallel_for (cpp/src/parallel.hpp) with a task that throws: the exception reaches the caller
// after every thread has left the job, and the pool keeps working (no Python, no framework).
//
// Build against the library CMake makes (any build directory), from the repository root:
//   g++ -std=c++20 -O2 -I cpp/include -I cpp/src tests/cpp/test_parallel_for.cpp
//       BUILD/libfastbce_lib.a -lpthread -o /tmp/tpf && /tmp/tpf
// Prints "ok" and exits 0, or names the round that went wrong and exits 1.
#include <atomic>
#include <cstdio>
#include <stdexcept>

#include "parallel.hpp"

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
    std::printf("ok\n");
    return 0;
}
