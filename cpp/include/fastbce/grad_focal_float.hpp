// The float focal derivatives for gamma in {1/2, 1, ..., 4} in float, each with a bound on its
// rounding error; the few elements whose bound exceeds the budget are gathered and redone by
// grad_loop (grad_loop.hpp). Part of grad.hpp's block loop, compiled once per SIMD tier; the
// bound is derived in docs/gradients.md, "The float focal path".
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

#include "fastbce/grad_loop.hpp"
#include "fastbce/kernel.hpp"
#include "fastbce/vecmath.hpp"

namespace fastbce {
namespace FASTBCE_TIER {

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
// moving x by an ulp of 1, the error the derivatives' tests allow for any implementation; it
// does not move ce's |x| term, a mismatch the bound leaves out: measured within 0.12 of the
// budget, docs/gradients.md; grad_loop, which redoes the marked elements, forms z in double),
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

}  // namespace FASTBCE_TIER
}  // namespace fastbce
