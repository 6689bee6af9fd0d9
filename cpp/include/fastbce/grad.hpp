// First and second derivatives, with respect to the logit x, of the elementwise loss of
// docs/reference.md section 1 (from logits, every option): ONE fused loop per tile computes the
// gradient and the Hessian together. Compiled once per SIMD tier with the loss kernel
// (cpp/src/kernel_tier.cpp); the loaders and checks are the loss kernel's (kernel.hpp), the
// formulas and their derivation are in docs/gradients.md.
//
// Precision: exp(-|x|) is taken in the working type T (float for 16/32-bit input). Plain and
// weighted float calls stay in float (the speed-critical case, within 4 ulp: plain_float_loop,
// one loop from the logits to the caller's arrays); so do float focal calls with gamma in
// {1/2, ..., 4}, with an error bound per element (focal_float_loop); every other call
// continues in double and rounds once to T, so for float input exp's rounding is the only
// float-sized error (float focal calls also take log1p(z) in float, an error below z's), and
// for double input correction terms keep the plain derivatives within a few ulp and the focal
// ones are formed in double-double where they cancel (focal_parts). Where a value cancels (a
// zero of the gradient or Hessian) that rounding of exp, the same as moving x by an ulp of 1,
// is then the error left, in any implementation.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>

#include "fastbce/kernel.hpp"
#include "fastbce/twofold.hpp"
#include "fastbce/types.hpp"
#include "fastbce/vecmath.hpp"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace fastbce {
namespace FASTBCE_TIER {

// Per-call constants. The options are rounded to T first, as the loss kernel takes them, so
// these are the derivatives of the loss that fastbce computes for the same call.
struct GradParams {
    double keep, shift;           // label smoothing: y' = y keep + shift
    double gamma;                 // focal exponent (0: none)
    double balance_on, balance_off, alpha, one_minus_alpha;  // as LossParams (kernel.hpp)
    int half_gamma;  // 2 gamma for gamma in {1/2, 1, ..., 4} (the focal factor by products), else 0
    // Tiny smoothing (LossParams::half_s_up): float input takes s/2 in double, where it is normal;
    // double input adds q d to q y' on half_s_up = d 2^600 (grad_loop's TinyS), else 0.
    double half_s_up;

    template <class T>
    static GradParams of(const Call& c) {
        const LossParams<T> k(c);
        const bool tiny = k.half_s_up != 0.0;
        const double shift = tiny && std::is_same_v<T, float> ? k.half_s_up * 0x1p-600 : double(k.shift);
        return {double(k.keep),        shift,          double(k.gamma),
                double(k.balance_on),  double(k.balance_off), double(k.alpha),
                double(k.one_minus_alpha), k.half_gamma, std::is_same_v<T, double> ? k.half_s_up : 0.0};
    }
};

// The float64 focal derivatives without the factor F (and W), in double-double where they
// cancel (docs/gradients.md, "Where the derivatives cancel"): with v = z/nu and c = 1 - 2y',
//   d FL'/F    = G = gamma c v ce + (1 - y') a - q y' b
//   d^2 FL''/F = v K,  K = gamma c ce ((gamma - 1) c v + b - a) + 2 gamma c (d ce') + (q y' + 1 - y') nu.
// Near a zero G or K is a difference of terms up to |x| times larger than its slope, so each
// input is formed with ~106 bits from the exact inputs (y, x, z, the options); z and log1p(z)
// are taken as exact (their rounding is that of moving x by an ulp of 1).
struct FocalParts {
    double grad, hess;  // G, v K
};

inline FocalParts focal_parts(double y, double x, double z, double q, const GradParams& k) {
    namespace tf = twofold;
    const bool pos = x >= 0.0;
    const double a = pos ? 1.0 : z, b = pos ? z : 1.0;
    const tf::DD ys = tf::add(tf::two_prod(y, k.keep), k.shift);
    const tf::DD ys_c = tf::add(tf::mul(tf::two_sum(1.0, -y), k.keep), k.shift);
    const tf::DD c = tf::mul(tf::two_sum(1.0, -2.0 * y), k.keep);  // y'c - y' without cancelling
    const tf::DD qys = tf::mul(ys, q);
    const tf::DD nu = tf::add(tf::mul(ys, b), tf::mul(ys_c, a));
    // v = z/nu to ~106 bits (one Newton correction of the quotient), its limit 1 where nu = 0
    const double nu_hi = vm::detail::select(nu.hi > 0.0, nu.hi, 1.0);
    const double v_hi = vm::detail::select(nu.hi > 0.0, z / nu_hi, 1.0);
    const tf::DD rem = tf::add(tf::neg(tf::mul(nu, v_hi)), z);  // z - v nu
    const tf::DD v = {v_hi, vm::detail::select(nu.hi > 0.0, rem.hi / nu_hi, 0.0)};
    // ce = q y' softplus(-x) + (1 - y') softplus(x); beyond 1024 z = 0 and the |x| terms are
    // either multiplied by v = 0 or by a zero label factor, so the clamp changes nothing
    const double soft = vm::log1p_small(z);
    const double big = 1024.0;
    const double xn = std::min(pos ? 0.0 : -x, big), xp = std::min(pos ? x : 0.0, big);
    const tf::DD ce = tf::add(tf::mul(qys, tf::two_sum(xn, soft)), tf::mul(ys_c, tf::two_sum(xp, soft)));
    const tf::DD g = tf::add(tf::mul(ys_c, a), tf::neg(tf::mul(qys, b)));  // d ce'
    const tf::DD one_minus_z = tf::two_sum(1.0, -z);
    const tf::DD b_minus_a = pos ? tf::neg(one_minus_z) : one_minus_z;
    const tf::DD inner = tf::add(b_minus_a, tf::mul(tf::mul(c, tf::two_sum(k.gamma, -1.0)), v));
    const tf::DD gc = tf::mul(c, k.gamma);
    const tf::DD grad = tf::add(tf::mul(tf::mul(gc, v), ce), g);
    const tf::DD sum = tf::add(tf::add(tf::mul(tf::mul(gc, ce), inner), tf::mul(tf::mul(gc, 2.0), g)),
                               tf::mul(tf::add(qys, ys_c), nu));
    return {grad.hi + grad.lo, v_hi * (sum.hi + sum.lo)};
}

// 1/d, d = 1 + z: for float input from a float division refined by one Newton step in double
// (relative error ~2^-46, far below float's ulp; a double division costs 4x as much); for double
// input the correctly rounded quotient
template <class T>
inline double inverse_of_d(double d) {
    if constexpr (std::is_same_v<T, float>) {
        const double r0 = double(1.0f / float(d));
        return r0 * (2.0 - d * r0);
    } else {
        return 1.0 / d;
    }
}

// The focal factor F = u^gamma of a tile, u = 1 - p_t = nu/d (docs/gradients.md), in float64:
// by products for gamma in {1/2, 1, ..., 4} (half_power, as the loss kernel), else as
// exp(gamma log u) (exp(-inf) = 0 where u = 0). A pass of its own, so that the long loop of
// grad_loop is compiled once for every gamma.
template <class T>
inline void focal_factor(const T* __restrict y, const T* __restrict x, const T* __restrict z, double* __restrict f,
                         int64_t len, const GradParams& k) {
    for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
        const double zj = double(z[j]);
        const bool pos = double(x[j]) >= 0.0;
        const double ys = double(y[j]) * k.keep + k.shift;
        const double ys_c = (1.0 - double(y[j])) * k.keep + k.shift;
        f[j] = (ys * (pos ? zj : 1.0) + ys_c * (pos ? 1.0 : zj)) * inverse_of_d<T>(1.0 + zj);
    }
    auto by_products = [&](auto h) {
        for (int64_t j = 0; j < len; ++j) f[j] = half_power<decltype(h)::value>(f[j]);  // FASTBCE_VEC_LOOP
    };
    if (!with_half_gamma(k.half_gamma, by_products))
        for (int64_t j = 0; j < len; ++j) f[j] = vm::exp(k.gamma * vm::log(f[j]));  // FASTBCE_VEC_LOOP
}

// What grad_loop leaves for focal_cancelling (float64 focal): per element, 1 where the terms
// cancel, the weight W and the clipped Hessian's floor.
struct FocalRedo {
    alignas(64) double cancels[kTile];
    alignas(64) double weight[kTile];
    alignas(64) double floor[kTile];
};

// The float64 focal derivatives of the elements grad_loop marked, from focal_parts (in
// double-double) with grad_loop's F, W, 1/d and floor: where the double-double terms overflow
// (a pos_weight near the largest double) grad_loop's double form stays.
template <class T, bool Clip>
inline void focal_cancelling(const T* y, const T* x, const T* z, const T* q, const double* focal_f, T* g, T* h,
                             int64_t len, const GradParams& k, const FocalRedo& redo) {
    constexpr double huge = std::numeric_limits<double>::max();
    for (int64_t j = 0; j < len; ++j) {
        if (redo.cancels[j] == 0.0) continue;
        const FocalParts parts = focal_parts(double(y[j]), double(x[j]), double(z[j]), double(q[j]), k);
        const double f = focal_f[j], inv_d = inverse_of_d<T>(1.0 + double(z[j]));
        if (std::abs(parts.grad) <= huge) g[j] = T(redo.weight[j] * (f * (parts.grad * inv_d)));
        if (std::abs(parts.hess) <= huge) {
            double hj = times_weight(f, parts.hess * inv_d * inv_d);
            if constexpr (Clip) hj = vm::detail::select(hj < redo.floor[j], redo.floor[j], hj);
            h[j] = T(redo.weight[j] * hj);
        }
    }
}

// The plain and weighted float derivatives of a tile, from the logits: exp(-|x|) in the same
// loop (these derivatives are a few operations an element, and a pass of z through a buffer
// of its own cost a load and a store each). NormalExp: vm::exp_nonpositive_normal, valid for
// |x| <= normal_exp_max; returns the largest |x| bits so that the caller redoes a tile with
// any |x| beyond (or NaN) with NormalExp false.
//
// With z = exp(-|x|) and r = 1/(1 + z): sigma(|x|) = r, sigma(-|x|) = s = z r,
// grad = (1 - y) sigma(x) - y sigma(-x), hess = s r. d = 1 + z is rounded, so r comes from
// 1/d by one Newton step against 1 + z itself: the residual 1 - (1 + z) r0 = (1 - r0) - z r0
// (1 - r0 exact: r0 in [1/2, 1]) in one multiply-add, r = r0 + r0 res, within about half an
// ulp of 1/(1 + z) (without it the Hessian, which has r twice, reached 3.5 ulp).
template <Options O, bool NormalExp>
inline std::pair<uint32_t, uint32_t> plain_float_loop(const float* __restrict y, const float* __restrict x,
                                                      const float* __restrict w, float* __restrict g,
                                                      float* __restrict h, int64_t len) {
    using vm::detail::mul_add;
    uint32_t max_abs_bits = 0, label_bits = 0;
    for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
        const float a = std::abs(x[j]);
        max_abs_bits = std::max(max_abs_bits, std::bit_cast<uint32_t>(a));
        label_bits = std::max(label_bits, std::bit_cast<uint32_t>(y[j]));
        const float z = NormalExp ? vm::exp_nonpositive_normal(-a) : vm::exp_nonpositive(-a);
        const float r0 = 1.0f / (1.0f + z);
        const float r = mul_add(r0, mul_add(-z, r0, 1.0f - r0), r0);
        const float s = z * r;
        const bool pos = x[j] >= 0.0f;
        const float p = pos ? r : s, q = pos ? s : r;  // sigma(x), sigma(-x)
        const float gj = mul_add(-y[j], q, (1.0f - y[j]) * p);
        const float hj = s * r;
        g[j] = O == Options::weighted ? w[j] * gj : gj;
        h[j] = O == Options::weighted ? w[j] * hj : hj;
    }
    return {max_abs_bits, label_bits};
}

// plain_float_loop for a tile, exp's general form again where needed; returns the labels' largest
// bits (for the range check).
template <Options O>
inline uint32_t plain_float(const float* y, const float* x, const float* w, float* g, float* h, int64_t len) {
    const auto [abs_bits, label_bits] = plain_float_loop<O, true>(y, x, w, g, h, len);
    if (abs_bits > std::bit_cast<uint32_t>(vm::normal_exp_max<float>))
        plain_float_loop<O, false>(y, x, w, g, h, len);
    return label_bits;
}

// The derivatives of one tile. In: y (labels), x (logits), z = exp(-|x|), w (sample weights),
// q (pos_weight per element). Out: g, h. Level: plain (q = 1, no smoothing, no alpha, no
// weights), weighted (w only), general (every option but focal), focal (every option, gamma > 0).
// Clip (focal only: the other Hessians are never negative) is hessian="clipped".
//
// With d = 1 + z and (a, b) = (1, z) for x >= 0, (z, 1) for x < 0: p = a/d, 1 - p = b/d,
// p(1 - p) = z/d^2.
template <class T, Options O, bool Focal, bool Clip, bool TinyS = false>
inline void grad_loop(const T* __restrict y, const T* __restrict x, const T* __restrict z,
                      const T* __restrict w, const T* __restrict q, const double* __restrict focal_f,
                      T* __restrict g, T* __restrict h, int64_t len, const GradParams k, FocalRedo* redo) {
    constexpr bool General = O == Options::general || Focal;
    constexpr bool IsFloat = std::is_same_v<T, float>;
    if constexpr (General && !TinyS) {
        if (k.half_s_up != 0.0) return grad_loop<T, O, Focal, Clip, true>(y, x, z, w, q, focal_f, g, h, len, k, redo);
    }
    for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
        const double zj = double(z[j]);
        const double xj = double(x[j]);
        const double d = 1.0 + zj;
        const double inv_d = inverse_of_d<T>(d);
        const bool pos = xj >= 0.0;
        const double a = pos ? 1.0 : zj;  // d p
        const double b = pos ? zj : 1.0;  // d (1 - p)
        // step 1: y' and 1 - y', each from y directly (neither cancels)
        double ys = double(y[j]), ys_c = 1.0 - double(y[j]);
        if constexpr (General) {
            ys = double(y[j]) * k.keep + k.shift;
            ys_c = (1.0 - double(y[j])) * k.keep + k.shift;
        }
        const double qj = General ? double(q[j]) : 1.0;
        double qys = qj * ys;
        if constexpr (TinyS) qys += (qj * k.half_s_up) * 0x1p-600;  // + q d (d alone is subnormal)
        // derivatives of ce = q y' softplus(-x) + (1 - y') softplus(x):
        //   ce' = (1 - y') p - q y' (1 - p),  ce'' = (q y' + 1 - y') p (1 - p)
        const double num = ys_c * a - qys * b;
        double g0, s2;
        if constexpr (IsFloat) {  // double products, rounded once to float at the end
            g0 = num * inv_d;
            s2 = zj * inv_d * inv_d;
        } else {
            // d = 1 + z is rounded: e = (1 - d) + z is its exact error (Fast2Sum, z <= 1), and
            // v/(d + e) = v/d - (v/d) e/d: two roundings each, within the 4 ulp budget
            // (left out for z < 2^-500, where it is below an ulp and its products subnormal)
            const double e_d = vm::detail::select(zj > 0x1p-500, ((1.0 - d) + zj) * inv_d, 0.0);
            const double g_d = num / d;
            g0 = g_d - g_d * e_d;
            const double s2_d = zj / (d * d);
            s2 = s2_d - s2_d * (2.0 * e_d);
        }
        const double h0 = (qys + ys_c) * s2;
        double weight = 1.0;  // W = balance * sample weight
        if constexpr (O == Options::weighted || General) weight = double(w[j]);
        if constexpr (General) weight *= k.balance_on * (k.alpha * ys + k.one_minus_alpha * ys_c) + k.balance_off;
        double gj = g0, hj = h0;
        if constexpr (Focal) {
            // u = 1 - p_t = y'(1 - p) + (1 - y')p = nu/d, F = u^gamma (in log space: exp(-inf) = 0
            // where u = 0), r = u'/u = (1 - 2y') p(1 - p)/u = (1 - 2y') z / (d nu), whose limit
            // where z = nu = 0 (a hard label at an underflowed z) is (1 - 2y')/d.
            const double nu = ys * b + ys_c * a;
            const double f = focal_f[j];
            double v, soft;  // z/nu (its limit 1 where nu = 0) and softplus(-|x|) = log1p(z)
            if constexpr (IsFloat) {
                // 1/nu as inverse_of_d (a double division costs 4x as much), nu scaled into
                // float's range first: nu is 0 or >= 2^-149 here, since z and y are floats
                const double scale = vm::detail::select(nu < 0x1p-100, 0x1p100, 1.0);
                const double nu_s = vm::detail::select(nu > 0.0, nu * scale, 1.0);
                const double r0 = double(1.0f / float(nu_s));
                v = vm::detail::select(nu > 0.0, (zj * scale) * (r0 * (2.0 - nu_s * r0)), 1.0);
                // in float: an error of an ulp of log1p(z) <= ulp(1)/2, like that of z itself
                soft = double(vm::log1p_small_nonnegative(z[j]));
            } else {
                v = vm::detail::select(nu > 0.0, zj / nu, 1.0);
                soft = vm::log1p_small(zj);
            }
            const double r = (ys_c - ys) * v * inv_d;
            // ce itself (step 3), only ever multiplied by r: r ce -> 0 where x is infinite
            const double ce = times_weight(qys, (pos ? 0.0 : -xj) + soft) + times_weight(ys_c, (pos ? xj : 0.0) + soft);
            const double rce = times_weight(r, ce);
            const double gm = k.gamma;
            // (F ce)' = F (gamma r ce + ce'),
            // (F ce)'' = F (gamma r ce ((gamma - 1) r + 1 - 2p) + 2 gamma r ce' + ce'')
            if constexpr (IsFloat) {
                gj = f * (gm * rce + g0);
                const double one_minus_2p = (b - a) * inv_d;
                hj = times_weight(f, gm * (rce * ((gm - 1.0) * r + one_minus_2p) + 2.0 * r * g0) + h0);
            } else {
                const double inner = (gm - 1.0) * r + (b - a) * inv_d;
                const double g_sum = gm * rce + g0, h_sum = gm * (rce * inner + 2.0 * r * g0) + h0;
                gj = f * g_sum;
                hj = times_weight(f, h_sum);
                // The float64 budget needs the cancelling terms in double-double, but only where
                // they cancel: the double form's error is a few ulps of the terms' magnitudes
                // times amp (r's relative error from y' - (1 - y')), so below 2^10 times the
                // result it is within 1e-11. Those elements are marked and redone by
                // focal_cancelling (this loop stays vectorised); NaN (0/0, inf) is marked too.
                const double amp = (ys + ys_c) / std::abs(ys_c - ys);
                const double g_terms = std::abs(gm * rce) + std::abs(g0);
                const double inner_terms = std::abs((gm - 1.0) * r) + std::abs((b - a) * inv_d);
                const double h_terms = gm * (std::abs(rce) * inner_terms + std::abs(2.0 * r * g0)) + std::abs(h0);
                const bool cancels = !(amp * g_terms <= 0x1p10 * std::abs(g_sum)) ||
                                     !(amp * h_terms <= 0x1p10 * std::abs(h_sum));
                redo->cancels[j] = cancels ? 1.0 : 0.0;
                redo->weight[j] = weight;
                if constexpr (Clip) redo->floor[j] = f * h0;  // (read only by the clipped Hessian)
            }
            if constexpr (Clip) {
                const double floor = f * h0;  // ce'' with the focal factor held fixed: >= 0
                hj = vm::detail::select(hj < floor, floor, hj);
            }
        }
        g[j] = T(weight * gj);
        h[j] = T(weight * hj);
    }
}

// The float focal derivatives for gamma in {1/2, 1, ..., 4} (H = 2 gamma), in float: grad_loop
// keeps them in double (8 lanes a vector, conversions, two double divisions: ~15 cycles an
// element on 2 threads of the v4 tier) for the few elements whose terms cancel. Here each
// element's result comes with a bound on its rounding error (a running error bound, below), and
// redo[j] = 1 marks the elements that grad_block recomputes with grad_loop: those whose bound
// exceeds the budget, those outside the domain where every intermediate is a normal float
// (|x| in {0} or [2^-40, 16], so z = exp(-|x|) >= 2^-23.1; labels in [0, 1]; pos_weight in
// [2^-24, 2^24]; the focal factor times the terms >= 2^-100), and NaN. Marked elements get harmless inputs
// here so that no subnormal or NaN is formed. (1% to 5% of the elements of a trained model's
// logits, docs/gradients.md.)
//
// The bound (docs/gradients.md, "The float focal path"): with u = 2^-24 and every operation
// rounding once (a multiply-add at most twice), z and x taken as exact (z's rounding is that of
// moving x by an ulp of 1, the error the derivatives' tests allow for any implementation),
// the sums G = gamma r ce + g0 and S = gamma (r ce inner + 2 r g0) + h0 are off by at most
// 26 u T_G and 42 u T_S, where T_G, T_S are the same expressions with every term replaced by its
// magnitude (for g0 = (1 - y') a - q y' b over d, and inner = (gamma - 1) r + (b - a)/d, the sum
// of their terms' magnitudes). F = u^gamma, the balance and the weight add at most 44 u
// (2.6e-6) relatively; so |G| >= 26 u T_G / 7e-6 (and the same for S) keeps each result within
// 1e-5 of the exact derivative.
constexpr float kFocalFloatMaxAbs = 16.0f;
constexpr float kFocalGradBound = float(26 * 0x1p-24 / 7e-6);
constexpr float kFocalHessBound = float(42 * 0x1p-24 / 7e-6);

// The labels' largest bits (for the range check) and how many elements a focal_float_loop marked.
struct FocalFloatTile {
    uint32_t label_bits, marked;
};

// The domain checks are on the bits (one unsigned comparison a range; a label of -0 is marked).
template <int H, bool Clip>
inline FocalFloatTile focal_float_loop(const float* __restrict y, const float* __restrict x,
                                       const float* __restrict w, const float* __restrict q, float* __restrict g,
                                       float* __restrict h, float* __restrict redo, int64_t len, const GradParams& k) {
    using vm::detail::mul_add;
    constexpr uint32_t abs_lo = std::bit_cast<uint32_t>(0x1p-40f), q_lo = std::bit_cast<uint32_t>(0x1p-24f);
    constexpr uint32_t abs_span = std::bit_cast<uint32_t>(kFocalFloatMaxAbs) - abs_lo;
    constexpr uint32_t q_span = std::bit_cast<uint32_t>(0x1p24f) - q_lo, one = std::bit_cast<uint32_t>(1.0f);
    const float keep = float(k.keep), shift = float(k.shift), gm = float(k.gamma);
    const float on = float(k.balance_on), off = float(k.balance_off);
    const float alpha = float(k.alpha), one_minus_alpha = float(k.one_minus_alpha);
    uint32_t label_bits = 0, marked = 0;
    for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
        const uint32_t y_bits = std::bit_cast<uint32_t>(y[j]);
        label_bits = std::max(label_bits, y_bits);
        const uint32_t abs_bits = std::bit_cast<uint32_t>(x[j]) & 0x7fffffffu;
        // |x| in {0} or [2^-40, 16] (NaN beyond), y in [+0, 1], q in [2^-24, 2^24]
        const bool inside = ((abs_bits - abs_lo <= abs_span) | (abs_bits == 0)) & (y_bits <= one) &
                            (std::bit_cast<uint32_t>(q[j]) - q_lo <= q_span);
        const float xj = inside ? x[j] : 1.0f, yj = inside ? y[j] : 0.0f, qj = inside ? q[j] : 1.0f;
        const float ax = std::abs(xj);
        const float z = vm::exp_nonpositive_normal(-ax);
        const float d = 1.0f + z;
        const float inv_d = 1.0f / d;
        const bool pos = xj >= 0.0f;
        const float a = pos ? 1.0f : z, b = pos ? z : 1.0f;  // d p, d (1 - p)
        const float ys = mul_add(yj, keep, shift), ys_c = mul_add(1.0f - yj, keep, shift);
        const float c = (1.0f - 2.0f * yj) * keep;  // 1 - 2y' (1 - 2y exact for y >= 1/4)
        const float qys = qj * ys;
        const float nu = mul_add(ys, b, ys_c * a);  // d u, u = 1 - p_t; >= z/2 here
        const float r = c * (z / nu) * inv_d;        // u'/u
        const float soft = vm::log1p_small_nonnegative(z);
        // ce = q y' softplus(-x) + (1 - y') softplus(x) = (q y' + 1 - y') log1p(z) + |x| (q y' or 1 - y'),
        // a sum of two terms >= 0 (as accurate as the two softplus sums it replaces, 9 eps)
        const float weights = qys + ys_c;
        const float ce = mul_add(weights, soft, ax * (pos ? ys_c : qys));
        const float rce = r * ce;
        const float ta = ys_c * a, tb = qys * b;
        const float g0 = (ta - tb) * inv_d, g0_terms = (ta + tb) * inv_d;  // ce' and its terms
        const float h0 = weights * (z * inv_d * inv_d);                    // ce''
        const float b_minus_a = (b - a) * inv_d;                           // 1 - 2p
        const float inner = mul_add(gm - 1.0f, r, b_minus_a);
        const float gs = mul_add(gm, rce, g0);
        const float hs = mul_add(gm, mul_add(rce, inner, 2.0f * r * g0), h0);
        const float abs_r = std::abs(r), abs_rce = std::abs(rce);
        const float gs_terms = mul_add(gm, abs_rce, g0_terms);
        const float inner_terms = mul_add(std::abs(gm - 1.0f), abs_r, std::abs(b_minus_a));
        const float hs_terms = mul_add(gm, mul_add(abs_rce, inner_terms, 2.0f * abs_r * g0_terms), h0);
        const float f0 = half_power<H>(nu * inv_d);
        // F gs and F hs stay above 2^-103 (the bound keeps |gs| >= gs_terms / 5); 2^64 F is normal
        const bool ok = inside & ((f0 * 0x1p64f) * std::min(gs_terms, hs_terms) >= 0x1p-36f) &
                        (kFocalGradBound * gs_terms <= std::abs(gs)) &
                        (kFocalHessBound * hs_terms <= std::abs(hs));
        const float f = ok ? f0 : 1.0f;
        // clipped: at least F ce'' (the Hessian with the focal factor held fixed, >= 0), as
        // F max(S, ce'') (F >= 0 and rounding are monotone: the same bits, one product less)
        const float hj = f * (Clip ? (hs < h0 ? h0 : hs) : hs);
        const float weight = w[j] * mul_add(on, mul_add(alpha, ys, one_minus_alpha * ys_c), off);
        g[j] = weight * (f * gs);
        h[j] = weight * hj;
        redo[j] = ok ? 0.0f : 1.0f;
        marked += ok ? 0u : 1u;
    }
    return {label_bits, marked};
}

// What grad_block keeps for the elements focal_float_loop marks: their inputs gathered into
// dense tiles (grad_loop's loops then run on them as on any tile) and where their results go.
// Gathered from many tiles before one run when the results go straight to the caller's arrays:
// a run has a fixed cost (three short loops) that a tile's one or two marked elements (0.3% of
// a boosting model's margins) would pay alone, 14% of the call.
struct FocalFloatRedo {
    alignas(64) float y[kTile], x[kTile], w[kTile], q[kTile], z[kTile], g[kTile], h[kTile];
    alignas(64) double f[kTile];
    // the element's offset from the output pointers of the run (one more: the branch-free scan
    // writes one past the last mark)
    int64_t index[kTile + 1];
    int64_t m = 0;         // elements gathered
};

// Where a tile's redone elements go: g[base + j], h[base + j]; `defer`: gathered with later
// tiles' (g, h are then the whole block's arrays), else run before focal_float returns.
struct FocalFloatOut {
    float *g, *h;
    int64_t base;
    bool defer;
};

// Runs the gathered elements through grad_loop and stores their results.
template <bool Clip>
inline void focal_float_redo(const GradParams& k, FocalFloatRedo& redo, float* g, float* h) {
    const int64_t m = redo.m;
    if (m == 0) return;
    exp_neg_abs(redo.x, redo.z, m);
    focal_factor<float>(redo.y, redo.x, redo.z, redo.f, m, k);
    grad_loop<float, Options::general, true, Clip>(redo.y, redo.x, redo.z, redo.w, redo.q, redo.f, redo.g, redo.h,
                                                   m, k, nullptr);
    for (int64_t i = 0; i < m; ++i) g[redo.index[i]] = redo.g[i], h[redo.index[i]] = redo.h[i];
    redo.m = 0;
}

// The float focal derivatives of a tile: focal_float_loop, then the marked elements through
// grad_loop (each element's result is its own: the same for any tile, position or batch).
// Returns the labels' largest bits (for the range check).
template <bool Clip>
inline uint32_t focal_float(const float* y, const float* x, const float* w, const float* q, float* g, float* h,
                            float* mark, int64_t len, const GradParams& k, FocalFloatRedo& redo,
                            const FocalFloatOut& out) {
    FocalFloatTile tile{};
    with_half_gamma(k.half_gamma, [&](auto hc) {
        tile = focal_float_loop<decltype(hc)::value, Clip>(y, x, w, q, g, h, mark, len, k);
    });
    if (tile.marked == 0) return tile.label_bits;  // (the common tile)
    if (redo.m + int64_t(tile.marked) > kTile) focal_float_redo<Clip>(k, redo, out.g, out.h);
    // gathered 16 marks at a time, up to the last one: most groups have none (a mark is 1.0f)
    constexpr int64_t group = 16;
    const int64_t m_end = redo.m + int64_t(tile.marked);
    int64_t m = redo.m;
    for (int64_t j0 = 0; m < m_end; j0 += group) {
        const int64_t end = std::min(len, j0 + group);
        uint32_t any = 0;
        for (int64_t j = j0; j < end; ++j) any |= std::bit_cast<uint32_t>(mark[j]);
        if (any == 0) continue;
        for (int64_t j = j0; j < end; ++j) {  // branch-free: index j is kept where marked
            redo.index[m] = j;
            m += mark[j] != 0.0f;
        }
    }
    for (int64_t i = redo.m; i < m; ++i) {
        const int64_t j = redo.index[i];
        redo.y[i] = y[j], redo.x[i] = x[j], redo.w[i] = w[j], redo.q[i] = q[j];
        redo.index[i] = out.base + j;
    }
    redo.m = m;
    if (!out.defer) focal_float_redo<Clip>(k, redo, out.g, out.h);
    return tile.label_bits;
}

// Copies a tile of results to the caller's array. `stream`: with non-temporal stores, which
// write whole cache lines without reading them first; ordinary stores of a large output read
// every line before writing it, 1.5x the traffic of reading 8 and writing 8 bytes an element
// (measured 1.57x that floor at 1e8 float32 elements on the v4 tier). The values are the same.
template <class T>
inline void store_tile(T* dst, int64_t stride, const T* src, int64_t len, bool stream) {
    if (stride != 1) {
        for (int64_t j = 0; j < len; ++j) dst[j * stride] = src[j];
        return;
    }
#if defined(__SSE2__)
    if (stream) {
#if defined(__AVX512F__)
        using Vec = __m512i;
#elif defined(__AVX__)
        using Vec = __m256i;
#else
        using Vec = __m128i;
#endif
        constexpr int64_t lanes = int64_t(sizeof(Vec) / sizeof(T));
        int64_t j = 0;
        for (; j < len && reinterpret_cast<uintptr_t>(dst + j) % sizeof(Vec) != 0; ++j) dst[j] = src[j];
        for (; j + lanes <= len; j += lanes) {
            Vec v;
            std::memcpy(&v, src + j, sizeof v);
#if defined(__AVX512F__)
            _mm512_stream_si512(reinterpret_cast<Vec*>(dst + j), v);
#elif defined(__AVX__)
            _mm256_stream_si256(reinterpret_cast<Vec*>(dst + j), v);
#else
            _mm_stream_si128(reinterpret_cast<Vec*>(dst + j), v);
#endif
        }
        for (; j < len; ++j) dst[j] = src[j];
        return;
    }
#else
    (void)stream;
#endif
    std::memcpy(dst, src, size_t(len) * sizeof(T));
}

// Outputs at least this large (elements) are written with non-temporal stores: they do not fit
// in the caches anyway (a smaller one stays cached for the caller, e.g. a boosting library).
constexpr int64_t kStreamMin = int64_t(1) << 22;

// Elements of an array from `p` to its next cache-line (64-byte) boundary (0: p is on one).
template <class T>
inline int64_t to_line_end(const T* p) {
    return int64_t((64 - reinterpret_cast<uintptr_t>(p) % 64) % 64 / sizeof(T));
}

// The streamed plain and weighted float derivatives go out in chunks of this many elements (4
// cache lines of each output): computed into a buffer, then streamed, a chunk at a time. Whole
// tiles (2 KiB of each output) in one burst left the loads waiting behind the stores (1e8
// float32 elements, 2 threads, v4, line-aligned outputs, CPU time: 1.40x the memory floor with
// tiles, 1.15x with chunks of 64; 32 and 128 no better), in the same run.
constexpr int64_t kStreamChunk = 64;

// plain_float for a tile written to the caller's g and h (h null: no Hessian) with non-temporal
// stores, kStreamChunk elements at a time from g's first cache-line boundary on; g and h at the
// same offset in a cache line, so that every chunk but a block's first and last fills whole
// lines of both (a line partly written by ordinary stores and partly streamed is read and
// written again: outputs 16 bytes off a line, as NumPy's large arrays are, took 1.76x the
// floor with per-tile stores and 3x with unaligned chunks). Returns the labels' largest bits.
template <Options O>
inline uint32_t plain_float_streamed(const float* y, const float* x, const float* w, float* g, float* h,
                                     int64_t len, float* g_buf, float* h_buf) {
    uint32_t label_bits = 0;
    auto chunk = [&](int64_t s0, int64_t part) {
        label_bits = std::max(label_bits, plain_float<O>(y + s0, x + s0, w + s0, g_buf, h_buf, part));
        store_tile(g + s0, 1, g_buf, part, true);
        if (h != nullptr) store_tile(h + s0, 1, h_buf, part, true);
    };
    int64_t s0 = std::min(len, to_line_end(g));
    if (s0 > 0) chunk(0, s0);
    for (; s0 + kStreamChunk <= len; s0 += kStreamChunk) chunk(s0, kStreamChunk);  // (a constant length)
    if (s0 < len) chunk(s0, len - s0);
    return label_bits;
}

// Asks for the bytes of elements [begin, begin + len) of a float view ahead of their use, one
// request per cache line: the derivatives do little work per byte, so without it the loads of
// a tile wait for memory after the previous tile's arithmetic instead of during it.
inline void prefetch_view(const View& v, int64_t begin, int64_t len) {
#if defined(__SSE2__)
    if (v.stride != 1 || (v.dtype != DType::f32 && v.dtype != DType::f64)) return;
    const int64_t size = v.dtype == DType::f32 ? 4 : 8;
    const char* p = static_cast<const char*>(v.data) + begin * size;
    for (int64_t b = 0; b < len * size; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
#else
    (void)v, (void)begin, (void)len;
#endif
}

// Tiles between a tile's prefetch and its use.
constexpr int64_t kPrefetchTiles = 3;

// Elements [begin, end) of a derivatives call: load, check (as the loss: labels in [0, 1] when
// validating, weights, NaN under "raise"; the first offending element wins), compute, store
// (plain and weighted float: compute, then check; on a fault the caller's arrays hold partial
// results, as the loss's `out`). NaN in y, x or w gives NaN derivatives under "propagate" and
// "omit" alike.
template <class T, Options O, bool Focal, bool Clip>
void grad_block(const Call& c, const GradOut& go, int64_t begin, int64_t end, BlockOut& out) {
    TileInputs<T> in(c);  // (p: the logits x)
    alignas(64) T z_buf[kTile];
    alignas(64) T g_buf[kTile];
    alignas(64) T h_buf[kTile];
    alignas(64) double f_buf[Focal ? kTile : 1];
    constexpr bool redo_focal = Focal && !std::is_same_v<T, float>;
    std::unique_ptr<FocalRedo> redo;  // (float64 focal only)
    if constexpr (redo_focal) redo = std::make_unique<FocalRedo>();

    const GradParams k = GradParams::of<T>(c);
    // float focal with gamma in {1/2, 1, ..., 4}: in float, a few elements through grad_loop
    std::unique_ptr<FocalFloatRedo> float_redo;
    // (not with tiny smoothing: its s/2 is not a normal float, the double path takes it exactly)
    if constexpr (Focal && std::is_same_v<T, float>)
        if (k.half_gamma != 0 && !LossParams<float>::tiny_smoothing(c))
            float_redo = std::make_unique<FocalFloatRedo>();
    const T* const q = in.q;
    T* const grad = static_cast<T*>(go.grad);
    T* const hess = static_cast<T*>(go.hess);
    const bool stream = c.n >= kStreamMin;

    // plain and weighted float: computed first (one loop, the labels' range checked by their
    // largest bits there), straight into the caller's arrays unless strided or streamed; without
    // the prefetches, which the hardware's own do better for that loop (1e8 float32 elements,
    // 2 threads, v4: 1.35x the memory floor without them, 1.65x with, in the same run)
    constexpr bool fused = std::is_same_v<T, float> && !Focal && O != Options::general;
    // (so is the float focal path, focal_float)
    const bool computed_first = fused || float_redo != nullptr;
    // fused and streamed (plain_float_streamed): tiles end on grad's cache lines (the first one
    // is shorter), where hess has the same offset in a line (else as the other paths: per tile)
    bool streamed = false;
    if constexpr (fused)
        streamed = stream && go.grad_stride == 1 &&
                   (hess == nullptr || (go.hess_stride == 1 && to_line_end(hess) == to_line_end(grad)));
    const int64_t skew = streamed ? (kTile - to_line_end(grad + begin)) % (64 / int64_t(sizeof(T))) : 0;
    for (int64_t i0 = begin, len = 0; i0 < end; i0 += len) {
        len = std::min(i0 == begin ? kTile - skew : kTile, end - i0);
        const int64_t ahead = i0 + kPrefetchTiles * kTile;
        if (!computed_first && ahead < end) {
            prefetch_view(c.y_true, ahead, std::min(kTile, end - ahead));
            prefetch_view(c.y_pred, ahead, std::min(kTile, end - ahead));
        }
        in.load_unpadded(c, i0, len);
        const T *y = in.y, *x = in.p, *w = in.w;

        const bool direct =
            computed_first && !stream && go.grad_stride == 1 && (hess == nullptr || go.hess_stride == 1);
        T* const g_out = direct ? grad + i0 : g_buf;
        T* const h_out = direct && hess != nullptr ? hess + i0 : h_buf;
        uint32_t label_bits = 0;
        if constexpr (fused) {
            T* const h_at = hess != nullptr ? hess + i0 : nullptr;
            if (streamed)
                label_bits = plain_float_streamed<O>(y, x, w, grad + i0, h_at, len, g_buf, h_buf);
            else
                label_bits = plain_float<O>(y, x, w, g_out, h_out, len);
        }
        if constexpr (Focal && std::is_same_v<T, float>)
            if (float_redo) {  // (z_buf holds the marks)
                const bool defer = direct && hess != nullptr;
                const FocalFloatOut dst = defer ? FocalFloatOut{grad, hess, i0, true}
                                                : FocalFloatOut{g_out, h_out, 0, false};
                label_bits = focal_float<Clip>(y, x, w, q, g_out, h_out, z_buf, len, k, *float_redo, dst);
            }

        int64_t first = len;
        Fault fault = Fault::none;
        auto consider = [&](int64_t j, Fault f) {
            if (j < first) first = j, fault = f;
        };
        // (a label in [+0, 1] has bits <= those of 1; -0 and NaN, no range errors, take the
        // exact check)
        if (c.validate && (!computed_first || label_bits > std::bit_cast<uint32_t>(1.0f)))
            consider(first_outside_unit(y, len), Fault::label_range);
        if (in.weights_vary) consider(first_bad_weight(w, len), Fault::weight_range);
        if (c.nan_policy == NanPolicy::raise) consider(first_nan(y, x, w, len), Fault::nan);
        if (fault != Fault::none) {
            out.fault = fault;
            out.fault_index = i0 + first;
            break;  // (the deferred redo and the fence below still run for the tiles written)
        }

        if (!computed_first) {  // (fused calls computed first too)
            exp_neg_abs(x, z_buf, len);
            if constexpr (Focal) focal_factor<T>(y, x, z_buf, f_buf, len, k);
            grad_loop<T, O, Focal, Clip>(y, x, z_buf, w, q, f_buf, g_buf, h_buf, len, k, redo.get());
            if constexpr (redo_focal) focal_cancelling<T, Clip>(y, x, z_buf, q, f_buf, g_buf, h_buf, len, k, *redo);
        }
        if (!direct && !streamed) {
            store_tile(grad + i0 * go.grad_stride, go.grad_stride, g_buf, len, stream);
            if (hess != nullptr) store_tile(hess + i0 * go.hess_stride, go.hess_stride, h_buf, len, stream);
        }
    }
    if constexpr (Focal && std::is_same_v<T, float>)
        if (float_redo) focal_float_redo<Clip>(k, *float_redo, grad, hess);  // (the deferred ones)
#if defined(__SSE2__)
    if (stream) _mm_sfence();  // the streamed lines are visible before the block is reported done
#endif
}

template <class T>
void fill_grad_blocks(GradBlockFn (&table)[5]) {
    table[int(GradLevel::plain)] = &grad_block<T, Options::plain, false, false>;
    table[int(GradLevel::weighted)] = &grad_block<T, Options::weighted, false, false>;
    table[int(GradLevel::general)] = &grad_block<T, Options::general, false, false>;
    table[int(GradLevel::focal)] = &grad_block<T, Options::general, true, false>;
    table[int(GradLevel::focal_clipped)] = &grad_block<T, Options::general, true, true>;
}

inline GradKernels make_grad_kernels() {
    GradKernels k{};
    fill_grad_blocks<float>(k.block[0]);
    fill_grad_blocks<double>(k.block[1]);
    return k;
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
