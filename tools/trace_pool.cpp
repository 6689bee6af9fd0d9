// Where a mid-size call's time goes: runs the blocks of an n-element float32 logits call as
// dispatch.cpp does for a call with threads unasked (its block sizes; parallel_for without waking
// a sleeping thread) in a loop, and per call records when each block started and ended and on
// which thread. Prints the quartiles of the call, how many calls a pool thread joined, when it
// started its block (after the call began), the blocks' times on each thread, and the calls that
// waited more than 1 ms for a pool thread preempted inside its block. Also the one-thread time
// of the same inputs 64-byte aligned and `offset` floats past that (NumPy's large arrays start
// 16 bytes past a page: offset 4, the default).
//
// Build against the library CMake makes (as tools/time_kernel.cpp says), from the repository root:
//   g++ -O2 -std=c++20 -I cpp/include -I cpp/src tools/trace_pool.cpp /tmp/fb/libfastbce_lib.a
//       -lpthread -o /tmp/trace_pool
//   /tmp/trace_pool [n] [calls] [offset] [tier] [blocks]  (defaults 100000 3000 4 x86-64-v4)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fastbce/fastbce.hpp"
#include "parallel.hpp"

using namespace fastbce;

namespace {

int64_t now_ns() { return std::chrono::steady_clock::now().time_since_epoch().count(); }

double quantile(std::vector<double> v, double q) {
    if (v.empty()) return -1.0;
    std::sort(v.begin(), v.end());
    return v[size_t(q * double(v.size() - 1))];
}

struct Span {
    int64_t start, end;
    bool caller;
};

}  // namespace

int main(int argc, char** argv) {
    const int64_t n = argc > 1 ? std::atoll(argv[1]) : 100000;
    const int calls = argc > 2 ? std::atoi(argv[2]) : 3000;
    const int64_t offset = argc > 3 ? std::atoll(argv[3]) : 4;
    set_target(argc > 4 ? argv[4] : "x86-64-v4");

    // dispatch.cpp's block_size: equal blocks of at most 2^16, at least two, and below 2^20
    // elements an even number of at most 2^14 (up to 16); 512- or (past 16 blocks) 4096-aligned.
    // An optional fifth argument sets the number of blocks instead (to compare splits).
    const int64_t fine = std::min<int64_t>(2 * ((n + 32767) / 32768), 16);
    const int64_t n_blocks = argc > 5 ? std::atoll(argv[5]) : std::max({(n + 65535) / 65536, int64_t(2), fine});
    const int64_t align = n_blocks > 16 ? 4096 : 512;
    const int64_t block = ((n + n_blocks - 1) / n_blocks + align - 1) / align * align;
    const int64_t tasks = (n + block - 1) / block;

    auto* x_mem = static_cast<float*>(std::aligned_alloc(64, size_t(n + 64) * sizeof(float)));
    auto* y_mem = static_cast<float*>(std::aligned_alloc(64, size_t(n + 64) * sizeof(float)));
    std::mt19937 gen(1);
    std::normal_distribution<float> normal;
    for (int64_t i = 0; i < n + 64; ++i) {
        x_mem[i] = normal(gen);
        y_mem[i] = normal(gen) < 0.0f ? 1.0f : 0.0f;
    }
    auto call_on = [&](const float* x, const float* y, int64_t begin, int64_t end) {
        Call c;
        c.threads = 1;
        c.n = end - begin;
        c.y_true = View{y + begin, 1, DType::f32};
        c.y_pred = View{x + begin, 1, DType::f32};
        c.from_logits = true;
        return run(c, nullptr).total.loss;
    };
    for (const int64_t off : {int64_t(0), offset}) {  // one thread: aligned, then offset
        std::vector<double> t;
        for (int k = 0; k < 300; ++k) {
            const int64_t t0 = now_ns();
            call_on(x_mem + off, y_mem + off, 0, n);
            t.push_back(double(now_ns() - t0) / 1e3);
        }
        std::printf("one thread, inputs %lld bytes past 64: median %.2f us\n", static_cast<long long>(off * 4),
                    quantile(t, 0.5));
    }

    const float* x = x_mem + offset;
    const float* y = y_mem + offset;
    const auto caller_id = std::this_thread::get_id();
    std::vector<std::vector<Span>> spans(static_cast<size_t>(calls), std::vector<Span>(static_cast<size_t>(tasks)));
    std::vector<double> total;
    for (int k = -200; k < calls; ++k) {  // (200 calls to start the pool thread watching)
        auto& s = spans[size_t(std::max(k, 0))];
        const int64_t t0 = now_ns();
        parallel_for(tasks, 2, [&](int64_t b) {
            const int64_t start = now_ns();
            call_on(x, y, b * block, std::min(n, (b + 1) * block));
            s[size_t(b)] = {start - t0, now_ns() - t0, std::this_thread::get_id() == caller_id};
        }, false);
        if (k >= 0) total.push_back(double(now_ns() - t0) / 1e3);
    }

    std::vector<double> helper_start, caller_block, helper_block;
    int joined = 0, stalled = 0, bins[5] = {};
    for (int k = 0; k < calls; ++k) {
        bool helped = false;
        for (const Span& sp : spans[size_t(k)]) {
            const double start = double(sp.start) / 1e3, took = double(sp.end - sp.start) / 1e3;
            (sp.caller ? caller_block : helper_block).push_back(took);
            if (sp.caller) continue;
            if (!helped) {
                helper_start.push_back(start);
                ++bins[start < 1 ? 0 : start < 5 ? 1 : start < 20 ? 2 : start < 1000 ? 3 : 4];
            }
            helped = true;
        }
        joined += helped;
        stalled += total[size_t(k)] > 1000.0;
    }
    std::printf("n = %lld, %lld blocks of %lld, inputs %lld bytes past 64, %d calls with threads unasked\n",
                static_cast<long long>(n), static_cast<long long>(tasks), static_cast<long long>(block),
                static_cast<long long>(offset * 4), calls);
    std::printf("call us: q25 %.2f median %.2f q75 %.2f; mean %.2f\n", quantile(total, 0.25), quantile(total, 0.5),
                quantile(total, 0.75), [&] { double s = 0; for (double t : total) s += t; return s / double(calls); }());
    std::printf("a pool thread joined %d calls; its start after the call began: median %.2f us; "
                "<1 us %d, 1-5 %d, 5-20 %d, 20 us-1 ms %d, >1 ms %d\n",
                joined, quantile(helper_start, 0.5), bins[0], bins[1], bins[2], bins[3], bins[4]);
    std::printf("block us, median: caller %.2f, pool thread %.2f; calls over 1 ms: %d\n", quantile(caller_block, 0.5),
                quantile(helper_block, 0.5), stalled);
    std::free(x_mem);
    std::free(y_mem);
    return 0;
}
