// The float64 lane arithmetic of the evaluation report's pass (report.hpp), compiled once per
// SIMD tier with it: lane vectors of the tier's width and their conversions, the chunk's lane
// sums, p = sigmoid(x) from exp(-|x|) (a table exp of float32 logits on AVX-512 and AVX2) and
// the in-register transpose of the groups' records. No state, no tile: what the pass computes a
// vector at a time.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "fastbce/kernel.hpp"
#include "fastbce/report_types.hpp"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace fastbce {
namespace FASTBCE_TIER {

// Lane vectors of the tier's width for the report's float64 sums: F64 holds kSumLanes doubles,
// F32 as many floats. widen() converts kSumLanes values of the working type to F64, and
// reciprocal() is 1/d (d in [1, 2]) to about 2^-46: a float division refined by one Newton step
// in float64 (the sums need 1e-12; a float64 division took 2 cycles an element on AVX-512), or
// on AVX-512 to about 2^-52 from its 14-bit estimate (below). On
// x86 they are spelled with intrinsics: GCC splits __builtin_convertvector between 32-byte float
// and 64-byte double vectors into halves with extracts and inserts.
using F64 = LaneVec<double, kSumLanes>::type;
using F32 = LaneVec<float, kSumLanes>::type;

inline F64 widen(const double* from) {
    F64 v;
    std::memcpy(&v, from, sizeof v);
    return v;
}

inline F64 widen(const float* from) {
#if defined(__AVX512F__)
    // (the maskz forms: GCC 12 warns that the plain ones use an uninitialised value)
    return F64(_mm512_maskz_cvtps_pd(0xff, _mm256_loadu_ps(from)));
#elif defined(__AVX__)
    return F64(_mm256_cvtps_pd(_mm_loadu_ps(from)));
#elif defined(__SSE2__)
    __m128 v = _mm_setzero_ps();
    std::memcpy(&v, from, 2 * sizeof(float));
    return F64(_mm_cvtps_pd(v));
#else
    F32 v;
    std::memcpy(&v, from, sizeof v);
    return __builtin_convertvector(v, F64);
#endif
}

inline F64 reciprocal(F64 d) {
#if defined(__AVX512F__)
    // (AVX-512: a 2^-14 estimate and two Newton steps of two FMAs each, to about 2^-52: 6 vector
    // operations where the float division, its two conversions and one step took 9)
    const __m512d dv = __m512d(d), one = _mm512_set1_pd(1.0);
    // (maskz with every lane set: the plain intrinsic's _mm512_undefined_pd source trips GCC 12's
    // -Wmaybe-uninitialized, an error under -Werror; same instruction, same result)
    __m512d r = _mm512_maskz_rcp14_pd(__mmask8(0xFF), dv);
    r = _mm512_fmadd_pd(r, _mm512_fnmadd_pd(dv, r, one), r);
    return F64(_mm512_fmadd_pd(r, _mm512_fnmadd_pd(dv, r, one), r));
#else
    const F64 one = F64{} + 1.0;
#if defined(__AVX__)
    const F64 r0 = F64(_mm256_cvtps_pd(_mm_div_ps(_mm_set1_ps(1.0f), _mm256_cvtpd_ps(__m256d(d)))));
#elif defined(__SSE2__)
    const F64 r0 = F64(_mm_cvtps_pd(_mm_div_ps(_mm_set1_ps(1.0f), _mm_cvtpd_ps(__m128d(d)))));
#else
    const F64 r0 = __builtin_convertvector(1.0f / __builtin_convertvector(d, F32), F64);
#endif
    return r0 + r0 * (one - d * r0);
#endif
}

// The sums rs_count .. rs_ignored of one chunk in vector lanes of the tier's width, added to
// the scope's sums lanes in order when the chunk ends (the same order for any thread count).
// The lean tiles' sum of l, which rs_wl, rs_wbce and rs_w2l all get (weights of 1, no options),
// is summed once, in lean_l, and added to the three lane by lane at the end (a chunk of lean
// tiles only: the bits of three separate sums, as 0 + s is s).
struct LaneSums {
    F64 acc[rs_ignored + 1] = {};
    F64 lean_l = {};

    void add_to(double* sums) const {
        for (int r = 0; r <= rs_ignored; ++r) {
            const bool lean = r == rs_wl || r == rs_wbce || r == rs_w2l;
            const F64 v = lean ? acc[r] + lean_l : acc[r];
            double lanes[kSumLanes];
            std::memcpy(lanes, &v, sizeof lanes);
            for (int k = 0; k < kSumLanes; ++k) sums[r] += lanes[k];
        }
    }
};

// sigmoid(x) in float64 from z = exp(-|x|): 1/(1+z) for x >= 0, z/(1+z) below.
inline F64 sigmoid_from_exp(F64 x, F64 z) {
    const F64 zero = {};
    const F64 one = zero + 1.0;
    return (x >= zero ? one : z) * reciprocal(one + z);
}

// exp(-|x|) in float64 for a tile of float32 logits (AVX-512 here, AVX2 below; the other tiers
// and float64 logits take kernel.hpp's exp_neg_abs). |x| has 24 significant bits, so a shorter
// reduction than a general exp's suffices: k = round(16 |x| / ln2), r = |x| - k ln2/16 (|r| <= ln2/32;
// k ln2_hi/16 is a multiple of 2^-45 and so is |x| wherever k > 0, so the first step is exact),
// exp(-|x|) = 2^(-k/16) exp(-r) with 2^(i/16) from a 16-entry table held in two registers
// (i = -k mod 16) and a scalef by floor(-k/16). exp(-r) = 1 - r + r^2 Q(r), Q degree 4 (near
// minimax on [-ln2/32, ln2/32]: 1.2e-17 relative). Relative error at most 3.1e-16 over every
// float32 |x| <= 700 (checked against long double); results stay normal (>= 2^-1010).
#if defined(__AVX512F__)
inline __m512d exp_neg_wide(__m512d a) {
    const __m512d magic = _mm512_set1_pd(0x1.8p52);
    const __m512d t = _mm512_fmadd_pd(a, _mm512_set1_pd(-0x1.71547652b82fep+4), magic);
    const __m512d kn = _mm512_sub_pd(t, magic);  // -k; the low bits of t hold -k mod 16
    __m512d r = _mm512_fmadd_pd(kn, _mm512_set1_pd(0x1.62e42fefa3p-5), a);
    r = _mm512_fmadd_pd(kn, _mm512_set1_pd(0x1.3de6af278ece6p-46), r);
    __m512d q = _mm512_set1_pd(0x1.6c14c7f81abc1p-10);
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(-0x1.11123b4ff51dep-7));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(0x1.55555558fd7ffp-5));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(-0x1.555555548eae8p-3));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(0x1.fffffffffffb9p-2));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(-1.0));
    q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(1.0));
    const __m512d lo = _mm512_setr_pd(0x1p+0, 0x1.0b5586cf9890fp+0, 0x1.172b83c7d517bp+0,
                                      0x1.2387a6e756238p+0, 0x1.306fe0a31b715p+0, 0x1.3dea64c123422p+0,
                                      0x1.4bfdad5362a27p+0, 0x1.5ab07dd485429p+0);
    const __m512d hi = _mm512_setr_pd(0x1.6a09e667f3bcdp+0, 0x1.7a11473eb0187p+0, 0x1.8ace5422aa0dbp+0,
                                      0x1.9c49182a3f09p+0, 0x1.ae89f995ad3adp+0, 0x1.c199bdd85529cp+0,
                                      0x1.d5818dcfba487p+0, 0x1.ea4afa2a490dap+0);
    const __m512d two_i16 = _mm512_permutex2var_pd(lo, _mm512_castpd_si512(t), hi);
    return _mm512_maskz_scalef_pd(0xff, _mm512_mul_pd(two_i16, q), _mm512_mul_pd(kn, _mm512_set1_pd(0.0625)));
}
#elif defined(__AVX2__) && defined(__FMA__)
// The same on AVX2, whose one-instruction lookup holds 8 floats: 4 float64 values, each as its
// two halves (vpermps). So k = round(4 |x| / ln2) and r = |x| - k ln2/4 (|r| <= ln2/8; the
// first step exact as above: k ln2_hi/4 and |x| are multiples of 2^-42), exp(-|x|) =
// 2^(-k/4) exp(-r) with 2^(i/4) from the table (i = -k mod 4) and 2^floor(-k/4) added into the
// exponent field (the result is normal: >= 2^-1010). exp(-r) is its Taylor polynomial of degree
// 9 (the remainder is below 7e-18 relative on |r| <= ln2/8). The general float64 exp took 25% of
// the report's pass over float32 logits on Zen 3 (about 0.7 of 2.8 ns a row, 2 threads).
inline __m256d exp_neg_wide(__m256d a) {
    const __m256d magic = _mm256_set1_pd(0x1.8p52);
    const __m256d t = _mm256_fmadd_pd(a, _mm256_set1_pd(-0x1.71547652b82fep+2), magic);
    const __m256d kn = _mm256_sub_pd(t, magic);  // -k; the low bits of t hold -k mod 4
    __m256d r = _mm256_fmadd_pd(kn, _mm256_set1_pd(0x1.62e42fefa3p-3), a);
    r = _mm256_fmadd_pd(kn, _mm256_set1_pd(0x1.3de6af278ece6p-44), r);
    constexpr double c[] = {1.0,          -1.0,          1.0 / 2,      -1.0 / 6,       1.0 / 24,
                            -1.0 / 120,   1.0 / 720,     -1.0 / 5040,  1.0 / 40320,    -1.0 / 362880};
    __m256d q = _mm256_set1_pd(c[9]);
    for (int i = 8; i >= 0; --i) q = _mm256_fmadd_pd(q, r, _mm256_set1_pd(c[i]));
    // the table's entry i as float lanes 2i, 2i + 1 of each float64 lane
    const __m256i bits = _mm256_castpd_si256(t);
    const __m256i i = _mm256_and_si256(_mm256_shuffle_epi32(bits, 0xa0), _mm256_set1_epi32(3));
    const __m256i lanes = _mm256_add_epi32(_mm256_add_epi32(i, i), _mm256_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1));
    const __m256 table = _mm256_castpd_ps(
        _mm256_setr_pd(0x1p+0, 0x1.306fe0a31b715p+0, 0x1.6a09e667f3bcdp+0, 0x1.ae89f995ad3adp+0));
    const __m256d two_i4 = _mm256_castps_pd(_mm256_permutevar8x32_ps(table, lanes));
    // 2^floor(-k/4): bits 2 and up of -k into the exponent field (its sign bit takes the wrap)
    const __m256i scale = _mm256_slli_epi64(_mm256_srli_epi64(bits, 2), 52);
    return _mm256_castsi256_pd(_mm256_add_epi64(_mm256_castpd_si256(_mm256_mul_pd(two_i4, q)), scale));
}
#endif

// exp(-|x|) in float64 for the fused pass (z: t.z): exp_neg_wide where it applies and every
// |x| <= 700 (no NaN), kernel.hpp's exp_neg_abs otherwise.
template <class T>
inline void exp_neg_abs_wide(const T* __restrict x, double* __restrict z, int64_t len) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
    if constexpr (std::is_same_v<T, float>) {
        __m256i top = _mm256_setzero_si256();  // the largest |x| as bits (NaN above inf)
        const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
        for (int64_t j = 0; j < len; j += 8) {  // (len: a multiple of the float vector)
            const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + j));
            const __m256i a = _mm256_and_si256(bits, abs_mask);
            top = _mm256_max_epu32(top, a);
            const __m256 af = _mm256_castsi256_ps(a);
#if defined(__AVX512F__)
            _mm512_storeu_pd(z + j, exp_neg_wide(_mm512_maskz_cvtps_pd(0xff, af)));
#else
            _mm256_storeu_pd(z + j, exp_neg_wide(_mm256_cvtps_pd(_mm256_castps256_ps128(af))));
            _mm256_storeu_pd(z + j + 4, exp_neg_wide(_mm256_cvtps_pd(_mm256_extractf128_ps(af, 1))));
#endif
        }
        alignas(32) uint32_t lanes[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), top);
        uint32_t m = 0;
        for (uint32_t v : lanes) m = std::max(m, v);
        if (m <= std::bit_cast<uint32_t>(700.0f)) return;
    }
#endif
    exp_neg_abs(x, z, len);
}

// Transposes L vectors of L lanes in place (v[i][k] becomes v[k][i]): log2(L) stages, each
// swapping the off-diagonal blocks of h lanes between rows i and i + h (exact: moves only).
using I64 = int64_t __attribute__((vector_size(8 * kSumLanes)));
template <int H, size_t... K>
constexpr I64 block_mask(bool first, std::index_sequence<K...>) {
    constexpr int64_t L = kSumLanes;  // (index L + k: lane k of the second vector)
    return first ? I64{((K & H) == 0 ? int64_t(K) : L + int64_t(K) - H)...}
                 : I64{((K & H) == 0 ? int64_t(K) + H : L + int64_t(K))...};
}
template <int H = 1>
inline void transpose(F64* v) {
    if constexpr (H < kSumLanes) {
        constexpr auto lanes = std::make_index_sequence<kSumLanes>();
        constexpr I64 first = block_mask<H>(true, lanes), second = block_mask<H>(false, lanes);
        for (int i = 0; i < kSumLanes; ++i) {
            if ((i & H) != 0) continue;
            const F64 a = v[i], b = v[i + H];
            v[i] = __builtin_shuffle(a, b, first);
            v[i + H] = __builtin_shuffle(a, b, second);
        }
        transpose<2 * H>(v);
    }
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
