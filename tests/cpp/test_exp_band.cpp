// Accuracy of the AVX-512 plain loss's exp(-|x|) for float32 |x| in [31.5, 87.33]
// (softplus_table.hpp, exp_neg_abs_band) against the x87 long double expl, over every float in
// that range (about 1.2e7 values). A standalone program (tests/test_exp_band.py builds and runs it):
//   g++ -std=c++20 -O2 -march=x86-64-v4 -ffp-contract=off -DFASTBCE_TIER=tier_v4
//       -I cpp/include tests/cpp/test_exp_band.cpp -o /tmp/tb && /tmp/tb
// Also: the table's entries are 2^(j/16) rounded to nearest; lanes outside the range (0,
// subnormals, NaN, infinities, huge |x|) give a normal number; and no lane raises the underflow,
// overflow, invalid or divide-by-zero flag. Prints the worst error in ulps (of the float
// result's binade) and where; exit status 0 when it is at most 1.1 ulp and every check holds,
// 1 otherwise, 2 when the tier has no exp_neg_abs_band (not AVX-512).
#include <bit>
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstdio>

#include "fastbce/softplus_table.hpp"

namespace vm = fastbce::FASTBCE_TIER::vm;

int main() {
#if defined(FASTBCE_SOFTPLUS_TABLE)
    int failures = 0;
    for (int j = 0; j < 16; ++j) {
        const float want = float(std::exp2(static_cast<long double>(j) / 16));
        if (vm::kExp2Sixteenths[j] != want) {
            std::printf("table entry %d is %a, want %a\n", j, double(vm::kExp2Sixteenths[j]), double(want));
            ++failures;
        }
    }
    auto band = [](const uint32_t* bits, float* out) {
        _mm512_storeu_ps(out, vm::exp_neg_abs_band(_mm512_loadu_si512(bits)));
    };
    const uint32_t first = std::bit_cast<uint32_t>(vm::softplus_table_max);
    const uint32_t last = std::bit_cast<uint32_t>(vm::normal_exp_max<float>);
    constexpr int flags = FE_UNDERFLOW | FE_OVERFLOW | FE_INVALID | FE_DIVBYZERO;
    std::feclearexcept(FE_ALL_EXCEPT);
    double worst = 0.0;
    float at = 0.0f;
    uint64_t count = 0;
    alignas(64) uint32_t in[16];
    alignas(64) float out[16];
    for (uint64_t b = first; b <= last; b += 16) {
        for (int l = 0; l < 16; ++l) in[l] = uint32_t(b + l <= last ? b + l : last);
        band(in, out);
        for (int l = 0; l < 16; ++l) {
            const float a = std::bit_cast<float>(in[l]);
            const long double want = std::exp(-static_cast<long double>(a));
            int exponent;
            std::frexp(static_cast<double>(out[l]), &exponent);
            const long double ulp = std::ldexp(1.0L, exponent - 24);
            if (!(std::fabs(out[l]) >= 0x1p-126f)) {
                std::printf("exp_neg_abs_band(%.9g) = %g: not a normal number\n", double(a), double(out[l]));
                return 1;
            }
            const double e = double(std::fabs(static_cast<long double>(out[l]) - want) / ulp);
            if (e > worst) worst = e, at = a;
            ++count;
        }
    }
    if (std::fetestexcept(flags)) {
        std::printf("a flag was raised over the range: %#x\n", std::fetestexcept(flags));
        ++failures;
    }
    // lanes outside the range: clamped, normal, no flag
    const float outside[16] = {0.0f, 0x1p-149f, 0x1p-126f, 0x1p-30f, 1.0f, 31.49f, 87.34f, 100.0f,
                               104.0f, 1e10f, 1e30f, 3.4e38f, INFINITY, NAN, 0x1p-140f, 5.0f};
    for (int l = 0; l < 16; ++l) in[l] = std::bit_cast<uint32_t>(std::fabs(outside[l]));
    std::feclearexcept(FE_ALL_EXCEPT);
    band(in, out);
    if (std::fetestexcept(flags)) {
        std::printf("a flag was raised outside the range: %#x\n", std::fetestexcept(flags));
        ++failures;
    }
    for (int l = 0; l < 16; ++l) {
        if (!(out[l] >= 0x1p-126f && out[l] < 1.0f)) {
            std::printf("exp_neg_abs_band(%g) = %g outside the range: not a normal number below 1\n",
                        double(outside[l]), double(out[l]));
            ++failures;
        }
    }
    std::printf("%llu values, worst error %.4f ulp at |x| = %.9g\n", static_cast<unsigned long long>(count), worst,
                double(at));
    return worst <= 1.1 && failures == 0 ? 0 : 1;
#else
    std::printf("no exp_neg_abs_band on this tier\n");
    return 2;
#endif
}
