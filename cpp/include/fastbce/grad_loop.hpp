// The derivatives of one tile with respect to the logit (grad.hpp has the overview and the
// block loop): the per-call constants, the fused float64 loop of every level (grad_loop), the
// float one of the plain and weighted levels (plain_float_loop) and the float64 focal terms in
// double-double where they cancel (focal_parts, focal_cancelling). Compiled once per SIMD tier
// with the loss kernel (cpp/src/kernel_tier.cpp); the formulas are derived in docs/gradients.md.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "fastbce/kernel.hpp"
#include "fastbce/twofold.hpp"
#include "fastbce/types.hpp"
#include "fastbce/vecmath.hpp"

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
        const float hj = vm::detail::select(y[j] == y[j], s * r, y[j]);  // (a NaN label: NaN, as gj)
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
        const double xj = double(x[j]);
        // Float focal terms: z = exp(-|x|) in double. The float z is off by up to an ulp, as if
        // x had moved by 2^-24, but the |x| terms of ce do not move with it: where
        // gamma r ce + ce' cancels, that mismatch alone reached 3e-3 relative (pos_weight
        // 0.01, soft labels). Where the float z is 0 (|x| > 103.97) so is this one (no
        // subnormal in double either).
        double zj = double(z[j]);
        if constexpr (IsFloat && Focal)
            zj = vm::detail::select(z[j] == T(0), 0.0, vm::exp_nonpositive_normal(-std::min(std::abs(xj), 104.0)));
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
            const double soft = vm::log1p_small(zj);  // softplus(-|x|)
            double v;  // z/nu (its limit 1 where nu = 0)
            if constexpr (IsFloat) {
                // 1/nu as inverse_of_d (a double division costs 4x as much), nu scaled into
                // float's range first: nu is 0 or above about 2^-151 here (y is a float, z is
                // where the float z is not 0)
                const double scale = vm::detail::select(nu < 0x1p-100, 0x1p100, 1.0);
                const double nu_s = vm::detail::select(nu > 0.0, nu * scale, 1.0);
                const double r0 = double(1.0f / float(nu_s));
                v = vm::detail::select(nu > 0.0, (zj * scale) * (r0 * (2.0 - nu_s * r0)), 1.0);
            } else {
                v = vm::detail::select(nu > 0.0, zj / nu, 1.0);
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

}  // namespace FASTBCE_TIER
}  // namespace fastbce
