// The loss loops over one tile: loss_loop (steps 1-3), the weight and range helpers it uses,
// and the table loops of float32 logits (focal_table_loop, plain_table_loop).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "fastbce/loss_focal.hpp"
#include "fastbce/sigmoid_table.hpp"
#include "fastbce/softplus_table.hpp"
#include "fastbce/types.hpp"
#include "fastbce/vecmath.hpp"

namespace fastbce {
namespace FASTBCE_TIER {

// Float64 logits with sample weights in a tile with an |x| outside the fast exp's range: the loss
// can be subnormal (|x| > 708.4) or near it, and w times it is formed by loss_tile (weight_tile).
template <class T, bool FromLogits, bool Finite>
constexpr bool WeightLater = FromLogits && !Finite && std::is_same_v<T, double>;

// Float logits with sample weights: in a tile beyond the fast exp's range, or with an |x| above
// wide_weight_abs (a loss can be below 2^-115 there, down to 2^-126 at 87.33), w times a loss can
// be subnormal, and a float multiply producing it takes a microcode assist on Intel cores (~100
// cycles). Such tiles form it as float(double(w) * double(loss)) in the loss loop (WideWeight):
// the product of two floats is exact in double and rounded once, the float product's bits
// (gradual underflow included), and the conversions take no assist, not even from or to a
// subnormal (measured on every tier). (Before, a pass over the tile after the loss loop scanned
// for tiny losses and multiplied: weighted float32 at |x| = 87 ran 1.4x the fastest magnitude.)
template <class T>
constexpr T wide_weight_abs = std::is_same_v<T, float> ? T(80) : std::numeric_limits<T>::infinity();

// Whether a finite tile with these largest and smallest |x| (bit patterns) takes WideWeight: an
// |x| above wide_weight_abs, unless every |x| is at least zero_exp_min (every loss is then 0 or
// at least |x|).
template <class Bits, class T = std::conditional_t<sizeof(Bits) == 4, float, double>>
FASTBCE_VM_INLINE bool wide_weight(Bits max_abs_bits, Bits min_abs_bits) {
    return (max_abs_bits > std::bit_cast<Bits>(wide_weight_abs<T>)) & (min_abs_bits < std::bit_cast<Bits>(vm::zero_exp_min<T>));
}

// ce *= w (step 6), float64: a loss below 2^-1020 (only beyond |x| = 708, never in a tile within
// the fast exp's range) times a weight below 2^900 is formed as w (loss 2^1074) and rounded once (Deep::up,
// Deep::down): no operation sees a subnormal. The product's rounding makes this a double
// rounding (within one subnormal ulp of w * loss), so it depends on the element alone.
inline void weight_tile(double* __restrict ce, const double* __restrict w, int64_t len) {
    int tiny = 0;
    for (int64_t j = 0; j < len; ++j) tiny |= int(Deep::in(ce[j]));
    if (!tiny) {
        for (int64_t j = 0; j < len; ++j) ce[j] = times_weight(w[j], ce[j]);  // FASTBCE_VEC_LOOP
        return;
    }
    using vm::detail::select;
    for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
        const double loss = ce[j], wj = w[j];
        const bool scaled = Deep::in(loss) & (wj < 0x1p900);
        const double ls = select(scaled, loss, 0x1p-1021);  // (other lanes: harmless values)
        const double v = Deep::down(select(scaled, wj, 1.0) * Deep::up(ls));
        ce[j] = select(scaled, v, times_weight(wj, select(scaled, 1.0, loss)));
    }
}

// Whether |x| (its bits) is in (normal_exp_max, zero_exp_min), where exp(-|x|) needs the general
// exp: a tile with such an |x| is not saturated. Where the tile's smallest |x| is one, loss_tile
// knows it without saturate_tile's pass (every tile of |x| in 87.34-103.97, float32, took that
// pass: 0.16 of 3.7 cycles an element on v4, focal gamma 2).
template <class T, class Bits = typename vm::detail::traits<T>::uint>
FASTBCE_VM_INLINE bool in_exp_gap(Bits a) {
    constexpr Bits lo = std::bit_cast<Bits>(vm::normal_exp_max<T>);
    constexpr Bits hi = std::bit_cast<Bits>(vm::zero_exp_min<T>);
    return a - lo - 1u < hi - lo - 1u;
}

// A tile of logits beyond the fast exp's range whose every |x| is within it or at least
// zero_exp_min (745.134 for double, 103.975 for float: exp(-|x|) rounds to 0 there, in the general
// exp too; a bound of 746 / 104 sent |x| = 104 to the general loops, 1.5x slower) and finite:
// puts those zeros into z (the fast exp's values elsewhere are the general one's bits) and returns
// true, and the tile takes the loops of a finite one, which give the same bits for its elements.
// Whole vectors of |x| >= 1000 took the general exp and loops: 1.3-1.6x slower.
template <class T>
inline bool saturate_tile(const T* __restrict x, T* __restrict z, int64_t len) {
    using Bits = typename vm::detail::traits<T>::uint;
    constexpr Bits inf_bits = std::bit_cast<Bits>(inf<T>);
    int general = 0;  // an |x| in the gap (in_exp_gap), or infinite or NaN
    for (int64_t j = 0; j < len; ++j) {
        const Bits a = std::bit_cast<Bits>(std::abs(x[j]));
        general |= int(in_exp_gap<T>(a) | (a >= inf_bits));
    }
    if (general) return false;
    for (int64_t j = 0; j < len; ++j) z[j] = vm::detail::select(std::abs(x[j]) > vm::normal_exp_max<T>, T(0), z[j]);  // FASTBCE_VEC_LOOP
    return true;
}

// exp(-|x|) for a tile, in Z (the working type, or double for the report's p): the cheaper exp
// of a normal result, and the general one again for a tile with any |x| beyond its range (or a
// NaN), as loss_tile does.
template <class T, class Z = T>
inline void exp_neg_abs(const T* __restrict x, Z* __restrict z, int64_t len) {
    using Bits = typename vm::detail::traits<Z>::uint;
    Bits max_abs_bits = 0;
    for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
        const Z a = std::abs(Z(x[j]));
        max_abs_bits = std::max(max_abs_bits, std::bit_cast<Bits>(a));
        z[j] = vm::exp_nonpositive_normal(-a);
    }
    if (max_abs_bits > std::bit_cast<Bits>(vm::normal_exp_max<Z>)) {
        for (int64_t j = 0; j < len; ++j) z[j] = vm::exp_nonpositive(-std::abs(Z(x[j])));  // FASTBCE_VEC_LOOP
    }
}

// loss_loop's range check: the larger of acc and v's bit pattern (a value in [+0, 1] has bits <=
// those of 1; negative, -0, > 1 and NaN more), which the caller compares with bits(1). SSE2 has no
// 64-bit integer compare, and GCC does not vectorise a 64-bit max there: the float64 loss loop ran
// scalar on baseline, its ternaries as branches on the sign of x. There the sign bits of
// (bits(1) - b) | b, which is negative exactly where b > bits(1) (unsigned), are ORed instead:
// subtract, or, and, as SSE2 has them; the caller's test reads the same.
template <class T, class Bits>
FASTBCE_VM_INLINE Bits range_max(Bits acc, T v) {
    const Bits b = std::bit_cast<Bits>(v);
    if constexpr (FASTBCE_VM_SSE2_ONLY && sizeof(T) == 8) {
        constexpr Bits sign = Bits(1) << 63;
        return acc | (((std::bit_cast<Bits>(T(1)) - b) | b) & sign);
    }
    return std::max(acc, b);
}

// SSE2 (the baseline build) has no 64-bit integer compare, and GCC 12 vectorises no 64-bit
// integer select there: the float64 general loop below ran scalar, and its selects on the label
// and on the sign of x became branches on the data, taken at random on real data (pos_weight:
// 45 ns an element at |x| <= 36, 1.97x its fastest magnitude, on Zen 4). There those selects are
// made from these masks (all ones or 0: subtracts, shifts and bit operations, below_mask), and
// the loop vectorises: 20.8 ns at every |x|, the same values (docs/benchmarks.md).
namespace bits_mask {
using U = uint64_t;
// ones where v's sign bit is set
FASTBCE_VM_INLINE U sign(double v) { return U(0) - (std::bit_cast<U>(v) >> 63); }
// ones where v is +0 or -0 (v == 0)
FASTBCE_VM_INLINE U zero(double v) { return vm::detail::below_mask(std::bit_cast<U>(v) << 1, U(1)); }
// ones where v < limit, for limit > 0 and v not NaN
FASTBCE_VM_INLINE U less(double v, double limit) {
    return vm::detail::below_mask(std::bit_cast<U>(v), std::bit_cast<U>(limit)) | (sign(v) & ~zero(v));
}
// v, or +0 where m is ones (select(m, 0, v))
FASTBCE_VM_INLINE double clear(U m, double v) { return std::bit_cast<double>(std::bit_cast<U>(v) & ~m); }
}  // namespace bits_mask

// Steps 1-3 of the elementwise loss for one tile, and those of steps 5-6 that apply_focal does
// not take: the main loop of loss_tile below, where the formulas are explained. For logits `scratch` holds exp(-|x|);
// Finite: every logit is known to be finite and its exp(-|x|) normal or 0 (no deep band).
// SoftGiven: `scratch` holds softplus(-|x|) itself (the AVX-512 float table, softplus_table.hpp)
// rather than exp(-|x|). Returns the largest bit pattern of the labels (and probabilities) for
// the range check.
// TinyS: the call's smoothing is tiny (LossParams::half_s_up), a loop of its own (general only).
template <class T, bool FromLogits, bool Focal, Options O, bool Finite, bool SoftGiven = false, bool WideWeight = false,
          bool TinyS = false>
inline typename vm::detail::traits<T>::uint loss_loop(const T* __restrict y, const T* __restrict pred,
                                                     const T* __restrict q, const T* __restrict w,
                                                     T* __restrict ce, T* __restrict scratch,
                                                     double* __restrict wide_loss, int64_t len,
                                                     const LossParams<T>& k) {
    if constexpr (O == Options::general && !TinyS) {
        if (k.half_s_up != 0.0)
            return loss_loop<T, FromLogits, Focal, O, Finite, SoftGiven, WideWeight, true>(y, pred, q, w, ce, scratch,
                                                                                           wide_loss, len, k);
    }
    // The range check as a maximum of bit patterns: a value in [+0, 1] has bits <= those of 1,
    // anything else (negative, > 1, NaN, -0) more. NaN and -0 are no range error, so a tile with
    // any of them only takes the exact check (first_outside_unit), which finds nothing: one
    // integer max an element instead of two compares and an or.
    constexpr bool General = O == Options::general;
    using Bits = typename vm::detail::traits<T>::uint;
    Bits max_bits = 0;
    for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
        max_bits = range_max(max_bits, y[j]);
        if constexpr (!FromLogits) max_bits = range_max(max_bits, pred[j]);
        // step 1: y' and 1 - y', each from y directly so that neither cancels (a tiny label
        // smoothing would otherwise round 1 - y' to 0)
        T ys = y[j], ys_c = T(1) - y[j];
        if constexpr (General) {
            ys = vm::detail::mul_add(y[j], k.keep, k.shift);
            ys_c = vm::detail::mul_add(T(1) - y[j], k.keep, k.shift);
        }
        const T x = pred[j];
        T neg_log_p, neg_log_1mp;  // step 2: -log p and -log(1-p), both >= 0
        [[maybe_unused]] T soft = T(0);
        [[maybe_unused]] bool deep = false;  // (general float64 logits: the loss is scaled, Deep)
        if constexpr (FromLogits) {
            const T z = scratch[j];  // exp(-|x|), in [0, 1] (or softplus(-|x|), SoftGiven)
            if constexpr (SoftGiven) soft = z;
            else soft = vm::log1p_small_nonnegative(z);
            if constexpr (General) {  // (the other levels use soft directly, below)
                // (double: a tiny soft, |x| > 315, is left out of the likely side's term, where
                // it is below half an ulp of |x|, and out of the unlikely side's where the other
                // term is there, as in one_minus_pt; in the deep band, a correct hard prediction's
                // loss is formed on z 2^1074 and rounded once below (Deep). Float products are
                // made in double.)
                T soft_p = soft, soft_1mp = soft;
                if constexpr (std::is_same_v<T, double>) {
                    using vm::detail::select;
                    if constexpr (FASTBCE_VM_SSE2_ONLY) {  // (the same selects, see bits_mask; a NaN x or
                        // label gives NaN at the end whatever soft_p and soft_1mp are)
                        namespace bm = bits_mask;
                        const bm::U tiny_m = bm::less(soft, TinyTerm<T>::z_max), nonzero_x = ~bm::zero(x);
                        const bm::U ys_big = ~bm::less(ys, TinyTerm<T>::other_min);
                        const bm::U ys_c_big = ~bm::less(ys_c, TinyTerm<T>::other_min);
                        soft_p = bm::clear(tiny_m & ((bm::sign(x) & nonzero_x) | ys_c_big), soft);
                        soft_1mp = bm::clear(tiny_m & ((~bm::sign(x) & nonzero_x) | ys_big), soft);
                    } else {
                        const bool tiny = soft < TinyTerm<T>::z_max;
                        soft_p = select(tiny & ((x < T(0)) | (ys_c >= TinyTerm<T>::other_min)), T(0), soft);
                        soft_1mp = select(tiny & ((x > T(0)) | (ys >= TinyTerm<T>::other_min)), T(0), soft);
                    }
                    if constexpr (!Focal && !Finite && !TinyS) {  // (TinyS: no Deep, rare calls)
                        // (factors below 2^200, so that the scaled product stays finite)
                        const Bits factors = std::max(std::max(std::bit_cast<Bits>(ys), std::bit_cast<Bits>(ys_c)),
                                                      std::max(std::bit_cast<Bits>(q[j]), std::bit_cast<Bits>(w[j])));
                        const T z = scratch[j];
                        deep = Deep::in(z) & ((x > T(0) ? ys_c : ys) == T(0)) & (factors < std::bit_cast<Bits>(0x1p200));
                        const T big_z = Deep::up(select(deep, z, T(0x1p-1021)));  // (others: harmless)
                        soft_p = select(deep & (x > T(0)), big_z, soft_p);
                        soft_1mp = select(deep & (x < T(0)), big_z, soft_1mp);
                    }
                }
                neg_log_p = (x < T(0) ? -x : T(0)) + soft_p;
                neg_log_1mp = (x > T(0) ? x : T(0)) + soft_1mp;
            }
        } else {
            T pc = x < k.clip_lo ? k.clip_lo : x;  // written so that NaN stays NaN
            pc = pc > k.clip_hi ? k.clip_hi : pc;
            // One general log and one log1p_small: with q = min(p, 1 - p) (1 - p is exact for
            // p >= 1/2), {log p, log(1 - p)} = {log q, log1p(-q)} and -q is in [-1/2, 0].
            const bool low = pc < T(0.5);
            const T qp = low ? pc : T(1) - pc;
            const T log_q = vm::log(qp);
            const T log_1mq = vm::log1p_small(-qp);
            // (-log1p(-q) ~ q is left out where the other term is there, as in one_minus_pt)
            const T small = TinyTerm<T>::keep(-log_1mq, low ? ys : ys_c);
            neg_log_p = low ? -log_q : small;
            neg_log_1mp = low ? small : -log_q;
        }
        // steps 3, 5 and 6. With the general options the loss is a product of up to five factors
        // (y', q, -log p, balance, w), and a float intermediate could overflow or underflow where
        // the result does not: for float input they are multiplied in double (exact enough, and
        // no float-range product leaves double's range), then rounded once.
        T loss;
        if constexpr (General) {
            using W = double;
            W pos, neg;
            if constexpr (FASTBCE_VM_SSE2_ONLY && std::is_same_v<T, double>) {  // (the same, bits_mask)
                pos = bits_mask::clear(bits_mask::zero(ys) | bits_mask::zero(q[j]), ys * (q[j] * neg_log_p));
                neg = bits_mask::clear(bits_mask::zero(ys_c), ys_c * neg_log_1mp);
            } else {
                pos = ((ys == T(0)) | (q[j] == T(0))) ? W(0) : W(ys) * (W(q[j]) * W(neg_log_p));
                neg = times_option(W(ys_c), W(neg_log_1mp));
            }
            W wide = pos + neg;
            if constexpr (TinyS) {  // + d (q (-log p) - log(1 - p)), formed on D = d 2^600
                // (D q 2^-300 is within 2^+-302, so that no product overflows early)
                const W dq = q[j] == T(0) ? W(0) : (k.half_s_up * W(q[j])) * 0x1p-300;
                wide += times_option(dq, W(neg_log_p)) * 0x1p-300 +
                        times_option(k.half_s_up, W(neg_log_1mp)) * 0x1p-600;
            }
            const W plain_wide = wide;
            wide = times_option(W(balance_factor(k, ys, ys_c)), wide);  // step 5
            if constexpr (TinyS)  // the balance's own d: alpha d + (1 - alpha) d
                wide += times_option(W(k.balance_on) * k.half_s_up, plain_wide) * 0x1p-600;
            // A factor of 0 wins over a NaN here (times_option); a NaN label or prediction is put
            // back at the end, NaN in, NaN out whatever its weights (the NaN test inside each
            // factor's, times_weight, kept this loop from vectorising). x + y is that NaN.
            const bool nan_in = (x != x) | (y[j] != y[j]);
            if constexpr (Focal) {
                // (the factor and step 6 follow in apply_focal)
                wide_loss[j] = vm::detail::select(nan_in, W(x) + W(y[j]), wide);
            } else {
                wide = times_option(W(w[j]), wide);  // step 6
                if constexpr (std::is_same_v<T, double> && FromLogits && !Finite)
                    wide = vm::detail::select(deep, Deep::down(vm::detail::select(deep, wide, 0.0)), wide);
                // (SSE2: a float64 ternary, which GCC vectorises there, where select's 64-bit
                // integer form is not; see bits_mask)
                if constexpr (FASTBCE_VM_SSE2_ONLY && std::is_same_v<T, double>)
                    wide = nan_in ? W(x) + W(y[j]) : wide;
                else
                    wide = vm::detail::select(nan_in, W(x) + W(y[j]), wide);
            }
            loss = T(wide);
        } else {
            if constexpr (FromLogits) {
                // q = 1: softplus(-|x|) + (x > 0 ? (1 - y') x : -y' x), two non-negative terms
                // and one product (12% faster than the two-term form below, and as exact).
                // A zero label factor means no label term, also for an infinite x (0 * inf
                // would be NaN); with a finite x the multiply-add gives exactly that by itself,
                // and the test is left out (4% of a plain call). Both paths round the same
                // multiply-add (one FMA where the tier has it), so they give the same bits.
                // Outside the fast exp's range soft can be subnormal (|x| > 87.3 / 708.4): it is
                // the loss where the label factor is 0 and below half an ulp of the label term
                // elsewhere, so it enters no arithmetic (an operation on it takes a microcode
                // assist on Intel, even one with an exact result).
                const T label_factor = x > T(0) ? ys_c : -ys;
                if constexpr (Finite) {
                    loss = vm::detail::mul_add(label_factor, x, soft);
                } else {
                    const T soft_k = vm::detail::select(soft < std::numeric_limits<T>::min(), T(0), soft);
                    loss = vm::detail::select(label_factor == T(0), soft, vm::detail::mul_add(label_factor, x, soft_k));
                }
            } else {
                // (label factors: y' and 1 - y' are not both 0, so a NaN log carries over)
                loss = times_option(ys, neg_log_p) + times_option(ys_c, neg_log_1mp);
            }
            // (focal calls take steps 4-6 in apply_focal, alpha included)
            // step 6: one rounded product, which overflows only with w * loss
            // (float64 logits outside the fast exp's range: loss_tile multiplies, see WeightLater;
            // WideWeight: in double, see wide_weight_abs)
            if constexpr (O == Options::weighted && !Focal && !WeightLater<T, FromLogits, Finite>) {
                if constexpr (WideWeight) loss = T(times_weight(Wide<T>(w[j]), Wide<T>(loss)));
                else loss = times_weight(w[j], loss);
            }
        }
        ce[j] = loss;
        // (general focal calls keep 1 - p_t for apply_focal; z is read before it is overwritten)
        if constexpr (Focal && General)
            scratch[j] = one_minus_pt<FromLogits>(ys, ys_c, x, FromLogits ? scratch[j] : T(0));
    }
    return max_bits;
}

// Whether a TableFocal call (loss_tile) takes sigmoid(-|x|) from softplus(-|x|)
// (vm::sigmoid_by_softplus, 1.97 ulp, a sixth less time for gamma 2) or from its table (1.16
// ulp): by gamma, for the whole call, so that an element's bits never depend on its tile. The
// focal factor's error is about gamma times z's; up to gamma 2 the cheaper one keeps the loss
// well within the focal budget. The same calls take softplus itself from the degree-6 table
// (vm::kSoftplusTable6, 1.74 ulp against 1.21: two operations fewer per 16 elements), in every
// loop that computes their softplus, as plain calls do; gamma > 2 keeps the degree-7 table.
#if defined(FASTBCE_SOFTPLUS_TABLE)
inline bool sigmoid_by_softplus(const LossParams<float>& k) { return k.gamma <= 2.0f; }
#endif

// TableFocal's loop (loss_tile) for a tile whose every |x| is below the tables' end (31.5) and at
// most the focal band: steps 1-6 in one loop, from softplus(-|x|) in `soft` and sigmoid(-|x|) in
// `ce` (overwritten). The operations of loss_loop (Finite, SoftGiven) followed by apply_focal
// (Clean), so their bits, without the round trip through `ce` in between (the two loops, and a
// pass of their own for each table, took 1.3x this time). Returns the largest bit pattern of the
// labels: a tile with one outside [0, 1] (or NaN, -0) is not clean, and the caller computes it
// again by those loops. (Since gamma in {1/2, ..., 4} takes focal_fused_loop, only other gammas
// come here.)
#if defined(FASTBCE_SOFTPLUS_TABLE)
template <Options O, class Factor>
inline uint32_t focal_table_loop(const float* __restrict y, const float* __restrict pred, const float* __restrict soft,
                                 const float* __restrict w, float* __restrict ce, int64_t len,
                                 const LossParams<float>& k, Factor factor) {
    uint32_t max_bits = 0;
    for (int64_t j = 0; j < len; ++j) {  // (vectorised; AVX-512 only: unmarked)
        max_bits = range_max(max_bits, y[j]);
        const float ys = y[j], ys_c = 1.0f - y[j], x = pred[j];
        const float loss = vm::detail::mul_add(x > 0.0f ? ys_c : -ys, x, soft[j]);  // (as loss_loop)
        ce[j] = focal_element<O, true, true, false, true>(loss, ys, ys_c, x, ce[j], w[j], k, factor, [](float v) { return v; });
    }
    return max_bits;
}

// Keeps a loaded vector in its register: GCC 12 otherwise folds its one load into each
// instruction that uses it, and loaded x three times and y three times a vector in
// plain_table_loop. Inputs as NumPy allocates them are 16-byte aligned, so each such 64-byte load
// spans two cache lines: one load each took 9% less time (float labels; uint8 3%; one thread, L2,
// medians of alternated runs).
template <class V>
FASTBCE_VM_INLINE void in_register(V& v) {
    asm("" : "+v"(v));
}

// The uint8-label loops' label term (plain_table_loop_u8, plain_exp_loop): max(x', 0), x' being x
// with its sign flipped on the lanes of label 1 (`ones`), which is |x| where the label is on the
// other side of x from its logit and <= 0 elsewhere.
FASTBCE_VM_INLINE __m512 u8_label_term(__m512 x, __mmask16 ones) {
    const __m512i sign = _mm512_set1_epi32(int(0x80000000u));
    const __m512 t = _mm512_castsi512_ps(_mm512_mask_xor_epi32(_mm512_castps_si512(x), ones, _mm512_castps_si512(x), sign));
    return _mm512_maskz_max_ps(__mmask16(0xffff), t, _mm512_setzero_ps());
}

// The float-label loops' loss (plain_table_loop, plain_beyond_vectors, plain_exp_loop): loss_loop's
// (x > 0 ? 1 - y : -y) x + softplus(-|x|) by the same operations, one FMA, so that the three
// loops give the same bits for a lane.
FASTBCE_VM_INLINE __m512 plain_float_label_loss(__m512 x, __m512 yv, __m512 softplus_neg_abs) {
    const __m512 minus_y = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(yv), _mm512_set1_epi32(int(0x80000000u))));
    const __m512 factor = _mm512_mask_sub_ps(minus_y, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ),
                                             _mm512_set1_ps(1.0f), yv);
    return _mm512_fmadd_ps(factor, x, softplus_neg_abs);
}

// Loads vector j of a float-label table loop (plain_table_loop): x and y once
// each (in_register), |x| as bits, and the running largest |x| and label bit patterns (the loops'
// range checks). Ahead: prefetches both inputs' lines a tile ahead (vm::prefetch_ahead).
template <bool Ahead>
FASTBCE_VM_INLINE void load_table_vector(const float* __restrict y, const float* __restrict pred, int64_t j, __m512& x,
                                         __m512& yv, __m512i& a_bits, __m512i& max_abs, __m512i& max_y) {
    if constexpr (Ahead) vm::prefetch_ahead(pred + j + vm::kAhead), vm::prefetch_ahead(y + j + vm::kAhead);
    x = _mm512_loadu_ps(pred + j), yv = _mm512_loadu_ps(y + j);
    in_register(x), in_register(yv);
    a_bits = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff));
    max_abs = vm::max_u32(max_abs, a_bits);
    max_y = vm::max_u32(max_y, _mm512_castps_si512(yv));
}

// focal_fused_loop's cross-entropy of 16 lanes (returned), z = sigmoid(-|x|) and the label weight
// v = (x > 0 ? 1 - y : y): one place, so that fused_band_lanes forms the same bits again.
template <bool BySoftplus, bool Clamp, class Softplus, class Sigmoid>
FASTBCE_VM_INLINE __m512 fused_cross_entropy(__m512 x, __m512 ys, const Softplus& softplus, [[maybe_unused]] const Sigmoid& sigmoid,
                                             [[maybe_unused]] __m512 band, __m512& v, __m512& z) {
    __m512 a = vm::table_arg_of(x);  // (see focal_fused_loop)
    if constexpr (Clamp) a = _mm512_maskz_min_ps(__mmask16(0xffff), a, band);  // (masked: see vm::max_u32)
    __m512i kk;
    __m512 h;
    vm::table_interval(a, kk, h);
    const __m512 s = softplus(kk, h);
    z = BySoftplus ? vm::sigmoid_by_softplus(s) : sigmoid(kk, h);
    v = _mm512_mask_sub_ps(ys, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ), _mm512_set1_ps(1.0f), ys);
    return _mm512_fmadd_ps(v, a, s);
}

// focal_table_loop for gamma = H/2 in {1/2, ..., 4} with the tables' pass in the same loop: the
// same operations in the same order (softplus_sigmoid_neg_abs_table's, then focal_element's,
// Clean), so the same bits, without storing softplus and sigmoid and loading them back. The
// loss's label term (x > 0 ? 1 - y : -y) x is written v |x|, v = (x > 0 ? 1 - y : y) the label
// weight that 1 - p_t takes too: the same exact product, so the same FMA result, and one select
// for both. Without alpha the class balance is exactly 1 and is left out (Alpha false: the same
// bits; 7% less time). BySoftplus: sigmoid_by_softplus(k), which is gamma <= 2, so H <= 4; such
// calls take softplus from kSoftplusTable6 (degree 6) in every loop (vm::softplus_table).
// a = max(|x|, 2^-30) in one vrangeps is the tables' argument (vm::table_arg's bound: no
// subnormal h) and the label term's |x| too: below 2^-30, v a adds less than half an ulp to
// softplus = ln 2 either way, so the same bits (rounding to nearest); a subnormal x takes no
// microcode assist (it did in the label term's FMA: 8x the time). Every lane is computed before
// the tile's range is known. For gamma >= 2 the tables' argument is clamped at the focal band
// (fused_cross_entropy's Clamp): a correct prediction's product beyond it can be subnormal (a
// microcode assist on Intel cores), and fused_band_lanes forms those lanes again anyway; one
// vminps a vector, up to 5% of the loop's time (gamma 4, N(0, 1), one thread; gamma 2 within
// the noise). Below gamma 2 the band lies beyond the tables' end for any alpha above about 1e-6,
// and lanes beyond the tables (the tile then takes the general loops) are not clamped.
// Returns the largest |x| bits, and the labels' in `label_bits` (focal_table_tile). Ahead:
// prefetches the next tile (vm::prefetch_ahead). (The loop is bound by its vector ports, not by
// latency: sum_f64's adds folded into it, in sum_f64's order so the same bits, took 1.09x the time
// for gamma 2 (one thread, L2) and 1.05x at 1e8 with two threads, medians of alternated runs.)
template <Options O, int H, bool Alpha, bool Ahead = false, bool BySoftplus = H <= 4>
inline uint32_t focal_fused_loop(const float* __restrict y, const float* __restrict pred, const float* __restrict w,
                                 float* __restrict ce, int64_t len, const LossParams<float>& k, uint32_t& label_bits) {
    const vm::TablePolys softplus(vm::softplus_table<BySoftplus>());
    [[maybe_unused]] const vm::TablePolys sigmoid(vm::detail::kSigmoidTable);
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f), zero = _mm512_setzero_ps();
    const __m512 alpha = _mm512_set1_ps(k.balance_alpha), neg_alpha_c = _mm512_set1_ps(k.balance_neg_alpha_c),
                 base = _mm512_set1_ps(k.balance_base), band = _mm512_set1_ps(k.focal_band);
    __m512i max_abs = _mm512_setzero_si512();
    __m512i max_y = _mm512_setzero_si512();
    for (int64_t j = 0; j < len; j += 16) {
        if constexpr (Ahead) vm::prefetch_ahead(pred + j + vm::kAhead), vm::prefetch_ahead(y + j + vm::kAhead);
        __m512 x = _mm512_loadu_ps(pred + j), ys = _mm512_loadu_ps(y + j);
        in_register(x), in_register(ys);
        // (|x|'s bits, not a vrangeps of x: that one drops a NaN on AMD's Zen 4, table_arg_of)
        max_abs = vm::max_u32(max_abs, vm::abs_bits_of(x));
        max_y = vm::max_u32(max_y, _mm512_castps_si512(ys));
        __m512 v, z;
        const __m512 loss = fused_cross_entropy<BySoftplus, (H >= 4)>(x, ys, softplus, sigmoid, band, v, z);
        const __m512 balance = _mm512_fmadd_ps(alpha, ys, _mm512_fmadd_ps(neg_alpha_c, ys, base));  // balance_factor_plain
        const __m512 t = _mm512_fmadd_ps(v, _mm512_fnmadd_ps(two, z, one), z);                    // one_minus_pt
        __m512 focal = _mm512_mul_ps(Alpha ? _mm512_mul_ps(balance, loss) : loss, half_power<H>(t));
        if constexpr (O == Options::weighted) {  // times_weight: w == 0 gives +0
            const __m512 wv = _mm512_loadu_ps(w + j);
            focal = _mm512_maskz_mul_ps(_mm512_cmp_ps_mask(wv, zero, _CMP_NEQ_UQ), wv, focal);
        }
        _mm512_storeu_ps(ce + j, focal);
    }
    label_bits = vm::max_lane(max_y);
    return vm::max_lane(max_abs);
}

// The lanes of a focal_fused_loop tile in the focal band, |x| in (focal_band, softplus_table_max)
// (|x| in (28.6, 31.5) for gamma 2 and alpha 1/4; (17.2, 31.5) for gamma 4): the general path
// forms their loss in double (apply_focal's Mixed), and so does this, by that path itself from
// the same cross-entropy and z (fused_cross_entropy): the same bits as the general tile. Every
// step is lane by lane, so the band lanes are first packed 16 to a vector (x, y, w and their
// places in the tile: a compress in a register, then a store; the compress to memory is slow
// on AMD's Zen 4), formed, and written back to their places. Before, each vector of 16 with a
// band lane was formed whole, all 16 lanes in double: on fastbce bench's "confident" logits
// (70% |x| ~ U(5, 30)), about 5% of the lanes are in the band for gamma 2, and 60% of the
// vectors have one. Before that, any such lane sent its whole tile to the general path.
template <Options O, int H, bool BySoftplus = H <= 4>
inline void fused_band_lanes(const float* __restrict y, const float* __restrict pred, const float* __restrict w,
                               float* __restrict ce, int64_t len, const LossParams<float>& k) {
    const vm::TablePolys softplus(vm::softplus_table<BySoftplus>());
    [[maybe_unused]] const vm::TablePolys sigmoid(vm::detail::kSigmoidTable);
    const __m512 band = _mm512_set1_ps(k.focal_band);
    auto factor = [](double t) { return half_power<H>(t); };
    auto as_double = [](float v) { return double(v); };
    // (|x| > focal_band by bits: the tile has no NaN)
    const __m512i band_bits = _mm512_set1_epi32(int(std::bit_cast<uint32_t>(k.focal_band)));
    constexpr bool Weighted = O == Options::weighted;
    // (16 more: each pack stores a whole vector, and the last packed vector is padded)
    alignas(64) float xs[kTile + 16], ys[kTile + 16], ws[kTile + 16];
    alignas(64) int32_t at[kTile + 16];
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    int64_t m = 0;
    for (int64_t j = 0; j < len; j += 16) {
        const __m512 x = _mm512_loadu_ps(pred + j);
        const __mmask16 in_band = _mm512_cmp_epu32_mask(vm::abs_bits_of(x), band_bits, _MM_CMPINT_NLE);
        _mm512_storeu_ps(xs + m, _mm512_maskz_compress_ps(in_band, x));
        _mm512_storeu_ps(ys + m, _mm512_maskz_compress_ps(in_band, _mm512_loadu_ps(y + j)));
        if constexpr (Weighted) _mm512_storeu_ps(ws + m, _mm512_maskz_compress_ps(in_band, _mm512_loadu_ps(w + j)));
        _mm512_storeu_si512(at + m, _mm512_maskz_compress_epi32(in_band, _mm512_add_epi32(lane, _mm512_set1_epi32(int(j)))));
        m += std::popcount(unsigned(in_band));
    }
    // (the last vector's lanes past m: x = y = w = 0, an ordinary element that raises no flag)
    _mm512_storeu_ps(xs + m, _mm512_setzero_ps());
    _mm512_storeu_ps(ys + m, _mm512_setzero_ps());
    if constexpr (Weighted) _mm512_storeu_ps(ws + m, _mm512_setzero_ps());
    alignas(64) float loss_lanes[16], z_lanes[16], wide_lanes[16];
    for (int64_t i = 0; i < m; i += 16) {
        __m512 v, z;
        const __m512 x = _mm512_loadu_ps(xs + i), yv = _mm512_loadu_ps(ys + i);
        _mm512_store_ps(loss_lanes, fused_cross_entropy<BySoftplus, false>(x, yv, softplus, sigmoid, band, v, z));
        _mm512_store_ps(z_lanes, z);
        for (int l = 0; l < 16; ++l) {  // (apply_focal's Mixed step; vectorised)
            const float yl = ys[i + l], yl_c = 1.0f - ys[i + l];
            wide_lanes[l] = float(focal_element<O, true, true>(loss_lanes[l], yl, yl_c, xs[i + l], z_lanes[l],
                                                               Weighted ? ws[i + l] : 1.0f, k, factor, as_double));
        }
        const int64_t stop = std::min<int64_t>(16, m - i);
        for (int64_t l = 0; l < stop; ++l) ce[at[i + l]] = wide_lanes[l];
    }
}

// TableFocal (loss_tile): a tile whose every |x| is below the tables' end (for realistic logits,
// nearly every tile) takes focal_fused_loop (gamma in {1/2, ..., 4}), whose lanes in the focal
// band fused_band_lanes forms again, or, if every |x| is also within the band, both tables in
// one pass and focal_table_loop (other gammas). Returns false for any other tile, and for one
// with a label outside [0, 1] (NaN, -0), which the caller then computes by its table block and
// the usual focal loops (the same bits for the elements both compute). Ahead: the loops
// prefetch the next tile (vm::prefetch_ahead).
constexpr int kFusedBandFirst = 8;
template <Options O, bool Ahead = false>
inline bool focal_table_tile(const float* __restrict y, const float* __restrict pred, const float* __restrict w,
                             float* __restrict ce, float* __restrict scratch, int64_t len, const LossParams<float>& k) {
    constexpr uint32_t table_end = std::bit_cast<uint32_t>(vm::softplus_table_max);
    const uint32_t band_bits = std::bit_cast<uint32_t>(k.focal_band);
    auto in_tables = [&](uint32_t max_abs_bits) { return max_abs_bits < table_end && max_abs_bits <= band_bits; };
    // (a tile with an |x| beyond the tables among its first 16 is not tried: on logits
    // N(0, 20^2), where nearly every tile has one, focal_fused_loop's work before the general
    // loops took 1.35x the time when only the first |x| was looked at. Nor, for
    // focal_fused_loop, is one with kFusedBandFirst of them in the band: fused_band_lanes forms
    // the band lanes again at about 70 cycles a packed vector of 16, and where about half of
    // them are in the band the general loops alone cost as much; a tile with fewer is tried.
    // The threshold was 2 when whole vectors were formed again: gamma 4 on |x| ~ U(5, 20), 19%
    // of the lanes in the band, then took the general loops for most tiles, and 1.5x its time now.)
    const __m512i first = vm::abs_bits(pred);
    const uint32_t first_max = vm::max_lane(first);
    if (k.half_gamma != 0) {
        const __mmask16 in_band = _mm512_cmp_epu32_mask(first, _mm512_set1_epi32(int(band_bits)), _MM_CMPINT_NLE);
        if (first_max >= table_end || std::popcount(unsigned(in_band)) >= kFusedBandFirst) return false;
    } else if (!in_tables(first_max)) {
        return false;
    }
    uint32_t label_bits = 0;
    auto one_loop = [&](auto h) {
        constexpr int H = decltype(h)::value;
        const uint32_t max_abs_bits = k.balance_off == 0.0f ? focal_fused_loop<O, H, true, Ahead>(y, pred, w, ce, len, k, label_bits)
                                                             : focal_fused_loop<O, H, false, Ahead>(y, pred, w, ce, len, k, label_bits);
        if (max_abs_bits >= table_end || label_bits > std::bit_cast<uint32_t>(1.0f)) label_bits = ~0u;
        else if (max_abs_bits > band_bits) fused_band_lanes<O, H>(y, pred, w, ce, len, k);
    };
    if (with_half_gamma(k.half_gamma, one_loop)) return label_bits <= std::bit_cast<uint32_t>(1.0f);
    const uint32_t max_abs_bits = sigmoid_by_softplus(k) ? vm::softplus_sigmoid_neg_abs_table<true, Ahead>(pred, scratch, ce, len, y)
                                                         : vm::softplus_sigmoid_neg_abs_table<false, Ahead>(pred, scratch, ce, len, y);
    if (!in_tables(max_abs_bits)) return false;
    label_bits = focal_table_loop<O>(y, pred, scratch, w, ce, len, k, PowFactor{double(k.gamma)});
    return label_bits <= std::bit_cast<uint32_t>(1.0f);
}

// Plain float32 logits on AVX-512: the softplus table and the loss in one loop (the table's pass
// and loss_loop's, as two loops: 10% more time with float labels, one thread, L2; see
// plain_table_loop_u8 for uint8 labels). The loss is loss_loop's (Finite, SoftGiven, plain), by
// the same operations: (x > 0 ? 1 - y : -y) x + softplus(-|x|), one FMA. Every lane is computed;
// only a tile whose returned largest |x| bits are below softplus_table_max may use `ce` (loss_tile
// then goes on from `soft`, softplus(-|x|) where |x| is below it, as after the table's own pass).
// `label_bits`: the largest bit pattern of the labels (loss_loop's range check). Ahead: prefetches
// the next tile (vm::prefetch_ahead).
template <bool Ahead = false>
inline uint32_t plain_table_loop(const float* __restrict y, const float* __restrict pred, float* __restrict soft,
                                 float* __restrict ce, int64_t len, uint32_t& label_bits) {
    const vm::TablePolys softplus(vm::detail::kSoftplusTable6);
    __m512i max_abs = _mm512_setzero_si512(), max_y = _mm512_setzero_si512();
    for (int64_t j = 0; j < len; j += 16) {
        __m512 x, yv;
        __m512i a_bits;
        load_table_vector<Ahead>(y, pred, j, x, yv, a_bits, max_abs, max_y);
        const __m512 s = vm::softplus_neg_abs(softplus, a_bits);
        _mm512_storeu_ps(soft + j, s);
        _mm512_storeu_ps(ce + j, plain_float_label_loss(x, yv, s));
    }
    label_bits = vm::max_lane(max_y);
    return vm::max_lane(max_abs);
}

// A plain_table_loop (or plain_table_loop_u8) tile with some |x| at or beyond the table's end
// (31.5) and none beyond the normal exp's range (87.33): the vectors of 16 with such a lane take
// plain_exp_loop's values, exp_neg_abs_band for those lanes and the table's softplus for the
// others (in `soft` for float labels, formed again for uint8 ones), and the loss by the table
// loop's operations, so the bits of plain_exp_loop, which computes the same lanes the same way;
// the other vectors keep the table loop's losses. Before, such a tile took plain_exp_loop
// throughout after the table loop: float32 |x| ~ U(5, 20) with 5% of the logits at
// |x| ~ U(30, 40) ran 2.5x the time of U(5, 20) alone (one thread, v4). Returns false, having
// written nothing, where an |x| is beyond the normal exp's range (or NaN); else `none_within`
// says whether every |x| was beyond the table (plain_exp_loop's).
template <class Label>
inline bool plain_beyond_vectors(const Label* __restrict y, const float* __restrict pred, [[maybe_unused]] float* __restrict soft,
                                 float* __restrict ce, int64_t len, bool& none_within) {
    constexpr bool U8 = std::is_same_v<Label, uint8_t>;
    static_assert(U8 || std::is_same_v<Label, float>);
    const __m512i table_end = _mm512_set1_epi32(int(std::bit_cast<uint32_t>(vm::softplus_table_max)));
    // (the vectors to form again listed first, without a branch per vector: one taken at random
    // left each vector's chain of dependent operations alone in the core)
    int64_t listed[kTile / 16];
    int64_t n = 0, lanes = 0;
    __m512i max_abs = _mm512_setzero_si512();
    for (int64_t j = 0; j < len; j += 16) {
        const __m512i a_bits = vm::abs_bits_of(_mm512_loadu_ps(pred + j));
        max_abs = vm::max_u32(max_abs, a_bits);
        const __mmask16 m = _mm512_cmp_epu32_mask(a_bits, table_end, _MM_CMPINT_NLT);
        listed[n] = j;
        n += m != 0;
        lanes += std::popcount(unsigned(m));
    }
    if (vm::max_lane(max_abs) > std::bit_cast<uint32_t>(vm::normal_exp_max<float>)) return false;
    [[maybe_unused]] const vm::TablePolys softplus(vm::detail::kSoftplusTable6);
    for (int64_t i = 0; i < n; ++i) {
        const int64_t j = listed[i];
        const __m512 x = _mm512_loadu_ps(pred + j);
        const __m512i a_bits = vm::abs_bits_of(x);
        const __mmask16 beyond = _mm512_cmp_epu32_mask(a_bits, table_end, _MM_CMPINT_NLT);
        if constexpr (U8) {
            const __m512 s = _mm512_mask_mov_ps(vm::softplus_neg_abs(softplus, a_bits), beyond, vm::exp_neg_abs_band(a_bits));
            const __m128i labels = _mm_loadu_si128(reinterpret_cast<const __m128i*>(y + j));
            _mm512_storeu_ps(ce + j, _mm512_add_ps(s, u8_label_term(x, _mm_test_epi8_mask(labels, labels))));
        } else {
            const __m512 yv = _mm512_loadu_ps(y + j);
            const __m512 s = _mm512_mask_mov_ps(_mm512_loadu_ps(soft + j), beyond, vm::exp_neg_abs_band(a_bits));
            _mm512_storeu_ps(soft + j, s);
            _mm512_storeu_ps(ce + j, plain_float_label_loss(x, yv, s));
        }
    }
    none_within = lanes == len;
    return true;
}

// The plain and weighted losses' exp(-|x|) for |x| in [softplus_table_max, normal_exp_max] (31.5 to
// 87.33) is exp_neg_abs_band, in every path of such a call (an element's loss does not depend on
// its tile): plain_exp_loop and plain_beyond_vectors (plain calls), and in loss_tile the two
// below: exp_band_loop for a tile that starts with the exp, exp_band_lanes after the table's
// pass, and after the general exp of a tile with an |x| beyond that range (which takes it for
// those lanes).
// exp_band_lanes: the lanes in the range get exp_neg_abs_band in `soft`, the others keep theirs;
// returns the smallest |x| bits, at most table_max's (the caller's `none_within`). len a multiple
// of 16.
inline uint32_t exp_band_lanes(const float* __restrict pred, float* __restrict soft, int64_t len) {
    const uint32_t from = std::bit_cast<uint32_t>(vm::softplus_table_max);
    const __m512i start = _mm512_set1_epi32(int(from));
    const __m512i span = _mm512_set1_epi32(int(std::bit_cast<uint32_t>(vm::normal_exp_max<float>) - from));
    __m512i min_abs = start;
    for (int64_t j = 0; j < len; j += 16) {
        const __m512i a_bits = vm::abs_bits_of(_mm512_loadu_ps(pred + j));
        min_abs = _mm512_mask_min_epu32(min_abs, __mmask16(0xffff), min_abs, a_bits);
        const __mmask16 band = _mm512_cmp_epu32_mask(_mm512_sub_epi32(a_bits, start), span, _MM_CMPINT_LE);
        if (band != 0) _mm512_mask_storeu_ps(soft + j, band, vm::exp_neg_abs_band(a_bits));
    }
    return vm::min_lane(min_abs);
}

// exp_band_loop: exp_neg_abs_band of every lane into `soft` (lanes outside the range get a value
// for the caller to replace: the table's below it, the general exp's beyond), and the largest and
// smallest |x| bits (the caller's range checks). len a multiple of 16.
inline void exp_band_loop(const float* __restrict pred, float* __restrict soft, int64_t len, uint32_t& max_bits,
                          uint32_t& min_bits) {
    __m512i max_abs = _mm512_setzero_si512(), min_abs = _mm512_set1_epi32(-1);
    for (int64_t j = 0; j < len; j += 16) {
        const __m512i a_bits = vm::abs_bits_of(_mm512_loadu_ps(pred + j));
        max_abs = vm::max_u32(max_abs, a_bits);
        min_abs = _mm512_mask_min_epu32(min_abs, __mmask16(0xffff), min_abs, a_bits);
        _mm512_storeu_ps(soft + j, vm::exp_neg_abs_band(a_bits));
    }
    max_bits = vm::max_lane(max_abs);
    min_bits = vm::min_lane(min_abs);
}

// plain_table_loop for uint8 labels as they are (process_block: no pass converting them to float,
// 64 a vector): with a label of 0 or 1 the loss is softplus(-|x|) + |x| where the label is on the
// other side of x from its logit (y = 1, x <= 0 or y = 0, x > 0), softplus(-|x|) elsewhere: the
// value, and the one rounding, of loss_loop's (x > 0 ? 1 - y : -y) x + softplus, whose factor is
// then +-1 or +-0, so the same bits in every rounding mode. |x| there is x with its sign flipped
// where y = 1 (u8_label_term), and that is <= 0 on the other lanes: max(that, 0) added. One thread,
// L2, N(0, 4^2): 6% less time than the conversion pass, the table's pass and loss_loop
// (time_kernel, medians of alternated runs; 8% with in_register). The loop is bound by its vector
// operations (ports 0 and 5 with 512-bit vectors; with the float64 sum about 26 per 16 elements, 24
// since the degree-6 table), so it saves one of them: the range check ORs the intervals k (0-31
// exactly where |x| < 31.5; 32 and more beyond, 2^31 for NaN, inf and |x| >= 2^31), two vectors in
// one vpternlogd, instead of a maximum of |x| per vector. (The table's argument max(|x|, 2^-30)
// from one vrangeps, vm::table_arg_of, saved another, but on AMD's Zen 4 it turns a NaN into
// 2^-30, whose k passes the check: a NaN logit's loss came out as ln 2.) L2, one thread,
// N(0, 4^2), three alternated runs: 0.291 -> 0.280-0.284 ns per element with both savings
// (tools/time_kernel.cpp); at 1e8, two threads, within the noise. Returns whether every |x| is
// below softplus_table_max (only then does ce hold the losses) and, in `max_label`, the largest
// label (only 0 and 1 give these losses). Ahead: prefetches the next tile (vm::prefetch_ahead).
template <bool Ahead = false>
inline bool plain_table_loop_u8(const uint8_t* __restrict y, const float* __restrict pred, float* __restrict ce,
                                int64_t len, uint32_t& max_label) {
    static_assert(kPad % 64 == 0);
    const vm::TablePolys softplus(vm::detail::kSoftplusTable6);
    constexpr int any_of_three = 0xfe;  // vpternlogd: A | B | C
    __m512i k_or = _mm512_setzero_si512(), max_y = _mm512_setzero_si512();
    for (int64_t j = 0; j < len; j += 64) {
        if constexpr (Ahead) {
            vm::prefetch_ahead(y + j + vm::kAhead);
            for (int q = 0; q < 4; ++q) vm::prefetch_ahead(pred + j + vm::kAhead + 16 * q);
        }
        const __m512i labels = _mm512_loadu_si512(y + j);
        max_y = _mm512_mask_max_epu8(max_y, ~__mmask64(0), max_y, labels);  // (masked: see max_u32)
        const __mmask64 ones = _mm512_test_epi8_mask(labels, labels);
        __m512i k_even = _mm512_setzero_si512();
        for (int q = 0; q < 4; ++q) {
            __m512 x = _mm512_loadu_ps(pred + j + 16 * q);
            in_register(x);
            __m512i k;
            __m512 h;
            vm::table_interval(vm::table_arg(vm::abs_bits_of(x)), k, h);  // (NaN's bits: k 2^31)
            if (q % 2 == 0) k_even = k;
            else k_or = _mm512_ternarylogic_epi32(k_or, k_even, k, any_of_three);
            const __m512 s = softplus(k, h);
            _mm512_storeu_ps(ce + j + 16 * q, _mm512_add_ps(s, u8_label_term(x, __mmask16(ones >> (16 * q)))));
        }
    }
    alignas(64) uint8_t bytes[64];
    _mm512_store_si512(bytes, max_y);
    max_label = 0;
    for (uint8_t b : bytes) max_label = b > max_label ? b : max_label;
    return _mm512_test_epi32_mask(k_or, _mm512_set1_epi32(~31)) == 0;
}

// plain_table_loop's sibling for tiles of large logits: where |x| is at or beyond the table's
// end (31.5) and within the normal exp's range (87.33), softplus(-|x|) = log1p(exp(-|x|))
// rounds to exp(-|x|) in float, and this loop takes exp_neg_abs_band (the plain loss's exp
// there) and the loss of plain_table_loop in one pass; a vector with an |x| within the table
// takes the table there (rare where this loop runs). The values and bits of loss_tile's exp and
// loss_loop for such |x|, which took a pass each: float32 logits at |x| = 36-87 ran 1.34x the
// time of |x| = 2 (v4, one thread). A loop of its own, so that plain_table_loop keeps its
// registers for the table. `ce` holds the losses only if the returned largest |x| bits are at
// most normal_exp_max's; `none_within`: no |x| was within the table (told by the branch that
// takes the table, where a minimum of |x| per vector cost one operation more);
// `label_bits` as plain_table_loop.
// Label uint8_t: the labels as they are, 16 bytes a vector, and the loss of plain_table_loop_u8
// (process_block; `label_bits` is then the largest label): uint8 labels at |x| = 36-87 took the
// conversion pass and this loop on floats, 1.1x the time of float32 labels.
template <class Label>
inline uint32_t plain_exp_loop(const Label* __restrict y, const float* __restrict pred, [[maybe_unused]] float* __restrict soft,
                               float* __restrict ce, int64_t len, uint32_t& label_bits, bool& none_within) {
    constexpr bool U8 = std::is_same_v<Label, uint8_t>;
    static_assert(U8 || std::is_same_v<Label, float>);
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
    const __m512i table_end = _mm512_set1_epi32(int(std::bit_cast<uint32_t>(vm::softplus_table_max)));
    __m512i max_abs = _mm512_setzero_si512();
    bool any_within = false;
    [[maybe_unused]] __m512i max_y = _mm512_setzero_si512();
    [[maybe_unused]] __m128i max_u8 = _mm_setzero_si128();
    for (int64_t j = 0; j < len; j += 16) {
        __m512 x = _mm512_loadu_ps(pred + j);
        [[maybe_unused]] __m512 yv;
        [[maybe_unused]] __m128i labels;
        if constexpr (U8) {
            labels = _mm_loadu_si128(reinterpret_cast<const __m128i*>(y + j));
            max_u8 = _mm_max_epu8(max_u8, labels);
            in_register(x);
        } else {
            yv = _mm512_loadu_ps(y + j);
            in_register(x), in_register(yv);
            max_y = vm::max_u32(max_y, _mm512_castps_si512(yv));
        }
        const __m512i a_bits = _mm512_and_si512(_mm512_castps_si512(x), abs_mask);
        max_abs = vm::max_u32(max_abs, a_bits);
        __m512 s = vm::exp_neg_abs_band(a_bits);
        const __mmask16 within = _mm512_cmplt_epu32_mask(a_bits, table_end);
        if (within != 0) [[unlikely]] {
            any_within = true;
            const vm::TablePolys softplus(vm::detail::kSoftplusTable6);
            s = _mm512_mask_mov_ps(s, within, vm::softplus_neg_abs(softplus, a_bits));
        }
        if constexpr (U8) {
            _mm512_storeu_ps(ce + j, _mm512_add_ps(s, u8_label_term(x, _mm_test_epi8_mask(labels, labels))));
        } else {
            _mm512_storeu_ps(soft + j, s);
            _mm512_storeu_ps(ce + j, plain_float_label_loss(x, yv, s));
        }
    }
    if constexpr (U8) {
        alignas(16) uint8_t bytes[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(bytes), max_u8);
        label_bits = 0;
        for (uint8_t b : bytes) label_bits = b > label_bits ? b : label_bits;
    } else {
        label_bits = vm::max_lane(max_y);
    }
    none_within = !any_within;
    return vm::max_lane(max_abs);
}
#endif

}  // namespace FASTBCE_TIER
}  // namespace fastbce
