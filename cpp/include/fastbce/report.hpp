// The evaluation report's pass (docs/report.md), compiled once per SIMD tier with the kernel.
// Per tile it loads the input as process_block does (TileInputs), gets the loss without the
// sample weight from kernel.hpp's loss_tile (weights of 1), the plain cross-entropy from
// loss_tile with no options (or the same numbers when the call has none), then in one loop over
// float64 vector lanes p = sigmoid(x) and every float64 sum (add_tile), and one scattered add
// per row into the AUC histogram and the ECE bins (add_bins); groups and the largest losses
// take the rows one by one. The per-tile parts are in report_tile.hpp, the groups' in
// report_groups.hpp, the float64 lane arithmetic in report_lanes.hpp; here the checks of a tile
// and the pass over a chunk (report_chunk).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "fastbce/kernel.hpp"
#include "fastbce/report_groups.hpp"
#include "fastbce/report_tile.hpp"
#include "fastbce/report_types.hpp"

namespace fastbce {
namespace FASTBCE_TIER {

// First row of the tile that fails a check, with the fault; rows with the ignore label are not
// checked. Labels come before predictions, weights and NaN at one row, as in process_block.
template <bool FromLogits, class T>
inline int64_t first_fault(const Call& c, const T* y, const T* pred, const T* w, const T* skip,
                           bool maybe_outside, bool weights_vary, int64_t len, Fault& fault) {
    const bool check_range = c.validate && maybe_outside;
    const bool raise = c.nan_policy == NanPolicy::raise;
    if (!check_range && !weights_vary && !raise) return len;
    for (int64_t j = 0; j < len; ++j) {
        if (skip[j] != T(0)) continue;
        if (check_range && (y[j] < T(0) || y[j] > T(1))) return fault = Fault::label_range, j;
        if (check_range && !FromLogits && (pred[j] < T(0) || pred[j] > T(1)))
            return fault = Fault::pred_range, j;
        if (weights_vary && (w[j] < T(0) || w[j] == inf<T>)) return fault = Fault::weight_range, j;
        if (raise && (y[j] != y[j] || pred[j] != pred[j] || w[j] != w[j])) return fault = Fault::nan, j;
    }
    return len;
}

// The report over elements [begin, end) of the call, added to `out` (zeroed by the caller).
// General: the call has label smoothing, pos_weight or (without focal) alpha.
template <class T, bool FromLogits, bool Focal, bool General>
void report_chunk(const Call& c, const ReportSpec& s, int64_t begin, int64_t end, ReportPart& out) {
    constexpr Options O = General ? Options::general : Options::plain;
    constexpr bool bce_is_loss = !General && !Focal;
    const auto inputs = std::make_unique<TileInputs<T>>(c);  // (as process_block loads them)
    TileInputs<T>& in = *inputs;
    alignas(64) T x_buf[kTile], ones[kTile];
    alignas(64) T l_buf[kTile], ce_buf[kTile], bce_buf[kTile], scratch[kTile];
    alignas(64) double wide[General && Focal ? kTile : 1];
    alignas(64) T skip[kTile];  // 1 for rows with the ignore label
    // float64 labels of a float call: the report takes them as given (y, docs/report.md), for
    // its sums of y, the ignore label and top_losses; the loss takes them in float, as the
    // kernel's loss does
    constexpr bool float_call = std::is_same_v<T, float>;
    const bool labels_given = float_call && c.y_true.dtype == DType::f64;
    alignas(64) double given_buf[float_call ? kTile : 1];
    const auto tile = std::make_unique<ReportTile>();  // (too large for some threads' stacks)
    ReportTile& t = *tile;
    const auto row_flags = std::make_unique<RowFlags<T>>();
    RowFlags<T>& flags = *row_flags;
    LaneSums lane_sums;
    const auto ece_copies = std::make_unique<EceCopies>();
    HistCountBuffer& counts = *out.counts;  // (the call's: report.cpp adds them when it succeeds)
    CountedAdds counted_adds{counts.count, counts.overflow, &counts.overflowed, &ece_copies->hard[0][0][0], &t};
    const GroupCells cells(s, end - begin);
    const bool rows = s.n_slicings > 0 || s.top_k > 0;  // (groups and top_losses need the rows)
    const bool groups = s.n_slicings > 0;                // (and groups each row's record)

    const LossParams<T> k(c);
    Call plain_call = c;  // bce: the same epsilon, no other option
    plain_call.label_smoothing = 0.0;
    plain_call.gamma = 0.0;
    plain_call.has_alpha = false;
    const LossParams<T> k_plain(plain_call);
    const bool omit = c.nan_policy == NanPolicy::omit;
    const bool weights_vary = in.weights_vary;
    const T w_const = c.weight_kind == WeightKind::scalar ? T(c.weight_scalar) : T(1);
    const T offset = T(s.logit_offset);
    const T ignore = T(s.ignore_label);
    std::fill_n(ones, kTile, T(1));
    std::fill_n(skip, kTile, T(0));

    bool exp_l = false, exp_ce = false, exp_bce = false;  // (loss_tile's hints, one per loss)
    for (int64_t i0 = begin; i0 < end; i0 += kTile) {
        const int64_t len = std::min(kTile, end - i0);
        // padded as process_block pads, so that the loss loops see the same lengths and give
        // the same bits; only [0, len) is used below
        const int64_t padded_len = in.load(c, i0, len, FromLogits ? T(0) : T(0.5));
        const T *y = in.y, *pred = in.p, *w = in.w;
        const T* x = pred;
        const double* given = nullptr;  // (labels_given: the tile's labels as given, padded with 0)
        if constexpr (float_call) {
            if (labels_given) {
                given = load_tile<double>(c.y_true, i0, len, given_buf);
                if (padded_len != len) given = pad_tile(given, given_buf, len, padded_len, 0.0);
            }
        }
        if (FromLogits && s.logit_offset != 0.0) {
            for (int64_t j = 0; j < padded_len; ++j) x_buf[j] = pred[j] + offset;
            x = x_buf;
        }
        if (s.has_ignore && given != nullptr)
            for (int64_t j = 0; j < padded_len; ++j) skip[j] = given[j] == s.ignore_label ? T(1) : T(0);
        else if (s.has_ignore)  // (otherwise zero from the start)
            for (int64_t j = 0; j < padded_len; ++j) skip[j] = vm::detail::select(y[j] == ignore, T(1), T(0));

        const bool outside =
            loss_tile<T, FromLogits, Focal, O>(y, x, in.q, ones, l_buf, scratch, wide, padded_len, k, exp_l);
        Fault fault = Fault::none;
        const int64_t bad = first_fault<FromLogits>(c, y, pred, w, skip, outside, weights_vary, len, fault);
        if (bad < len) {
            out.fault = fault;
            out.fault_index = i0 + bad;
            return;
        }
        // w * l exactly as reduction="none" gives it: the kernel at the call's own options level
        // (its rounding of the product, and its contractions, differ from level to level)
        const bool weighted = weights_vary || w_const != T(1);
        constexpr Options Ow = General ? Options::general : Options::weighted;
        const T* ce = l_buf;
        if (weighted) {
            loss_tile<T, FromLogits, Focal, Ow>(y, x, in.q, w, ce_buf, scratch, wide, padded_len, k, exp_ce);
            ce = ce_buf;
        }
        const T* bce = l_buf;
        if constexpr (!bce_is_loss) {
            loss_tile<T, FromLogits, false, Options::plain>(y, x, in.q, ones, bce_buf, scratch, wide, padded_len,
                                                            k_plain, exp_bce);
            bce = bce_buf;
        }
        flags.fill(y, x, w, skip, omit, !omit && !s.has_ignore, weighted || rows, len, padded_len);
        if (given != nullptr && flags.hard) {  // (a label within float's rounding of 0 or 1 is soft)
            int soft = 0;
            for (int64_t j = 0; j < padded_len; ++j) soft |= int(given[j] * (1.0 - given[j]) != 0.0);
            flags.hard = soft == 0;
        }
        // the labels of the sums: as given where they differ from y (soft float64 labels of a
        // float call); 0 and 1 are the same in T
        const bool soft_given = given != nullptr && !flags.hard;
        if constexpr (FromLogits) exp_neg_abs_wide(x, t.z, padded_len);  // (in float64)
        // no sample weight and every row counts: the weights are the constant 1
        const bool unit = !weighted && flags.all_kept;
        // (the groups' records: none when every slicing adds this tile's rows to its cells)
        const bool records = groups && !(flags.hard && unit && cells.all(s));
        // (unit: ce is l_buf too). With groups whose cells take every row (no records) and no
        // largest losses, the groups need only t.l and t.y besides p and the bins: the lean
        // pass stores them (Rows), where the full one stored every per-row value
        const bool lean = unit && flags.hard && bce_is_loss && (!rows || (!records && s.top_k == 0));
        if (!lean) counted_adds.finish();  // (the previous tile's held adds, before t.p changes)
        if (lean && rows)
            add_tile<FromLogits, true, true, true>(t, lane_sums, flags, y, x, w, l_buf, ce, bce, padded_len,
                                                   false, &counted_adds);
        else if (lean)
            add_tile<FromLogits, false, true, true>(t, lane_sums, flags, y, x, w, l_buf, ce, bce, padded_len,
                                                    groups, &counted_adds);
        else {
            auto fused = [&](const auto* labels) {  // (lean tiles have labels 0 or 1: y itself)
                if (rows)
                    unit ? add_tile<FromLogits, true, true, false>(t, lane_sums, flags, labels, x, w, l_buf, ce,
                                                                   bce, padded_len, records)
                         : add_tile<FromLogits, true, false, false>(t, lane_sums, flags, labels, x, w, l_buf, ce,
                                                                    bce, padded_len, records);
                else
                    unit ? add_tile<FromLogits, false, true, false>(t, lane_sums, flags, labels, x, w, l_buf, ce,
                                                                    bce, padded_len, groups)
                         : add_tile<FromLogits, false, false, false>(t, lane_sums, flags, labels, x, w, l_buf, ce,
                                                                     bce, padded_len, groups);
            };
            if (soft_given)
                fused(given);
            else
                fused(y);
        }
        const int m = s.mantissa_bits;
        if (lean)
            add_bins<FromLogits, true, true, true>(t, x, y, m, groups, len, out, *ece_copies, &counts,
                                                   &counted_adds);
        else if (flags.hard && unit)
            add_bins<FromLogits, true, true>(t, x, y, m, groups, len, out, *ece_copies, &counts, &counted_adds);
        else if (flags.hard)
            add_bins<FromLogits, true>(t, x, y, m, groups, len, out, *ece_copies);
        else
            add_bins<FromLogits, false>(t, x, y, m, groups, len, out, *ece_copies);

        if (groups) add_groups<FromLogits>(c, s, t, x, bce, i0, len, flags.hard && unit, cells, out);

        // the largest losses: a tile whose largest kept loss cannot enter is skipped
        if (s.top_k > 0) {
            const bool full = out.top_size == s.top_k;
            const double floor_loss = full ? out.top[0].loss : -inf<double>;
            double largest = -inf<double>;
            for (int64_t j = 0; j < len; ++j) largest = std::max(largest, t.kept[j] > 0.0 ? t.l[j] : -inf<double>);
            if (full && !(largest > floor_loss)) continue;
            for (int64_t j = 0; j < len; ++j) {
                if (t.kept[j] == 0.0 || t.l[j] != t.l[j]) continue;  // (a NaN loss ranks nowhere)
                const int64_t row = i0 + j;
                const int64_t code = s.n_slicings > 0 ? s.slicings[0].code_at(row / c.row_size) : -1;
                offer_top(out, s.top_k, TopLoss{t.l[j], row, t.w[j], t.y[j], double(pred[j]), code});
            }
        }
    }
    counted_adds.finish();
    cells.fold(s, out);
    lane_sums.add_to(out.sums);
    ece_copies->add_to(out.sums + rs_ece);
}

template <class T>
void fill_report(ReportFn (&table)[2][2][2]) {
    table[0][0][0] = &report_chunk<T, false, false, false>;
    table[0][0][1] = &report_chunk<T, false, false, true>;
    table[0][1][0] = &report_chunk<T, false, true, false>;
    table[0][1][1] = &report_chunk<T, false, true, true>;
    table[1][0][0] = &report_chunk<T, true, false, false>;
    table[1][0][1] = &report_chunk<T, true, false, true>;
    table[1][1][0] = &report_chunk<T, true, true, false>;
    table[1][1][1] = &report_chunk<T, true, true, true>;
}

inline ReportKernels make_report_kernels() {
    ReportKernels k{};
    fill_report<float>(k.fn[0]);
    fill_report<double>(k.fn[1]);
    k.add_counts = &add_counts;
    return k;
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
