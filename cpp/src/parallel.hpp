// A parallel loop over numbered tasks on short-lived std::threads: no pool, so nothing to clean
// up after fork() and no OpenMP runtime to clash with TensorFlow's or PyTorch's.
#pragma once

#include <atomic>
#include <cstdint>
#include <system_error>
#include <thread>
#include <vector>

namespace fastbce {

// Runs task(i) for every i in [0, n_tasks) on up to `threads` threads (the caller is one of them).
// Tasks are handed out in index order, one at a time.
template <class Task>
void parallel_for(int64_t n_tasks, int64_t threads, Task&& task) {
    std::atomic<int64_t> next{0};
    auto work = [&] {
        for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n_tasks;) task(i);
    };
    std::vector<std::thread> helpers;
    for (int64_t t = 1; t < threads && t < n_tasks; ++t) {
        try {
            helpers.emplace_back(work);
        } catch (const std::system_error&) {
            break;  // no more threads to be had: those running share the tasks
        }
    }
    work();
    for (auto& h : helpers) h.join();
}

}  // namespace fastbce
