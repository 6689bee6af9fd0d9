// Accuracy of the evaluation report's float64 exp(-|x|) of float32 logits (report_lanes.hpp,
// exp_neg_wide: AVX-512 and AVX2) over float32 |x| in [0, 700], against the x87 long double
// expl. A standalone program (tests/test_exp_wide.py builds and runs it per tier):
//   g++ -std=c++20 -O2 -march=x86-64-v3 -ffp-contract=off -DFASTBCE_TIER=tier_v3
//       -I cpp/include tests/cpp/test_exp_wide.cpp -o /tmp/te && /tmp/te [stride]
// stride 1 (the default) takes every float32 in the range (about 1.1e9 values, a minute);
// a larger stride every stride-th bit pattern, plus 700 itself. Prints the worst relative
// error and where; exit status 0 when it is at most 4e-16 and every result is a normal
// number, 1 otherwise, 2 when the tier has no exp_neg_wide.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fastbce/report_lanes.hpp"

using namespace fastbce::FASTBCE_TIER;

int main(int argc, char** argv) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#if defined(__AVX512F__)
    constexpr int L = 8;
    auto run = [](const double* in, double* out) { _mm512_storeu_pd(out, exp_neg_wide(_mm512_loadu_pd(in))); };
#else
    constexpr int L = 4;
    auto run = [](const double* in, double* out) { _mm256_storeu_pd(out, exp_neg_wide(_mm256_loadu_pd(in))); };
#endif
    const uint64_t stride = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1;
    const float top = 700.0f;
    uint32_t last;
    std::memcpy(&last, &top, sizeof last);
    double worst = 0.0, in[L], out[L];
    float at = 0.0f, xs[L];
    uint64_t count = 0;
    for (uint64_t b = 0; b <= last; b += L * stride) {
        for (int l = 0; l < L; ++l) {
            const uint32_t bits = uint32_t(std::min<uint64_t>(b + l * stride, last));
            std::memcpy(&xs[l], &bits, sizeof bits);
            in[l] = xs[l];
        }
        if (b + L * stride > last) in[L - 1] = xs[L - 1] = top;  // (700 itself, the range's end)
        run(in, out);
        for (int l = 0; l < L; ++l) {
            const long double want = std::exp(-static_cast<long double>(xs[l]));
            if (!(out[l] >= 0x1p-1022)) {
                std::printf("exp_neg_wide(%.9g) = %g: not a normal number\n", double(xs[l]), out[l]);
                return 1;
            }
            const double e = double(std::fabs((static_cast<long double>(out[l]) - want) / want));
            if (e > worst) worst = e, at = xs[l];
            ++count;
        }
    }
    std::printf("%llu values, worst relative error %.3g at |x| = %.9g\n", static_cast<unsigned long long>(count),
                worst, double(at));
    return worst <= 4e-16 ? 0 : 1;
#else
    (void)argc, (void)argv;
    std::printf("no exp_neg_wide on this tier\n");
    return 2;
#endif
}
