// The fused binary cross-entropy kernel: ONE loop computes every loss option of docs/reference.md.
// It is compiled once per SIMD tier (cpp/src/kernel_tier.cpp); FASTBCE_TIER names the tier's
// namespace so that each copy of these inline functions keeps its own symbols.
//
// Data flow of one block: for each tile of kTile elements, the loaders convert y_true, y_pred and
// the weights from whatever type they are stored in into small working-type buffers (or point at
// the input itself when it already is contiguous working type), the checks scan those buffers,
// loss_tile() computes the loss, and sum_f64() adds it to float64 sums in a fixed order.
// No buffer is larger than a tile, so a block streams through L1 whatever the input size.
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

#include "fastbce/types.hpp"
#include "fastbce/sigmoid_table.hpp"
#include "fastbce/softplus_table.hpp"
#include "fastbce/vecmath.hpp"
// The kernel's parts, in dependency order.
#include "fastbce/tile_inputs.hpp"
#include "fastbce/loss_elements.hpp"
#include "fastbce/loss_focal.hpp"
#include "fastbce/loss_loop.hpp"
#include "fastbce/lane_sums.hpp"

namespace fastbce {
namespace FASTBCE_TIER {

// Plain float32 logits with contiguous uint8 labels (process_block's plain_table_loop_u8 tiles).
template <class T, bool FromLogits, bool Focal, Options O>
#if defined(FASTBCE_SOFTPLUS_TABLE)
constexpr bool kU8Table = FromLogits && !Focal && O == Options::plain && std::is_same_v<T, float>;
#else
constexpr bool kU8Table = false;
#endif

// Calls whose loss_tile starts a tile (unless the previous one needed the general exp) with a
// table loop that can prefetch the next tile (`ahead`): plain float32 logits and the focal ones
// of kSigmoidZ (focal_table_tile).
template <class T, bool FromLogits, bool Focal, Options O>
#if defined(FASTBCE_SOFTPLUS_TABLE)
constexpr bool kTableAhead = FromLogits && std::is_same_v<T, float> &&
                             ((O == Options::plain && !Focal) || (Focal && kSigmoidZ<T, FromLogits, O>));
#else
constexpr bool kTableAhead = false;
#endif

// The elementwise loss of docs/reference.md, steps 1-6, for one tile, in stages that are
// each a plain vector loop over the tile (`scratch` holds kTile values between them). One fused
// loop was bound by its dependency chain (exp -> log1p -> loss): the out-of-order core could not
// overlap enough elements; split, the same operations ran 16% faster (docs/vecmath.md).
// Returns whether a label (or, for probabilities, a prediction) may be outside [0, 1]: NaN and -0
// say so too, and the exact check that follows finds nothing for them.
//
// Writing ce = q*y'*(-log p) + (1-y')*(-log(1-p)) with both logs computed as non-negative
// quantities keeps every term positive: no cancellation for soft labels, and for logits
//   -log p = max(-x, 0) + log1p(exp(-|x|)),   -log(1-p) = max(x, 0) + log1p(exp(-|x|)),
// which for q = 1 is softplus(-|x|) + (x > 0 ? (1-y')x : -y'x) and for q != 1 equals the
// tf.nn.weighted_cross_entropy_with_logits form (1-y')x + (1+(q-1)y') softplus(-x).
// Options (types.hpp): plain drops label smoothing, q, w and (without focal) alpha, which are
// then the identity; weighted adds w only; general computes them all (and gives the same value
// for neutral ones, up to the rounding of its float64 products).
// `ahead`: y and pred are the inputs themselves, and the table loops (kTableAhead) prefetch the
// next tile's lines (vm::prefetch_ahead).
template <class T, bool FromLogits, bool Focal, Options O>
inline bool loss_tile(const T* __restrict y, const T* __restrict pred, const T* __restrict q,
                      const T* __restrict w, T* __restrict ce, T* __restrict scratch,
                      double* __restrict wide_loss, int64_t len, const LossParams<T> k,
                      [[maybe_unused]] bool& general_exp, [[maybe_unused]] bool ahead = false) {
    using Bits = typename vm::detail::traits<T>::uint;
    [[maybe_unused]] bool finite = false;  // (logits) every |x| within the fast exp's range
    [[maybe_unused]] Bits max_abs_bits = 0;  // (logits) of the largest |x|
    [[maybe_unused]] Bits min_abs_bits = std::numeric_limits<Bits>::max();  // (logits) of the smallest
    // Focal calls of kSigmoidZ: the table block below also takes their loss loop (its range
    // check in table_max_bits) and leaves sigmoid(-|x|) in `scratch` for the focal step.
    constexpr bool TableFocal = Focal && kSigmoidZ<T, FromLogits, O>;
    [[maybe_unused]] Bits table_max_bits = 0;
#if defined(FASTBCE_SOFTPLUS_TABLE)
    // Plain and weighted float logits on AVX-512: softplus(-|x|) from the table (a third of the
    // instructions of exp and log1p_small), and from exp for |x| >= 31.5 (where log1p(z) rounds
    // to z), element by element: one formula per element whatever its tile. A tile with such an
    // |x| computes both; `general_exp` here says the previous tile had no |x| within the table,
    // and this one then starts with exp (and takes the table only if it has such an |x|), so that
    // runs of large logits do not pay for both (1.8x the time per element otherwise).
    if constexpr (FromLogits && O != Options::general && std::is_same_v<T, float>) {
        constexpr Bits table_max = std::bit_cast<Bits>(vm::softplus_table_max);
        if constexpr (TableFocal) {
            if (!general_exp && (ahead ? focal_table_tile<O, true>(y, pred, w, ce, scratch, len, k)
                                       : focal_table_tile<O>(y, pred, w, ce, scratch, len, k)))
                return false;
        }
        // (by bits: NaN, whose bits are larger still, takes exp too and stays NaN)
        auto beyond = [&](int64_t j) { return std::bit_cast<Bits>(std::abs(pred[j])) >= table_max; };
        // (the degree-6 table, vm::softplus_table: every call but focal ones with gamma > 2)
        const bool table_six = !Focal || sigmoid_by_softplus(k);
        min_abs_bits = 0;
        // Plain: a tile with an |x| beyond the table whose every |x| is within the normal exp's
        // range has its vectors with such an |x| formed again (plain_beyond_vectors), and a tile
        // after one whose every |x| was beyond the table (or after one beyond that range) takes
        // plain_exp_loop first if its first |x| is within the range; `general_exp` then says
        // whether every |x| was beyond the table. (Any other tile goes on below, its loss by
        // loss_loop.)
        [[maybe_unused]] auto exp_loop = [&](bool& done) {
            uint32_t label_bits;
            bool none_within;
            const uint32_t max_bits = plain_exp_loop(y, pred, scratch, ce, len, label_bits, none_within);
            done = max_bits <= std::bit_cast<Bits>(vm::normal_exp_max<T>);
            if (done) general_exp = none_within;
            return label_bits > std::bit_cast<Bits>(T(1));
        };
        if (!general_exp) {
            if constexpr (O == Options::plain && !Focal) {
                // (the table and the loss in one loop; a tile with an |x| beyond the table goes on
                // from its softplus values below, and loss_loop computes its loss again)
                uint32_t label_bits;
                max_abs_bits = ahead ? plain_table_loop<true>(y, pred, scratch, ce, len, label_bits)
                                     : plain_table_loop(y, pred, scratch, ce, len, label_bits);
                if (max_abs_bits < table_max) return label_bits > std::bit_cast<Bits>(T(1));
                if (max_abs_bits <= std::bit_cast<Bits>(vm::normal_exp_max<T>)) {
                    bool none_within;
                    if (plain_beyond_vectors(y, pred, scratch, ce, len, none_within)) {
                        general_exp = none_within;
                        return label_bits > std::bit_cast<Bits>(T(1));
                    }
                }
            } else {
                max_abs_bits = table_six ? vm::softplus_neg_abs_table<true>(pred, scratch, len)
                                         : vm::softplus_neg_abs_table<false>(pred, scratch, len);
            }
            if (!Focal && max_abs_bits >= table_max && max_abs_bits <= std::bit_cast<Bits>(vm::normal_exp_max<T>)) {
                min_abs_bits = exp_band_lanes(pred, scratch, len);  // (weighted; such plain tiles returned above)
            } else if (max_abs_bits >= table_max) {
                min_abs_bits = table_max;
                for (int64_t j = 0; j < len; ++j) {  // (vectorised; AVX-512 only: unmarked)
                    const T a = std::abs(pred[j]);
                    min_abs_bits = std::min(min_abs_bits, std::bit_cast<Bits>(a));
                    scratch[j] = vm::detail::select(beyond(j), vm::exp_nonpositive(-a), scratch[j]);
                }
            }
        } else {
            if constexpr (O == Options::plain && !Focal) {
                if (std::bit_cast<Bits>(std::abs(pred[0])) <= std::bit_cast<Bits>(vm::normal_exp_max<T>)) {
                    bool done;
                    const bool outside = exp_loop(done);
                    if (done) return outside;
                }
            }
            // the cheapest exp that gives every element's bits: that of a normal result, or none
            // at all where every exp(-|x|) is +0 (|x| >= zero_exp_min; NaN gives -|x|, as
            // exp_nonpositive does). The range of |x| is taken in the loop of the normal exp,
            // whose results a tile beyond its range replaces (a pass of its own before that loop
            // was 10% of a tile of |x| in [31.5, 87.33]), or, where the tile's first |x| is
            // beyond that exp's range (the tile likely is), alone first (two integer ops a vector).
            // (a first |x| where exp(-|x|) needs the general exp, in_exp_gap, takes that exp in
            // the loop of the range instead: the tile then needs it, and the pass of its own was
            // 0.1 of 3.3 cycles an element of float32 focal gamma 2 at |x| = 90, v4)
            constexpr Bits zero_min = std::bit_cast<Bits>(vm::zero_exp_min<T>);
            const Bits first = std::bit_cast<Bits>(std::abs(pred[0]));
            const bool gap_first = in_exp_gap<T>(first);
            const bool scan_first = first > std::bit_cast<Bits>(vm::normal_exp_max<T>) && !gap_first;
            min_abs_bits = std::numeric_limits<Bits>::max();
            if (scan_first) {
                for (int64_t j = 0; j < len; ++j) {  // (vectorised; AVX-512 only: unmarked)
                    const Bits a = std::bit_cast<Bits>(std::abs(pred[j]));
                    max_abs_bits = std::max(max_abs_bits, a);
                    min_abs_bits = std::min(min_abs_bits, a);
                }
            } else if (gap_first) {
                for (int64_t j = 0; j < len; ++j) {  // (as above)
                    const T a = std::abs(pred[j]);
                    max_abs_bits = std::max(max_abs_bits, std::bit_cast<Bits>(a));
                    min_abs_bits = std::min(min_abs_bits, std::bit_cast<Bits>(a));
                    scratch[j] = vm::exp_nonpositive(-a);
                }
            } else if constexpr (!Focal) {
                exp_band_loop(pred, scratch, len, max_abs_bits, min_abs_bits);
            } else {
                for (int64_t j = 0; j < len; ++j) {  // (as above)
                    const T a = std::abs(pred[j]);
                    max_abs_bits = std::max(max_abs_bits, std::bit_cast<Bits>(a));
                    min_abs_bits = std::min(min_abs_bits, std::bit_cast<Bits>(a));
                    scratch[j] = vm::exp_nonpositive_normal(-a);
                }
            }
            // (a tile within the normal exp's range has its exp from the loops above; scan_first's
            // tiles never are: their first |x| is beyond it, or NaN)
            if (max_abs_bits > std::bit_cast<Bits>(vm::normal_exp_max<T>)) {
                if (min_abs_bits >= zero_min) {
                    for (int64_t j = 0; j < len; ++j) {  // (as above)
                        const T a = std::abs(pred[j]);
                        scratch[j] = vm::detail::select(a != a, -a, T(0));
                    }
                } else if (!gap_first) {
                    for (int64_t j = 0; j < len; ++j) scratch[j] = vm::exp_nonpositive(-std::abs(pred[j]));  // (as above)
                }
            }
            if (min_abs_bits < table_max) {
                if (table_six) vm::softplus_neg_abs_table<true>(pred, ce, len);  // (ce: free until
                else vm::softplus_neg_abs_table<false>(pred, ce, len);      // loss_loop below)
                for (int64_t j = 0; j < len; ++j) scratch[j] = vm::detail::select(beyond(j), scratch[j], ce[j]);  // (as above)
            }
        }
        if constexpr (!Focal) {
            // (a tile with an |x| beyond the normal exp's range, or a NaN, took the general exp
            // throughout: its lanes within that range and beyond the table take exp_neg_abs_band)
            if (max_abs_bits > std::bit_cast<Bits>(vm::normal_exp_max<T>) &&
                min_abs_bits <= std::bit_cast<Bits>(vm::normal_exp_max<T>))
                exp_band_lanes(pred, scratch, len);
        }
        general_exp = min_abs_bits >= table_max;
        // (softplus is 0 where exp(-|x|) is, so saturate_tile applies to it as to exp; a tile of
        // finite |x| >= zero_exp_min has its zeros already)
        finite = max_abs_bits <= std::bit_cast<Bits>(vm::normal_exp_max<T>) ||
                 (min_abs_bits >= std::bit_cast<Bits>(vm::zero_exp_min<T>) && max_abs_bits < std::bit_cast<Bits>(inf<T>)) ||
                 (!in_exp_gap<T>(min_abs_bits) && saturate_tile(pred, scratch, len));
        // (WideWeight matters to weighted calls only; a tile beyond the fast exp's range has it)
        Bits max_bits;
        if (!finite)
            max_bits = loss_loop<T, true, Focal, O, false, true, O == Options::weighted>(y, pred, q, w, ce, scratch, wide_loss, len, k);
        else if (O == Options::weighted && !Focal && wide_weight(max_abs_bits, min_abs_bits))
            max_bits = loss_loop<T, true, false, O, true, true, O == Options::weighted>(y, pred, q, w, ce, scratch, wide_loss, len, k);
        else
            max_bits = loss_loop<T, true, Focal, O, true, true>(y, pred, q, w, ce, scratch, wide_loss, len, k);
        if constexpr (!Focal) return max_bits > std::bit_cast<Bits>(T(1));
        // (focal: softplus becomes sigmoid(-|x|) where |x| < 31.5, and stays exp(-|x|) beyond,
        // which is both; the focal step below follows)
        if (sigmoid_by_softplus(k)) vm::sigmoid_by_softplus_table(pred, scratch, len);
        else vm::sigmoid_neg_abs_table(pred, scratch, len);
        table_max_bits = max_bits;
    }
#endif
    if constexpr (FromLogits && !TableFocal) {
        // exp(-|x|) with the cheaper exp of a normal result; a tile with any |x| beyond its
        // range (or NaN, whose bits are larger still) takes the general exp_nonpositive again.
        // `general_exp` (the previous tile needed it) starts with the general one instead, so
        // that runs of such tiles do not pay twice; both give the same bits where both apply.
        // A tile whose every |x| is finite and at least zero_exp_min has exp(-|x|) = +0 throughout
        // (its zeros are put in at once, where saturate_tile's pass made such tiles 1.3x slower
        // than small logits on v3 and v2).
        if (general_exp) {
            for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
                const T a = std::abs(pred[j]);
                max_abs_bits = std::max(max_abs_bits, std::bit_cast<Bits>(a));
                min_abs_bits = std::min(min_abs_bits, std::bit_cast<Bits>(a));
                scratch[j] = vm::exp_nonpositive(-a);
            }
        } else {
            for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
                const T a = std::abs(pred[j]);
                max_abs_bits = std::max(max_abs_bits, std::bit_cast<Bits>(a));
                min_abs_bits = std::min(min_abs_bits, std::bit_cast<Bits>(a));
                scratch[j] = vm::exp_nonpositive_normal(-a);
            }
        }
        const bool zeros = min_abs_bits >= std::bit_cast<Bits>(vm::zero_exp_min<T>) && max_abs_bits < std::bit_cast<Bits>(inf<T>);
        if (zeros) std::fill(scratch, scratch + len, T(0));
        finite = max_abs_bits <= std::bit_cast<Bits>(vm::normal_exp_max<T>) || zeros ||
                 (!in_exp_gap<T>(min_abs_bits) && saturate_tile(pred, scratch, len));
        const bool had_general = general_exp;
        general_exp = !finite;
        if (!finite && !had_general) {
            for (int64_t j = 0; j < len; ++j) scratch[j] = vm::exp_nonpositive(-std::abs(pred[j]));  // FASTBCE_VEC_LOOP
        }
    }
    Bits max_bits = table_max_bits;
    // (general calls use it only for float64, in the deep band: Deep; WideWeight: weighted float
    // logits in a tile beyond the fast exp's range or with an |x| above wide_weight_abs)
    if constexpr (TableFocal) {
        // (taken in the table block)
    } else if constexpr (FromLogits && (O != Options::general || std::is_same_v<T, double>)) {
        if (!finite)
            max_bits = loss_loop<T, FromLogits, Focal, O, false, false, O == Options::weighted>(y, pred, q, w, ce, scratch, wide_loss, len, k);
        else if (O == Options::weighted && wide_weight(max_abs_bits, min_abs_bits))
            max_bits = loss_loop<T, FromLogits, Focal, O, true, false, O == Options::weighted>(y, pred, q, w, ce, scratch, wide_loss, len, k);
        else
            max_bits = loss_loop<T, FromLogits, Focal, O, true>(y, pred, q, w, ce, scratch, wide_loss, len, k);
    } else {
        max_bits = loss_loop<T, FromLogits, Focal, O, false>(y, pred, q, w, ce, scratch, wide_loss, len, k);
    }
    if constexpr (O == Options::weighted && !Focal && WeightLater<T, FromLogits, false>) {
        if (!finite) weight_tile(ce, w, len);
    }
    const bool maybe_outside_unit = max_bits > std::bit_cast<Bits>(T(1));
    if constexpr (Focal) {
        // step 4: (1 - p_t)^gamma, by products for gamma in {1/2, 1, ..., 4} (half_power), else
        // as exp(gamma * log(1 - p_t)), which does not underflow for gamma < 1 (exp(-inf) = 0
        // where 1 - p_t = 0; gamma > 0 here); then step 6
        const bool clean = finite && !maybe_outside_unit;
        // (float logits) a tile with an |x| in the focal band: the mixed loop; the bound is
        // below the fast exp's, so a tile within it is finite, and the scan runs only beyond it
        bool mixed = false;
        if constexpr (FromLogits && O != Options::general && std::is_same_v<T, float>) {
            // (none where every |x| is at least zero_exp_min: exp(-|x|) = 0 there)
            if (max_abs_bits > std::bit_cast<Bits>(k.focal_band) && min_abs_bits < std::bit_cast<Bits>(vm::zero_exp_min<T>)) {
                int any = 0;
                for (int64_t j = 0; j < len; ++j) any |= int(FocalBand::wide(pred[j], scratch[j], k.focal_band));
                mixed = any != 0;
            }
        }
        // (double logits) a clean tile with an |x| in (scaled_band, 746), where focal_element
        // may scale: the scan runs only beyond the band, and only where the tile's smallest |x|
        // does not decide (at least 746: none; inside the band: one). On AVX2 the scan, a 64-bit
        // unsigned compare, was 0.5 of 9 cycles an element: tiles of |x| >= 746 ran 1.1x the time
        // of |x| = 200.
        [[maybe_unused]] bool scaled = false;
        if constexpr (FromLogits && O != Options::general && std::is_same_v<T, double>) {
            if (clean && max_abs_bits > std::bit_cast<Bits>(k.scaled_band)) {
                const T smallest = std::bit_cast<T>(min_abs_bits);
                if (min_abs_bits >= std::bit_cast<Bits>(T(746))) {
                    scaled = false;
                } else if (in_scaled_band(smallest, k.scaled_band)) {
                    scaled = true;
                } else {
                    int any = 0;
                    for (int64_t j = 0; j < len; ++j) any |= int(in_scaled_band(pred[j], k.scaled_band));
                    scaled = any != 0;
                }
            }
        }
        auto apply = [&](auto factor) {
            if constexpr (FromLogits && O != Options::general) {
                if constexpr (std::is_same_v<T, float>) {
                    if (mixed) return apply_focal<O, FromLogits, false, true>(ce, wide_loss, y, pred, scratch, w, len, k, factor);
                } else {
                    // (double: a tile beyond the fast exp's range or with an |x| beyond
                    // scaled_band takes the scaled loop, focal_element)
                    if (!clean) return apply_focal<O, FromLogits, false, false, true>(ce, wide_loss, y, pred, scratch, w, len, k, factor);
                    // (gamma outside {1/2, ..., 4}: every clean tile, since that loop measured
                    // 1.35x faster than the plain one on v4 for the same formula and bits)
                    if (scaled || std::is_same_v<decltype(factor), PowFactor>)
                        return apply_focal<O, FromLogits, true, false, true>(ce, wide_loss, y, pred, scratch, w, len, k, factor);
                }
                if (clean) return apply_focal<O, FromLogits, true>(ce, wide_loss, y, pred, scratch, w, len, k, factor);
            }
            apply_focal<O, FromLogits, false>(ce, wide_loss, y, pred, scratch, w, len, k, factor);
        };
        auto by_products = [&](auto h) {
            apply([](auto t) { return half_power<decltype(h)::value>(t); });
        };
        if (!with_half_gamma(k.half_gamma, by_products)) {
            // in float64 (for float input too): exp(gamma * log t) turns the rounding of
            // log t, up to |log t| * 2^-p, into a relative error gamma times that (computed in
            // float, up to 19 ulp at gamma = 2.5); float64 makes it < 1 float ulp
            const double g = double(k.gamma);
            apply(PowFactor{g});
        }
    }
    return maybe_outside_unit;
}

// ---------------------------------------------------------------- one block

// Computes elements [begin, end) of the call: checks, loss, optional output, sums.
// Stops at the first failed check and reports it (kind and flat index) in `out`.
template <class T, bool FromLogits, bool Focal, Options O>
void process_block(const Call& c, int64_t begin, int64_t end, BlockOut& out) {
    TileInputs<T> in(c);
    alignas(64) T ce_buf[kTile];
    alignas(64) T w_kept_buf[kTile];
    alignas(64) T kept_buf[kTile];
    alignas(64) T scratch_buf[kTile];
    alignas(64) double wide_buf[O == Options::general && Focal ? kTile : 1];
    alignas(64) int64_t code_buf[kTile];

    const LossParams<T> k(c);
    const bool omit = c.nan_policy == NanPolicy::omit;
    const bool weights_vary = in.weights_vary;
    const double w_const = c.weight_kind == WeightKind::scalar ? double(T(c.weight_scalar)) : 1.0;

    bool general_exp = false;  // (loss_tile: the previous tile needed the general exp)
    // Plain float32 logits with contiguous uint8 labels on AVX-512 (kU8Table): a tile whose every
    // |x| is within the softplus table and every label 0 or 1 takes plain_table_loop_u8 on the
    // labels as they are, with loss_tile's bits; one with an |x| beyond the table but none beyond
    // the normal exp's range (87.33) then takes plain_exp_loop on them (as float labels do in
    // loss_tile), and so does, first, the tile after one with no |x| within the table
    // (`u8_exp_first`), so that runs of large logits do not pay for both. Any other tile
    // converts the labels and takes loss_tile. After such a miss the next kU8Wait tiles go to
    // loss_tile directly, so that a call with |x| > 87.33 in most tiles does not pay for both
    // (an element's loss is the same either way). Under nan_policy "propagate" only: the other
    // policies read the labels as T.
    constexpr int kU8Wait = 32;
    int u8_wait = 0;
    bool u8_exp_first = false;
    [[maybe_unused]] alignas(64) uint8_t label_pad[kU8Table<T, FromLogits, Focal, O> ? kTile : 1];
    const bool u8_table = kU8Table<T, FromLogits, Focal, O> && c.y_true.dtype == DType::u8 && c.y_true.stride == 1 &&
                          c.nan_policy == NanPolicy::propagate;
    const int64_t bytes_per_element = dtype_bytes(c.y_true.dtype) + dtype_bytes(c.y_pred.dtype) +
                                      (c.weight_kind == WeightKind::per_element ? dtype_bytes(c.weight.dtype) : 0);
    const bool touch = c.line_fetch == LineFetch::touch && c.n >= kTouchFrom / bytes_per_element;  // (touch_lines)
    // Large calls whose labels and predictions the table loops read in place (float32 logits, and
    // float32 or uint8 labels, contiguous; no weights to read): those loops prefetch the next
    // tile as they go (vm::prefetch_ahead), and a tile after one of them is not touched.
    const bool in_place = std::is_same_v<T, float> && c.y_pred.dtype == DType::f32 && c.y_pred.stride == 1 &&
                          c.y_true.stride == 1 && (c.y_true.dtype == DType::f32 || u8_table);
    const bool ahead = touch && in_place && c.weight_kind != WeightKind::per_element;
    auto u8_table_tile = [&](int64_t i0, int64_t len) {
#if defined(FASTBCE_SOFTPLUS_TABLE)
        if constexpr (kU8Table<T, FromLogits, Focal, O>) {
            constexpr uint32_t exp_max = std::bit_cast<uint32_t>(vm::normal_exp_max<float>);
            const int64_t padded_len = in.load_pred(c, i0, len, T(0));
            const uint8_t* labels = static_cast<const uint8_t*>(c.y_true.data) + i0;
            if (padded_len != len) {  // (label 0 in the padding, as TileInputs::load)
                std::memcpy(label_pad, labels, size_t(len));
                std::memset(label_pad + len, 0, size_t(padded_len - len));
                labels = label_pad;
            }
            uint32_t max_label;
            bool none_within;
            if (!u8_exp_first) {
                const bool within = ahead ? plain_table_loop_u8<true>(labels, in.p, ce_buf, padded_len, max_label)
                                          : plain_table_loop_u8(labels, in.p, ce_buf, padded_len, max_label);
                if (within) return max_label <= 1;
                // (an |x| beyond the table: only the vectors that have one are formed again)
                if (!plain_beyond_vectors(labels, in.p, nullptr, ce_buf, padded_len, none_within)) return false;
                u8_exp_first = none_within;
                return max_label <= 1;
            } else if (std::bit_cast<uint32_t>(std::abs(in.p[0])) > exp_max) {
                return false;
            }
            const uint32_t max_abs_bits = plain_exp_loop(labels, in.p, nullptr, ce_buf, padded_len, max_label, none_within);
            const bool done = max_abs_bits <= exp_max;
            u8_exp_first = done && none_within;
            return done && max_label <= 1;
        }
#endif
        static_cast<void>(i0), static_cast<void>(len);
        return false;
    };
    bool fetched = false;  // (this tile's lines were prefetched by the previous tile's table loop)
    for (int64_t i0 = begin; i0 < end; i0 += kTile) {
        const int64_t len = std::min(kTile, end - i0);
        if (touch && !fetched) {
            touch_lines(c.y_true, i0, len);
            touch_lines(c.y_pred, i0, len);
            if (c.weight_kind == WeightKind::per_element) touch_lines(c.weight, i0, len);
            // the next tile of this block, while this one computes (prefetch_lines)
            const int64_t next_len = std::min(kTile, end - (i0 + kTile));
            prefetch_lines(c.y_true, i0 + kTile, next_len);
            prefetch_lines(c.y_pred, i0 + kTile, next_len);
            if (c.weight_kind == WeightKind::per_element) prefetch_lines(c.weight, i0 + kTile, next_len);
        }
        // The loss first: its loop also tells whether a label (or probability) is outside
        // [0, 1], which costs less there than a pass of its own (that pass was 11% of a plain
        // float32 logits call on v4). Nothing leaves this tile before the checks below.
        bool out_of_unit = false;
        const bool u8_try = u8_table && u8_wait == 0 && !general_exp;
        // (a table loop runs where the tile starts with one: loss_tile's, unless general_exp)
        fetched = ahead && ((u8_try && !u8_exp_first) || (kTableAhead<T, FromLogits, Focal, O> && !general_exp && !u8_table));
        if (u8_try && u8_table_tile(i0, len)) {
            // (done; no check below reads the labels: none is outside [0, 1] or NaN)
        } else {
            if (u8_table) u8_wait = u8_try ? kU8Wait : std::max(u8_wait - 1, 0);  // (see u8_table)
            const int64_t padded_len = in.load(c, i0, len, FromLogits ? T(0) : T(0.5));
            out_of_unit = loss_tile<T, FromLogits, Focal, O>(in.y, in.p, in.q, in.w, ce_buf, scratch_buf, wide_buf,
                                                             padded_len, k, general_exp, ahead && !u8_table);
        }
        const T *y = in.y, *p = in.p, *w = in.w;

        // Checks. The first offending element wins; at one element labels come before
        // predictions, weights and NaN.
        int64_t first = len;
        Fault fault = Fault::none;
        auto consider = [&](int64_t j, Fault f) {
            if (j < first) first = j, fault = f;
        };
        if (c.validate && out_of_unit) {
            consider(first_outside_unit(y, len), Fault::label_range);
            if (!FromLogits) consider(first_outside_unit(p, len), Fault::pred_range);
        }
        if (weights_vary) consider(first_bad_weight(w, len), Fault::weight_range);
        if (c.nan_policy == NanPolicy::raise) consider(first_nan(y, p, w, len), Fault::nan);
        if (fault != Fault::none) {
            out.fault = fault;
            out.fault_index = i0 + first;
            return;
        }

        if (c.out != nullptr) {
            T* dst = static_cast<T*>(c.out) + i0 * c.out_stride;
            if (c.out_stride == 1)
                std::memcpy(dst, ce_buf, size_t(len) * sizeof(T));
            else
                for (int64_t j = 0; j < len; ++j) dst[j * c.out_stride] = ce_buf[j];
        }
        if (out.groups != nullptr) {
            // One row per element (the usual case): the codes as given, no copy. A copy row by
            // row was a third of a grouped call.
            int64_t bad = -1;
            if (c.row_size != 1) {
                fill_by_row(i0, len, c.row_size, code_buf, [&](int64_t r) { return c.group_at(r); });
                bad = accumulate_groups(y, p, w, ce_buf, code_buf, len, omit, c.n_groups, out.groups);
            } else if (c.groups != nullptr) {
                bad = accumulate_groups(y, p, w, ce_buf, c.groups + i0, len, omit, c.n_groups, out.groups);
            } else {
                bad = accumulate_groups(y, p, w, ce_buf, c.groups32 + i0, len, omit, c.n_groups, out.groups);
            }
            if (bad >= 0) {
                out.fault = Fault::group_code;
                out.fault_index = i0 + bad;
                return;
            }
        }
        double count = double(len);
        const T* w_sum = w;  // the weights that count
        if (omit) {
            mask_omitted(y, p, w, ce_buf, w_kept_buf, kept_buf, len);
            count = sum_f64(kept_buf, len);
            w_sum = w_kept_buf;
        }
        out.sums.loss += sum_f64(ce_buf, len);
        out.sums.weight += weights_vary ? sum_f64(w_sum, len) : (count > 0 ? w_const * count : 0.0);
        out.sums.count += count;
    }
}

// Applies one vecmath function to n contiguous values (a hook for the per-tier accuracy tests).
template <class T>
void apply_math(MathFn fn, const void* x, void* y, int64_t n) {
    const T* in = static_cast<const T*>(x);
    T* res = static_cast<T*>(y);
    switch (fn) {
        case MathFn::exp: for (int64_t i = 0; i < n; ++i) res[i] = vm::exp(in[i]); break;
        case MathFn::log: for (int64_t i = 0; i < n; ++i) res[i] = vm::log(in[i]); break;
        case MathFn::log1p: for (int64_t i = 0; i < n; ++i) res[i] = vm::log1p(in[i]); break;
        case MathFn::log1p_small: for (int64_t i = 0; i < n; ++i) res[i] = vm::log1p_small(in[i]); break;
    }
}

template <class T>
void fill_blocks(BlockFn (&table)[2][2][3]) {
    constexpr Options plain = Options::plain, weighted = Options::weighted, general = Options::general;
    table[0][0][0] = &process_block<T, false, false, plain>;
    table[0][0][1] = &process_block<T, false, false, weighted>;
    table[0][0][2] = &process_block<T, false, false, general>;
    table[0][1][0] = &process_block<T, false, true, plain>;
    table[0][1][1] = &process_block<T, false, true, weighted>;
    table[0][1][2] = &process_block<T, false, true, general>;
    table[1][0][0] = &process_block<T, true, false, plain>;
    table[1][0][1] = &process_block<T, true, false, weighted>;
    table[1][0][2] = &process_block<T, true, false, general>;
    table[1][1][0] = &process_block<T, true, true, plain>;
    table[1][1][1] = &process_block<T, true, true, weighted>;
    table[1][1][2] = &process_block<T, true, true, general>;
}

inline Kernels make_kernels() {
    Kernels k{};
    k.math[0] = &apply_math<float>;
    k.math[1] = &apply_math<double>;
    fill_blocks<float>(k.block[0]);
    fill_blocks<double>(k.block[1]);
    return k;
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
