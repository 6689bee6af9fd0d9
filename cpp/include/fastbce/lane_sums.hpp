// The kernel's float64 sums in a fixed order (sum_f64), the omitted-label mask and the
// per-group sums.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "fastbce/tile_inputs.hpp"
#include "fastbce/types.hpp"

namespace fastbce {
namespace FASTBCE_TIER {

// ---------------------------------------------------------------- accumulation

// Sum of v[0, len) in float64 over 16 lanes (lane l adds v[l], v[l + 16], ...), then the lanes
// in a fixed order: lane l + 8 into lane l, then lanes 0..7 one after another. The order of
// additions is the same on every tier and thread count. The lanes are held in vectors of the
// tier's native width (GCC/Clang vector extensions: converts and adds as plain vector
// instructions; left to the auto-vectoriser they came out as scalar converts and shuffles). A
// 64-byte vector type on AVX2 or SSE was lowered through the stack and took 40% of a plain
// float32 logits call on AVX2.
#if defined(__AVX512F__)
constexpr int kSumLanes = 8;  // doubles per native vector
#elif defined(__AVX__)
constexpr int kSumLanes = 4;
#else
constexpr int kSumLanes = 2;
#endif

template <class T, int L>
struct LaneVec;  // L lanes of T as a GCC/Clang vector type
template <int L>
struct LaneVec<double, L> {
    typedef double type __attribute__((vector_size(8 * L)));
};
template <int L>
struct LaneVec<float, L> {
    typedef float type __attribute__((vector_size(4 * L)));
};

template <class T>
inline double sum_f64(const T* v, int64_t len) {
    constexpr int L = kSumLanes, K = 16 / L;  // K native vectors hold the 16 lanes
    using f64xL = typename LaneVec<double, L>::type;
    using TxL = typename LaneVec<T, L>::type;
    f64xL acc[K] = {};
    int64_t j = 0;
    for (; j + 16 <= len; j += 16) {
        for (int k = 0; k < K; ++k) {
#if defined(__AVX512F__)
            if constexpr (std::is_same_v<T, float>) {
                // (one vcvtps2pd from memory: GCC 12 splits __builtin_convertvector of 8 floats
                // into two 4-wide converts, an extract and an insert, 2.5x the instructions; the
                // masked form because the plain one trips GCC 12's -Wmaybe-uninitialized)
                acc[k] += f64xL(_mm512_maskz_cvtps_pd(__mmask8(0xff), _mm256_loadu_ps(v + j + k * L)));
                continue;
            }
#endif
            TxL a;
            std::memcpy(&a, v + j + k * L, sizeof a);
            acc[k] += __builtin_convertvector(a, f64xL);
        }
    }
    double lanes[16];
    std::memcpy(lanes, acc, sizeof lanes);
    double total = 0.0;
    for (int lane = 0; lane < 8; ++lane) total += lanes[lane] + lanes[lane + 8];
    for (; j < len; ++j) total += double(v[j]);
    return total;
}

// Under nan_policy "omit": zeroes ce and w (into w_kept) where y, p or w is NaN, and marks the
// kept elements with 1 in `kept`, so that plain sums count only them.
template <class T>
inline void mask_omitted(const T* y, const T* p, const T* w, T* ce, T* w_kept, T* kept, int64_t len) {
    for (int64_t j = 0; j < len; ++j) {
        const bool keep = y[j] == y[j] && p[j] == p[j] && w[j] == w[j];
        ce[j] = keep ? ce[j] : T(0);
        w_kept[j] = keep ? w[j] : T(0);
        kept[j] = keep ? T(1) : T(0);
    }
}

// Per-group sums (codes[j] is the group of element j), added element by element in order: the
// same additions, in the same order, on every tier and thread count. The losses come vectorised
// from the tile; this is one scalar scatter per element: (loss, weight, 1, 0) added to the
// group's GroupSums as one 32-byte vector (two 16-byte ones without AVX), with the NaN test of
// "omit" hoisted out of the plain loop. Code is int64_t, or int32_t (an Arrow dictionary's
// indices as read: no int64 copy of them per batch). Returns the first element whose code is
// outside [0, n_groups) (an untrusted dictionary's index: never written through), or -1.
template <class T>
FASTBCE_VM_INLINE void add_to_group(GroupSums& g, const T* ce, const T* w) {
    // (intrinsics: GCC's scalar converts, and its converts of a vector built from scalars,
    // merged into a register the previous row had written, which chained every row to the last)
#if defined(__AVX__)
    __m256d add;
    if constexpr (std::is_same_v<T, float>)
        add = _mm256_cvtps_pd(_mm_unpacklo_ps(_mm_load_ss(ce), _mm_load_ss(w)));
    else
        add = _mm256_castpd128_pd256(_mm_loadh_pd(_mm_load_sd(ce), w));
    add = _mm256_blend_pd(add, _mm256_setr_pd(0.0, 0.0, 1.0, 0.0), 0b1100);
    double* const at = &g.loss;  // (the four values, from the struct's start: 32-byte aligned)
    _mm256_store_pd(at, _mm256_add_pd(_mm256_load_pd(at), add));
#elif defined(__SSE2__)
    __m128d add;
    if constexpr (std::is_same_v<T, float>)
        add = _mm_cvtps_pd(_mm_unpacklo_ps(_mm_load_ss(ce), _mm_load_ss(w)));
    else
        add = _mm_loadh_pd(_mm_load_sd(ce), w);
    _mm_store_pd(&g.loss, _mm_add_pd(_mm_load_pd(&g.loss), add));
    _mm_store_pd(&g.count, _mm_add_pd(_mm_load_pd(&g.count), _mm_setr_pd(1.0, 0.0)));
#else
    g.loss += double(*ce);
    g.weight += double(*w);
    g.count += 1.0;
#endif
}

template <class T, class Code>
inline int64_t accumulate_groups(const T* y, const T* p, const T* w, const T* ce, const Code* codes,
                                 int64_t len, bool omit, int64_t n_groups, GroupSums* groups) {
    const auto in_range = [n_groups](Code code) { return uint64_t(int64_t(code)) < uint64_t(n_groups); };
    if (!omit) {
        for (int64_t j = 0; j < len; ++j) {
            if (!in_range(codes[j])) return j;
            add_to_group(groups[codes[j]], ce + j, w + j);
        }
        return -1;
    }
    for (int64_t j = 0; j < len; ++j) {
        if (!in_range(codes[j])) return j;
        if (!(y[j] == y[j] && p[j] == p[j] && w[j] == w[j])) continue;
        add_to_group(groups[codes[j]], ce + j, w + j);
    }
    return -1;
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
