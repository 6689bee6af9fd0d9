// Times the pure C++ kernel (fastbce::run, no Python) on one thread and one SIMD tier, on data
// that stays in L2: the figure that kernel changes move, free of memory and call overheads.
// docs/benchmarks.md ("Where the time goes") quotes it.
//
// Build against the library CMake makes (any build directory), from the repository root:
//   cmake -S . -B /tmp/fb -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C /tmp/fb fastbce_lib
//   g++ -O2 -std=c++20 -I cpp/include tools/time_kernel.cpp /tmp/fb/libfastbce_lib.a
//       -lpthread -o /tmp/time_kernel
//   /tmp/time_kernel [tier] [variant] [repeats] [n] [scale] [threads] [magnitude]
// tier: x86-64-v4 (default), x86-64-v3, x86-64-v2, baseline. variant: logits (default), probs,
// focal2 (gamma 2), focal2a (gamma 2, alpha 0.25), focal15a (gamma 1.5, alpha 0.25), focal27a
// (gamma 2.7, alpha 0.25), weighted (per-element weights), uint8 (logits, uint8 labels). Prints
// the best of `repeats` calls (default 3000) over n elements (default 65536: 512 KiB of float32
// inputs) in ns per element. Logits are N(0, scale^2) (default 3; 4 is the benchmarks' normal4);
// threads: default 1 (several, with an n beyond the caches, time the memory-bound case).
// magnitude: every |x| that value, with random signs (the magnitude sweep's inputs,
// fastbce.cli.bench.sweep, without Python's timing noise); default: the normal logits.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "fastbce/fastbce.hpp"

int main(int argc, char** argv) {
    using namespace fastbce;
    const std::string tier = argc > 1 ? argv[1] : "x86-64-v4";
    const std::string variant = argc > 2 ? argv[2] : "logits";
    const int repeats = argc > 3 ? std::atoi(argv[3]) : 3000;
    const int64_t n = argc > 4 ? std::atoll(argv[4]) : 65536;
    const float scale = argc > 5 ? std::strtof(argv[5], nullptr) : 3.0f;
    const int threads = argc > 6 ? std::atoi(argv[6]) : 1;
    const float magnitude = argc > 7 ? std::strtof(argv[7], nullptr) : 0.0f;

    std::vector<float> logit(static_cast<size_t>(n)), prob(logit.size()), label(logit.size());
    std::vector<uint8_t> label_u8(logit.size());
    std::mt19937 gen(1);
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<float> uniform;
    for (size_t i = 0; i < size_t(n); ++i) {
        logit[i] = scale * normal(gen);
        if (magnitude > 0.0f) logit[i] = logit[i] < 0.0f ? -magnitude : magnitude;
        prob[i] = uniform(gen);
        label[i] = uniform(gen) < 0.5f ? 1.0f : 0.0f;
        label_u8[i] = uint8_t(label[i]);
    }
    set_target(tier);

    Call c;
    c.n = n;
    c.threads = threads;
    c.y_true = variant == "uint8" ? View{label_u8.data(), 1, DType::u8} : View{label.data(), 1, DType::f32};
    c.y_pred = {variant == "probs" ? prob.data() : logit.data(), 1, DType::f32};
    c.from_logits = variant != "probs";
    if (variant == "weighted") {
        c.weight_kind = WeightKind::per_element;
        c.weight = {prob.data(), 1, DType::f32};
    } else if (variant == "focal2" || variant == "focal2a" || variant == "focal15a" || variant == "focal27a") {
        c.gamma = variant == "focal15a" ? 1.5 : variant == "focal27a" ? 2.7 : 2.0;
        c.has_alpha = variant != "focal2";
        c.alpha = 0.25;
    } else if (variant != "logits" && variant != "probs" && variant != "uint8") {
        std::fprintf(stderr, "unknown variant %s\n", variant.c_str());
        return 2;
    }

    double best = 1e30;
    Result r;
    for (int k = 0; k < repeats; ++k) {
        const auto t0 = std::chrono::steady_clock::now();
        r = run(c, nullptr);
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (dt < best) best = dt;
    }
    std::printf("%s %s: %.3f ns/element (n = %lld, best of %d; loss sum %.6f)\n", tier.c_str(),
                variant.c_str(), best / double(n) * 1e9, static_cast<long long>(n), repeats, r.total.loss);
    return 0;
}
