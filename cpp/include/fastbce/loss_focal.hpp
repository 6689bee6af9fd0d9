// The focal factor of the loss (steps 4-6 of docs/reference.md): one element (focal_element)
// and a tile (apply_focal).
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

#include "fastbce/loss_elements.hpp"
#include "fastbce/types.hpp"
#include "fastbce/vecmath.hpp"

namespace fastbce {
namespace FASTBCE_TIER {

// One element of apply_focal's step 4-6 (non-general calls) in the type `widen` gives: float, or
// double for the focal band (products of float-range values never leave double's normal range).
// Scaled (float64 logits: a tile with an |x| in (scaled_band, 746) or beyond the fast exp's range,
// and every tile for gamma outside {1/2, ..., 4}): a correct prediction's loss * factor can be
// subnormal for |x| in about (708.4, 745.2) / (1 + gamma), and a multiply producing a subnormal
// takes a microcode assist on Intel cores. An element with |x| in (scaled_band, 746) (beyond it
// exp(-|x|) = 0), labels in [0, 1] and ce < 2^-100 forms it as (loss 2^1074) * factor, rounded
// once to the subnormal grid (Deep::down): the same bits where the result is normal,
// one double rounding where it is not, decided by the element alone. Its 1 - p_t is clamped to
// t_min = 2^(-1088 / (1 + gamma)), where every power of it stays normal; below it the loss, at
// most 2(|x| + 1) t times t^gamma < 2^11 t_min^(1 + gamma), rounds to 0 (t_min is 0, no clamp,
// where that power of 2 would not be normal: gamma < 0.065).
// NoTiny: see one_minus_pt (focal_table_loop).
template <Options O, bool FromLogits, bool Clean, bool Scaled = false, bool NoTiny = false, class T, class Factor, class Widen>
FASTBCE_VM_INLINE auto focal_element(T ce, T ys, T ys_c, T x, T z, T w, const LossParams<T>& k, Factor factor, Widen widen) {
    using W = decltype(widen(T(0)));
    const W balance = widen(balance_factor_plain<Clean>(k, ys));  // step 5
    const W loss = Clean ? balance * widen(ce) : times_weight(balance, widen(ce));
    const W t = one_minus_pt<FromLogits, kSigmoidZ<T, FromLogits, O>, NoTiny>(widen(ys), widen(ys_c), widen(x), widen(z));
    W focal;
    if constexpr (Scaled) {
        static_assert(std::is_same_v<W, double>);
        using vm::detail::select;
        using Bits = uint64_t;
        // (integer compares of bit patterns, and ce < 2^-100 rather than loss <= ce: GCC folded
        // a compare of loss with the zero test of times_weight into a select it could not
        // vectorise)
        const bool sc = in_scaled_band(x, k.scaled_band) &
                        (std::bit_cast<Bits>(ce) < std::bit_cast<Bits>(T(0x1p-100))) &
                        (std::bit_cast<Bits>(ys) <= std::bit_cast<Bits>(T(1))) &
                        (std::bit_cast<Bits>(ys_c) <= std::bit_cast<Bits>(T(1)));
        const W big = select(sc, loss, W(0x1p-1000)) * W(0x1p537) * W(0x1p537);  // (others: harmless)
        const W product = select(sc, big, loss) * factor(select(sc, vm::detail::max_by_bits(t, k.t_min), t));
        const W small = select(t < k.t_min, W(0), Deep::down(select(sc, product, W(0))));
        focal = select(sc, small, product);
    } else {
        focal = loss * factor(t);
    }
    const W v = Clean ? focal : vm::detail::select(loss == inf<W>, loss, focal);
    if constexpr (O == Options::weighted) return times_weight(widen(w), v);
    else return v;
}

// Step 4 and, for weighted and general calls, step 6: ce[j] = loss[j] * factor(1 - p_t) (* w[j]),
// except that an infinite loss stays infinite (it has p_t < 1, so its factor is > 0 even where it
// underflowed to 0). For general calls `loss` is the float64 product of loss_tile, `t` holds
// 1 - p_t, and the factor (evaluated in float64: a float factor can be subnormal where the
// product is not) and the weight multiply it in float64 too, before the one rounding to T.
// Otherwise this loop also forms 1 - p_t (from y, x and, for logits, z = exp(-|x|) in `t`) and
// step 5's class balance: the loss loop stays that of plain cross-entropy, and the two shorter
// loops ran 7% faster than one that did it all (AVX2, gamma 2). The factor (<= 1) comes first and
// the weight last: no intermediate can overflow where the result does not. Clean: every logit
// of the tile is within the fast exp's range and every label in [0, 1], so the cross-entropy is
// finite and neither the zero-weight test nor the infinity select is needed (same bits).
template <Options O, bool FromLogits, bool Clean, bool Mixed = false, bool Scaled = false, class T, class Factor>
inline void apply_focal(T* __restrict ce, const double* __restrict wide_loss, const T* __restrict y,
                        const T* __restrict pred, const T* __restrict t, const T* __restrict w, int64_t len,
                        const LossParams<T>& k, Factor factor) {
    // (a blend, not a ternary: with `inf ? loss : loss * factor` GCC moves the factor into a
    // branch, which SSE4.2 cannot vectorise)
    for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
        if constexpr (O == Options::general) {
            const double loss = wide_loss[j];
            const double v = vm::detail::select(loss == inf<double>, loss, loss * factor(double(t[j])));
            ce[j] = T(times_weight(double(w[j]), v));
        } else {
            T ys = y[j], ys_c = T(1) - y[j], x = pred[j], z = FromLogits ? t[j] : T(0), ce_j = ce[j];
            // Mixed (float logits): an element with |x| in the band where a float factor or
            // product could be subnormal is computed in double instead (rounded to float once),
            // and the float formulas below see harmless values in its place. Which formula an
            // element takes depends on it alone, never on its tile.
            [[maybe_unused]] bool wide = false;
            [[maybe_unused]] double wide_v = 0.0;
            auto as_double = [](T v) { return double(v); };
            auto as_is = [](T v) { return v; };
            if constexpr (Mixed && std::is_same_v<Factor, PowFactor>) {
                // (exp and log in double: one evaluation, on the 1 - p_t the element needs; the
                // float formula's factor is that rounded to float, as PowFactor gives it, and 1
                // in the band's lanes: there it can be subnormal, and the float formula's
                // multiply by it took a microcode assist although its result is not used)
                using vm::detail::select;
                wide = FocalBand::wide(x, z, k.focal_band);
                constexpr bool sig = kSigmoidZ<T, FromLogits, O>;
                const double t_d = one_minus_pt<FromLogits, sig>(double(ys), double(ys_c), double(x), double(z));
                ce_j = select(wide, T(1), ce_j), x = select(wide, T(0), x), z = select(wide, T(1), z);
                const T t_f = one_minus_pt<FromLogits, sig>(ys, ys_c, x, z);
                const double fd = factor(select(wide, t_d, double(t_f)));
                const T ff = T(select(wide, 1.0, fd));
                wide_v = focal_element<O, FromLogits, true>(ce[j], ys, ys_c, pred[j], t[j], w[j], k,
                                                             [fd](double) { return fd; }, as_double);
                const T v = focal_element<O, FromLogits, false>(ce_j, ys, ys_c, x, z, w[j], k, [ff](T) { return ff; }, as_is);
                ce[j] = select(wide, T(wide_v), v);
                continue;
            } else if constexpr (Mixed) {
                wide = FocalBand::wide(x, z, k.focal_band);
                wide_v = focal_element<O, FromLogits, true>(ce_j, ys, ys_c, x, z, w[j], k, factor, as_double);
                using vm::detail::select;
                ce_j = select(wide, T(1), ce_j), x = select(wide, T(0), x), z = select(wide, T(1), z);
            }
            if constexpr (std::is_same_v<T, double> && FromLogits && !Clean) {
                // float64 logits in the deep band (Deep): a correct hard prediction's ce and z are
                // replaced by 0, which gives its loss, 0, for gamma in {1/2, ..., 4}; other gammas
                // take Deep::pow_loss
                using vm::detail::select;
                const bool deep = Deep::in(z) & ((x >= T(0) ? ys_c : ys) == T(0));
                [[maybe_unused]] const T z_deep = select(deep, z, T(0x1p-1021));  // (others: harmless)
                ce_j = select(deep, T(0), ce_j), z = select(deep, T(0), z);
                if constexpr (std::is_same_v<Factor, PowFactor>) {
                    T d = Deep::pow_loss(z_deep, balance_factor_plain(k, ys), factor.g);
                    if constexpr (O == Options::weighted) d = times_weight(w[j], d);
                    const T v = focal_element<O, FromLogits, Clean, Scaled>(ce_j, ys, ys_c, x, z, w[j], k, factor, as_is);
                    ce[j] = select(deep, d, v);
                    continue;
                }
            }
            const T v = focal_element<O, FromLogits, Clean, Scaled>(ce_j, ys, ys_c, x, z, w[j], k, factor, as_is);
            if constexpr (Mixed) ce[j] = vm::detail::select(wide, T(wide_v), v);
            else ce[j] = v;
        }
    }
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
