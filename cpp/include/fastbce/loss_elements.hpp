// The loss's parameters and elementwise building blocks (LossParams, balance, focal powers,
// 1 - p_t) that the loss loops of kernel.hpp are built from.
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

#include "fastbce/sigmoid_table.hpp"
#include "fastbce/softplus_table.hpp"
#include "fastbce/tile_inputs.hpp"
#include "fastbce/types.hpp"
#include "fastbce/vecmath.hpp"

namespace fastbce {
namespace FASTBCE_TIER {

// ---------------------------------------------------------------- the loss

// The focal band of float logits: |x| > focal_band and exp(-|x|) > 0, where a correct
// prediction's loss, about b exp(-(1 + gamma)|x|) with b its class balance (alpha or 1 - alpha),
// may be below 2^-126: its float factor (1 - p_t)^gamma or the loss times it can then be subnormal
// (an operand or result of a multiply, each a microcode assist on Intel cores). The bound is
// where that loss, with the smaller balance, reaches 2^-126 e^0.05 (the margin covers every
// rounding): below it, with labels in [0, 1] (balance and cross-entropy at most 1), every
// intermediate of the float formulas is at least the loss, so normal, and an element whose
// loss is normal takes them (the bound was 84 / (1 + gamma) before: normal losses in between,
// e.g. |x| in (28, 28.6) for gamma 2 and alpha 1/4, took the mixed loop at twice the time).
// A zero balance (alpha 0 or 1) keeps that older bound. Beyond 104, exp(-|x|) is 0 and nothing
// is tiny.
struct FocalBand {
    static double bound(double gamma, bool has_alpha, double alpha) {
        const double b = has_alpha ? std::min(alpha, 1.0 - alpha) : 1.0;
        if (!(b > 0.0)) return 84.0 / (1.0 + gamma);
        return std::max(0.0, (126.0 * 0.6931471805599453 - 0.05 + std::log(std::min(b, 1.0))) / (1.0 + gamma));
    }
    static bool wide(float x, float z, float band) { return (std::abs(x) > band) & (z > 0.0f); }

    // The float64 counterpart (LossParams::scaled_band, focal_element's Scaled): where a correct
    // prediction's focal loss, b exp(-(1 + gamma)|x|), reaches 2^-1022 e^0.05; below it every
    // intermediate of the double formulas is at least that loss, so normal. A zero balance keeps
    // the older bound, 660 / (1 + gamma). (That bound, for every alpha above e^-48, sent normal
    // losses to the scaled loop: gamma 2, alpha 1/4 at |x| = 230 ran 1.25x (v4) to 2x (baseline)
    // the time of |x| = 200.)
    static double scaled(double gamma, bool has_alpha, double alpha) {
        const double b = has_alpha ? std::min(alpha, 1.0 - alpha) : 1.0;
        if (!(b > 0.0)) return 660.0 / (1.0 + gamma);
        return std::max(0.0, (1022.0 * 0.6931471805599453 - 0.05 + std::log(std::min(b, 1.0))) / (1.0 + gamma));
    }
};

// Per-call constants in the working type.
template <class T>
struct LossParams {
    T keep;         // 1 - s        (label smoothing: y' = y * keep + shift)
    T shift;        // s / 2
    T clip_lo;      // epsilon
    T clip_hi;      // 1 - epsilon, rounded in the working type as Keras does
    T gamma;        // focal exponent, at most T's largest finite value (see below)
    int half_gamma;  // 2 gamma when that is a whole number in [1, 8] (gamma = 1/2, 1, ..., 4), else 0
    // class balancing alpha*y' + (1-alpha)*(1-y'), only when alpha is given: the factor is
    // on * (that) + off, with (on, off) = (1, 0) or (0, 1), exactly the term or exactly 1. (A
    // select on a loop-invariant bool here stops GCC 12 from vectorising the loop.)
    T balance_on;
    T balance_off;
    T alpha;
    T one_minus_alpha;
    T balance_alpha;        // alpha with alpha given, else 0 (balance_factor's two-FMA forms)
    T balance_alpha_c;      // 1 - alpha with alpha given, else 0
    T balance_neg_alpha_c;  // -(1 - alpha) with alpha given, else -0
    T balance_base;         // 1 - alpha with alpha given, else 1 (exactly (1 - alpha) + off)
    T focal_band;  // (float logits) |x| beyond it: the focal factor is formed in double (FocalBand)
    T scaled_band;  // (double logits) |x| beyond it: the focal loss may be scaled (focal_element)
    T t_min;        // (double logits) 2^(-1088 / (1 + gamma)), the same's floor for 1 - p_t
    // Tiny smoothing: 0 < s/2 below T's normal range (s < 2^-125 in float, 2^-1021 in double).
    // s/2 would round to 0 (or a subnormal) although x s/2 can be normal, so such a call takes
    // shift = 0 (keep is exactly 1) and adds the d = s/2 terms on D = d 2^600, a normal double
    // (loss_loop's TinyS); half_s_up is D then, else 0. Decided per call, never per element.
    double half_s_up;

    static bool tiny_smoothing(const Call& c) {
        const double s = double(T(c.label_smoothing));
        return s > 0.0 && s / 2.0 < double(std::numeric_limits<T>::min());
    }

    explicit LossParams(const Call& c)
        : keep(T(1) - T(c.label_smoothing)),
          shift(tiny_smoothing(c) ? T(0) : T(c.label_smoothing) / T(2)),
          clip_lo(T(c.epsilon)),
          clip_hi(T(1) - T(c.epsilon)),
          // a gamma beyond float32's range would be inf: inf * log(1 - p_t) = inf * 0 = NaN where
          // p_t = 0; the largest float gives the factor 1 there, and elsewhere the same 0
          gamma(T(std::min(c.gamma, double(std::numeric_limits<T>::max())))),
          half_gamma(gamma >= T(0.5) && gamma <= T(4) && 2 * gamma == T(int(2 * gamma)) ? int(2 * gamma) : 0),
          balance_on(c.has_alpha ? T(1) : T(0)),
          balance_off(c.has_alpha ? T(0) : T(1)),
          alpha(T(c.alpha)),
          one_minus_alpha(T(1) - T(c.alpha)),
          balance_alpha(c.has_alpha ? alpha : T(0)),
          balance_alpha_c(c.has_alpha ? one_minus_alpha : T(0)),
          balance_neg_alpha_c(c.has_alpha ? -one_minus_alpha : -T(0)),
          balance_base(c.has_alpha ? one_minus_alpha : T(1)),
          focal_band(T(FocalBand::bound(double(gamma), c.has_alpha, c.alpha))),
          scaled_band(T(FocalBand::scaled(double(gamma), c.has_alpha, c.alpha))),
          // (0, no floor, where that power of 2 is not normal: gamma < 0.065, or float)
          t_min(std::is_same_v<T, double> && 1088.0 / (1.0 + double(gamma)) <= 1022.0
                    ? T(std::exp2(-1088.0 / (1.0 + double(gamma))))
                    : T(0)),
          half_s_up(tiny_smoothing(c) ? double(T(c.label_smoothing)) * 0x1p599 : 0.0) {}
};

template <class T>
constexpr T inf = std::numeric_limits<T>::infinity();

// The type float products are formed in where a float intermediate could be subnormal: double,
// where a product of float-range values is always normal (and a product of two floats exact).
// On Intel cores a float multiply with a subnormal operand or result takes a microcode assist
// (~100 cycles); the conversions to and from double do not (measured on every tier), so
// T(double(a) * double(b)) is the same bits as a * b without the assist.
template <class T>
using Wide = std::conditional_t<std::is_same_v<T, float>, double, T>;

// a * b where a zero weight wins over an infinite loss (0 * inf = 0, not NaN): a label, class or
// sample weight of zero means the term does not count. A NaN b (NaN input) stays NaN: "NaN in,
// NaN out" holds whatever the weight (before, 0 * NaN gave 0 and hid the NaN from the sums).
template <class T>
FASTBCE_VM_INLINE T times_weight(T a, T b) {
    return vm::detail::select((a == T(0)) & (b == b), T(0), a * b);  // (a mask: the loops vectorise)
}

// times_weight for a factor fixed by the call's options (label smoothing's d terms): 0 wins over
// a NaN too, as the element's other terms carry it; a test of the loop-invariant factor alone
// lets GCC hoist it (with b == b in the test, the general loops did not vectorise)
template <class T>
FASTBCE_VM_INLINE T times_option(T a, T b) {
    return a == T(0) ? T(0) : a * b;
}

// Step 5's factor: alpha y' + (1 - alpha)(1 - y') as two non-negative terms (no cancellation for
// a small alpha), or exactly 1 without alpha, in two FMAs. Calls with label smoothing (general)
// take alpha y' + ((1 - alpha)(1 - y') + off) with 1 - y' given (balance_factor: formed as
// (1 - y)(1 - s) + s/2, where 1 - y' itself would cancel y''s rounding error for y near 1), with
// (alpha, 1 - alpha, off) = (0, 0, 1) without alpha. The others, where 1 - y' is 1 - y rounded,
// take alpha y' + ((1 - alpha) - (1 - alpha) y') (balance_factor_plain, base 1 without alpha):
// the inner FMA rounds (1 - alpha)(1 - y') once, and 1 - y' is not needed, so that
// focal_fused_loop forms its label weight by one masked subtract (until 2026-12-02 these took the
// general form: soft labels may differ by an ulp; hard labels give alpha and 1 - alpha exactly).
// Finite: y' is finite (labels in [0, 1], the focal loops' clean tiles), where a zero factor
// needs no test (times_weight) to give the same bits.
template <class T>
FASTBCE_VM_INLINE T balance_factor(const LossParams<T>& k, T ys, T ys_c) {
    using vm::detail::mul_add;
    using vm::detail::select;
    const T rest = select(k.balance_alpha_c == T(0), k.balance_off, mul_add(k.balance_alpha_c, ys_c, k.balance_off));
    return select(k.balance_alpha == T(0), rest, mul_add(k.balance_alpha, ys, rest));
}

// Without FMA (x86-64-v2, baseline) (1 - alpha) - (1 - alpha) y' would round the product first
// and cancel for y' near 1 (2,900 ulp in float64 at y' = 0.99999, alpha = 1e-5): those tiers take
// (1 - alpha)(1 - y') as a product, 1 - y' exact for y' >= 1/2 (Sterbenz) and rounded once below.
template <bool Finite = false, class T>
FASTBCE_VM_INLINE T balance_factor_plain(const LossParams<T>& k, T ys) {
    using vm::detail::mul_add;
    using vm::detail::select;
#if defined(__FMA__)
    if constexpr (Finite) return mul_add(k.balance_alpha, ys, mul_add(k.balance_neg_alpha_c, ys, k.balance_base));
    const T rest = select(k.balance_neg_alpha_c == T(0), k.balance_base, mul_add(k.balance_neg_alpha_c, ys, k.balance_base));
#else
    if constexpr (Finite) return k.balance_alpha * ys + (k.balance_alpha_c * (T(1) - ys) + k.balance_off);
    const T rest = select(k.balance_alpha_c == T(0), k.balance_base, k.balance_alpha_c * (T(1) - ys));
#endif
    return select(k.balance_alpha == T(0), rest, mul_add(k.balance_alpha, ys, rest));
}

// t^(H/2), the focal factor (1 - p_t)^gamma for gamma = H/2 in {1/2, 1, ..., 4}: products and
// a correctly rounded sqrt, as accurate as the inputs allow and equal to what pow() gives (NaN for
// a negative base and a half-odd gamma; a negative base comes only from unvalidated probabilities
// outside [0, 1]).
// T: float, double, or (AVX-512) 16 floats, for focal_fused_loop.
template <int H, class T>
FASTBCE_VM_INLINE T half_power(T t) {
    static_assert(H >= 1 && H <= 8);
    auto root = [](T v) {
        if constexpr (std::is_floating_point_v<T>) return std::sqrt(v);
#if defined(__AVX512F__)
        else return _mm512_maskz_sqrt_ps(__mmask16(0xffff), v);  // (masked: see vm::max_u32)
#endif
    };
    if constexpr (H == 1) {
        return root(t);  // (1 * sqrt(t): the same bits)
    } else {
        [[maybe_unused]] const T t2 = t * t;
        T whole;
        if constexpr (H / 2 == 1) whole = t;
        else if constexpr (H / 2 == 2) whole = t2;
        else if constexpr (H / 2 == 3) whole = t2 * t;
        else whole = t2 * t2;
        if constexpr (H % 2 == 1) return whole * root(t);
        else return whole;
    }
}

// Calls by_products(std::integral_constant<int, H>{}) for half_gamma = H in 1..8 (gamma = H/2 in
// {1/2, 1, ..., 4}, where half_power applies) and returns true; false for any other gamma, which
// the caller raises to its power otherwise. One compile-time instance per H.
template <class F>
FASTBCE_VM_INLINE bool with_half_gamma(int half_gamma, F&& by_products) {
    switch (half_gamma) {
        case 1: by_products(std::integral_constant<int, 1>{}); return true;
        case 2: by_products(std::integral_constant<int, 2>{}); return true;
        case 3: by_products(std::integral_constant<int, 3>{}); return true;
        case 4: by_products(std::integral_constant<int, 4>{}); return true;
        case 5: by_products(std::integral_constant<int, 5>{}); return true;
        case 6: by_products(std::integral_constant<int, 6>{}); return true;
        case 7: by_products(std::integral_constant<int, 7>{}); return true;
        case 8: by_products(std::integral_constant<int, 8>{}); return true;
        default: return false;
    }
}

// 1 - p_t = y'(1 - p) + (1 - y')p (step 4), a sum of non-negative terms: from the logit x with
// z = exp(-|x|) (x >= 0: p = 1/(1+z), 1-p = z/(1+z); x < 0: p = z/(1+z), 1-p = 1/(1+z)), or from
// the unclipped probability x (as Keras 3).
// The small term (label weight times z, or times a tiny probability) is left out where it is
// below half an ulp of the other one: a product with a tiny z would underflow there (a microcode
// assist on Intel, and the underflow flag), for the same bits. Where the other term is 0 (hard
// labels) it is kept: it is then the result.
template <class T>
struct TinyTerm {
    static constexpr T z_max = std::is_same_v<T, float> ? T(0x1p-86) : T(0x1p-455);
    static constexpr T other_min = std::is_same_v<T, float> ? T(0x1p-60) : T(0x1p-400);
    static FASTBCE_VM_INLINE T keep(T z, T other) { return vm::detail::select((z < z_max) & (other >= other_min), T(0), z); }
};

// The deep band of float64 logits: 0 < z = exp(-|x|) < 2^-1020, |x| in about (707, 745.2), only
// in tiles beyond the fast exp's range. There a correct hard prediction's loss is z times normal
// factors (times z^gamma for focal calls): an operation on z, or one producing a subnormal, takes a
// microcode assist on Intel cores (~100+ cycles; the band ran 12x slower). Such a loss is computed
// on Z = z 2^1074 (exact, normal) and rounded once to the subnormal grid with integer operations
// (down); which formula an element takes depends on it alone, never on its tile.
struct Deep {
    using U = uint64_t;
    static constexpr U limit = std::bit_cast<U>(0x1p-1020) - 1u;
    // 0 < v < 2^-1020, as an integer compare (no FP operation on a subnormal v)
    static FASTBCE_VM_INLINE bool in(double v) { return std::bit_cast<U>(v) - 1u < limit; }
    // v 2^1074 for v in [0, 2^-1020): exact and normal (the subnormal's bit pattern as an integer,
    // or two scalings by 2^537)
    static FASTBCE_VM_INLINE double up(double v) {
        const double big = vm::detail::max_by_bits(v, 0x1p-1022) * 0x1p537 * 0x1p537;
        return vm::detail::select(v < 0x1p-1022, vm::detail::small_uint_to_fp<double>(std::bit_cast<U>(v)), big);
    }
    // m 2^-1074 for a finite m >= 0, rounded once: to the subnormal grid as an integer (the bits
    // of m + 2^52, as exp builds its subnormal results), or scaled back where it is normal
    static FASTBCE_VM_INLINE double down(double m) {
        const double sub = std::bit_cast<double>(std::bit_cast<U>(m + 0x1p52) - std::bit_cast<U>(0x1p52));
        const double normal = vm::detail::max_by_bits(m, 0x1p52) * 0x1p-537 * 0x1p-537;
        return vm::detail::select(m < 0x1p52, sub, normal);
    }
    // balance z^(1 + g) for z in the band (a focal loss with gamma g outside {1/2, ..., 4}, whose
    // ce is z and 1 - p_t is z): log z from log Z, and 0 where z^g < e^-40 (the product, below
    // 2^54 2^-57.7 times balance <= 1, rounds to 0 there), so that every value stays normal. For
    // gamma in {1/2, ..., 4} the loss is below z^1.5 < 2^-1530: 0.
    static FASTBCE_VM_INLINE double pow_loss(double z, double balance, double g) {
        using Tr = vm::detail::traits<double>;
        const double big_z = up(z);
        const double log_z = (vm::log(big_z) - 1074.0 * Tr::ln2_hi) - 1074.0 * Tr::ln2_lo;
        const double a = g * log_z;
        const bool zero = a < -40.0;
        const double f = vm::exp_nonpositive_normal(vm::detail::select(zero, -40.0, a));
        return vm::detail::select(zero, 0.0, down((balance * big_z) * f));
    }
};

// SigmoidZ (kSigmoidZ): z is sigmoid(-|x|) instead, the smaller of p and 1 - p (at most 1/2), and
// 1 - p_t = z + v (1 - 2z) with v the label weight of the unlikely side (1 - y' for x > 0, else
// y'): two non-negative terms, two FMAs, no division. 1 - 2z is exact for z >= 1/4 and within
// half an ulp of [1/2, 1] below; no product has two small factors, so nothing underflows where
// the result is normal (no TinyTerm guard). The y' z + (1 - y')(1 - z) it replaces took five
// operations. The side is x > 0, as the cross-entropy's (at x = 0, z = 1/2 and both sides give
// 1/2).
// NoTiny: the caller knows z >= TinyTerm's z_max (|x| < 59): no guard either way (kept for the
// callers' sake).
template <bool FromLogits, bool SigmoidZ = false, bool NoTiny = false, class T>
FASTBCE_VM_INLINE T one_minus_pt(T ys, T ys_c, T x, [[maybe_unused]] T z) {
    if constexpr (FromLogits && SigmoidZ) {
        const T v = x > T(0) ? ys_c : ys;
        return vm::detail::mul_add(v, vm::detail::mul_add(T(-2), z, T(1)), z);
    } else if constexpr (FromLogits) {
        // (this arrangement, as before the guard: with the two terms reordered by side, the
        // double gamma = 2.7 focal loop ran 60% slower on v4)
        const bool pos = x >= T(0);
        const T zk = TinyTerm<T>::keep(z, pos ? ys_c : ys);
        return vm::detail::mul_add(ys, pos ? zk : T(1), ys_c * (pos ? T(1) : zk)) / (T(1) + zk);
    } else {
        const T xk = TinyTerm<T>::keep(x, ys);
        return vm::detail::mul_add(ys, T(1) - xk, ys_c * xk);
    }
}

// Float focal losses of logits on AVX-512 (plain and weighted levels): softplus(-|x|) and
// sigmoid(-|x|) from tables (softplus_table.hpp, sigmoid_table.hpp), and the focal loops' z is
// sigmoid(-|x|) rather than exp(-|x|) (one_minus_pt's SigmoidZ), in every tile of such a call.
template <class T, bool FromLogits, Options O>
#if defined(FASTBCE_SOFTPLUS_TABLE)
constexpr bool kSigmoidZ = FromLogits && O != Options::general && std::is_same_v<T, float>;
#else
constexpr bool kSigmoidZ = false;
#endif

// (1 - p_t)^gamma as exp(gamma log t), in double also for float (see loss_tile)
struct PowFactor {
    double g;
    template <class U>
    FASTBCE_VM_INLINE U operator()(U t) const { return U(vm::exp(g * vm::log(double(t)))); }
};

// |x| in (band, 746) (beyond it exp(-|x|) = 0), the float64 band where focal_element may scale:
// one unsigned compare of bit patterns (NaN is outside).
template <class T>
FASTBCE_VM_INLINE bool in_scaled_band(T x, T band) {
    using Bits = typename vm::detail::traits<T>::uint;
    const Bits lo = std::bit_cast<Bits>(band);
    return std::bit_cast<Bits>(std::abs(x)) - lo - 1u < std::bit_cast<Bits>(T(746)) - lo - 1u;
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
