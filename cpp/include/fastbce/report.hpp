// The evaluation report's pass (docs/report.md), compiled once per SIMD tier with the kernel.
// Per tile it loads the input as process_block does, gets the loss without the sample weight
// from kernel.hpp's loss_tile (weights of 1), the plain cross-entropy from loss_tile with no
// options (or the same numbers when the call has none), p = sigmoid(x) in float64, and adds
// float64 sums, ECE bins, the AUC histogram and the largest losses of one chunk, in element order.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <memory>

#include "fastbce/kernel.hpp"
#include "fastbce/report_types.hpp"

namespace fastbce {
namespace FASTBCE_TIER {

// The AUC histogram's bin of a prediction: monotone non-decreasing in the prediction, so that
// rows in different bins are ordered as their predictions are (ties only within a bin).
// Logits: sign and the top bits of |x| as float32, |x| clamped to [2^-16, 2^16): 32 binades of
// 2^m bins per sign, each bin a relative width of at most 2^-m. Probabilities: the same on
// t = min(p, 1 - p) in [2^-32, 1/2] (1 - p is exact for p >= 1/2), p < 1/2 ascending and
// p >= 1/2 mirrored above: fine where p is near 0 or 1, as the logit would be. A coarser m is
// the finer bin shifted right (hist_bins(m) = 64 << m), so histograms of different m merge.
template <bool FromLogits, class T>
inline int32_t bin_of(T x, int m) {
    const int shift = 23 - m;
    const int32_t half = int32_t(32) << m;
    if constexpr (FromLogits) {
        constexpr uint32_t lo = uint32_t(127 - 16) << 23, hi = (uint32_t(127 + 16) << 23) - 1;
        const uint32_t a = std::bit_cast<uint32_t>(float(std::abs(x)));
        const int32_t idx = int32_t((std::clamp(a, lo, hi) - lo) >> shift);
        return x < T(0) ? half - 1 - idx : half + idx;
    } else {
        constexpr uint32_t lo = uint32_t(127 - 32) << 23, hi = (uint32_t(127) << 23) - 1;
        const T pc = x < T(0) ? T(0) : (x > T(1) ? T(1) : x);  // (unvalidated input)
        const bool low = pc < T(0.5);
        const uint32_t a = std::bit_cast<uint32_t>(float(low ? pc : T(1) - pc));
        const int32_t idx = int32_t((std::clamp(a, lo, hi) - lo) >> shift);
        return low ? idx : 2 * half - 1 - idx;
    }
}

// ECE bin of p: min(floor(10 p), 9); NaN and p < 0 in bin 0.
inline int ece_bin(double p) {
    const double t = p * 10.0;
    return t > 0.0 ? std::min(int(t), kEceBins - 1) : 0;
}

// Keeps the top_k entries that rank first (ranks_before) in a heap whose root ranks last.
inline void offer_top(ReportPart& out, int64_t k, const TopLoss& e) {
    auto worse_first = [](const TopLoss& a, const TopLoss& b) { return ranks_before(a, b); };
    if (out.top_size < k) {
        out.top[out.top_size++] = e;
        std::push_heap(out.top, out.top + out.top_size, worse_first);
    } else if (ranks_before(e, out.top[0])) {
        std::pop_heap(out.top, out.top + out.top_size, worse_first);
        out.top[out.top_size - 1] = e;
        std::push_heap(out.top, out.top + out.top_size, worse_first);
    }
}

// Per-row values of one tile in float64, zero for rows that count nowhere (kept = 0).
struct ReportTile {
    alignas(64) double w[kTile], y[kTile], l[kTile], bce[kTile], p[kTile], kept[kTile];
    alignas(64) double omitted[kTile], ignored[kTile];
    alignas(64) double terms[rs_w2l2 + 1][kTile];  // the addends of rs_w .. rs_w2l2
    alignas(64) int32_t bin[kTile];
    alignas(64) int32_t ece[kTile];      // 3 * the ECE bin
    alignas(64) double ece_bin[kTile];   // the ECE bin (as a double: compared in vector lanes)
    alignas(64) int64_t code[kTile];
};

// The ECE sums of a tile, (sum w, sum w*p, sum w*y) per bin, added to e[0, 30): each bin's
// three sums as masked vector adds over lanes of the tier's width (a scatter of each row into
// its bin made runs of rows in one bin wait on each other's stores), then the lanes in order
// and the rows past the last whole vector one by one.
inline void add_ece(const ReportTile& t, int64_t len, double* e) {
    constexpr int L = kSumLanes;
    using V = LaneVec<double, L>::type;
    V acc[3 * kEceBins] = {};
    int64_t j = 0;
    for (; j + L <= len; j += L) {
        V w, wp, wy, bin;
        std::memcpy(&w, t.w + j, sizeof w);
        std::memcpy(&wp, t.terms[rs_wp] + j, sizeof wp);
        std::memcpy(&wy, t.terms[rs_wy] + j, sizeof wy);
        std::memcpy(&bin, t.ece_bin + j, sizeof bin);
        const V zero = {};
        for (int b = 0; b < kEceBins; ++b) {
            const auto in = bin == double(b);
            acc[3 * b] += in ? w : zero;
            acc[3 * b + 1] += in ? wp : zero;
            acc[3 * b + 2] += in ? wy : zero;
        }
    }
    for (int k = 0; k < 3 * kEceBins; ++k) {
        double lanes[L];
        std::memcpy(lanes, &acc[k], sizeof lanes);
        for (int l = 0; l < L; ++l) e[k] += lanes[l];
    }
    for (; j < len; ++j) {
        double* bin = e + 3 * int(t.ece_bin[j]);
        bin[0] += t.w[j];
        bin[1] += t.terms[rs_wp][j];
        bin[2] += t.terms[rs_wy][j];
    }
}

// Adds the tile's row values to one scope's sums (rows in element order).
inline void add_row(double* s, double* hist, const ReportTile& t, int64_t j) {
    s[rs_count] += t.kept[j];
    for (int r = rs_w; r <= rs_w2l2; ++r) s[r] += t.terms[r][j];
    s[rs_omitted] += t.omitted[j];
    s[rs_ignored] += t.ignored[j];
    double* e = s + rs_ece + t.ece[j];
    e[0] += t.w[j];
    e[1] += t.terms[rs_wp][j];
    e[2] += t.terms[rs_wy][j];
    if (hist != nullptr) {
        hist[2 * t.bin[j]] += t.terms[rs_wy][j];
        hist[2 * t.bin[j] + 1] += t.terms[rs_wn][j];
    }
}

// Fills the tile's float64 row values from the working-type loss `l`, weighted loss `ce` (the
// elementwise loss of reduction="none", so that "sum" is its sum), plain loss `bce`,
// labels, (offset) predictions and weights; `skip` marks ignored rows. Plain loops over the
// tile, each of which GCC vectorises (selects, no branches).
template <bool FromLogits, class T>
inline void fill_tile(ReportTile& t, const T* y, const T* x, const T* w, const T* l, const T* ce,
                      const T* bce, const T* skip, bool omit, int64_t len) {
    // the flags in T first (one vector width), then widened: mixed widths kept GCC scalar here
    alignas(64) T omitted[kTile];
    const T omit_t = omit ? T(1) : T(0);
    for (int64_t j = 0; j < len; ++j) {
        const T nan = vm::detail::select((y[j] != y[j]) | (x[j] != x[j]) | (w[j] != w[j]), T(1), T(0));
        omitted[j] = nan * omit_t * (T(1) - skip[j]);
    }
    for (int64_t j = 0; j < len; ++j) {
        t.ignored[j] = double(skip[j]);
        t.omitted[j] = double(omitted[j]);
        t.kept[j] = 1.0 - double(skip[j]) - double(omitted[j]);
    }
    if constexpr (FromLogits) {
        // sigmoid from z = exp(-|x|) in float64: 1/(1+z) for x >= 0, z/(1+z) below
        for (int64_t j = 0; j < len; ++j) t.p[j] = vm::exp_nonpositive(-std::abs(double(x[j])));  // FASTBCE_VEC_LOOP
        for (int64_t j = 0; j < len; ++j) {
            const double z = t.p[j];
            t.p[j] = vm::detail::select(x[j] >= T(0), 1.0, z) / (1.0 + z);
        }
    } else {
        for (int64_t j = 0; j < len; ++j) t.p[j] = double(x[j]);
    }
    for (int64_t j = 0; j < len; ++j) {
        const bool keep = t.kept[j] != 0.0;
        t.w[j] = vm::detail::select(keep, double(w[j]), 0.0);
        t.y[j] = vm::detail::select(keep, double(y[j]), 0.0);
        t.l[j] = vm::detail::select(keep, double(l[j]), 0.0);
        t.terms[rs_wl][j] = vm::detail::select(keep, double(ce[j]), 0.0);
        t.bce[j] = vm::detail::select(keep, double(bce[j]), 0.0);
        t.p[j] = vm::detail::select(keep, t.p[j], 0.0);
    }
    for (int64_t j = 0; j < len; ++j) {  // (the histogram's and the ECE's addends)
        t.terms[rs_wy][j] = t.w[j] * t.y[j];
        t.terms[rs_wn][j] = t.w[j] * (1.0 - t.y[j]);
        t.terms[rs_wp][j] = t.w[j] * t.p[j];
    }
}

// The other addends per row, for the groups (the whole input sums them in add_terms).
inline void fill_terms(ReportTile& t, int64_t len) {
    for (int64_t j = 0; j < len; ++j) {
        // a zero factor wins over an infinite loss (times_weight), as in the kernel's sums
        const double wd = t.w[j], yd = t.y[j], ld = t.l[j], d = t.p[j] - yd;
        const double wy = t.terms[rs_wy][j], wn = t.terms[rs_wn][j], w2 = wd * wd;
        t.terms[rs_w][j] = wd;
        t.terms[rs_wbce][j] = times_weight(wd, t.bce[j]);
        t.terms[rs_wsq][j] = wd * d * d;
        t.terms[rs_wyl][j] = times_weight(wy, ld);
        t.terms[rs_wnl][j] = times_weight(wn, ld);
        t.terms[rs_w2][j] = w2;
        t.terms[rs_w2l][j] = times_weight(w2, ld);
        t.terms[rs_w2l2][j] = times_weight(times_weight(w2, ld), ld);
    }
}

// The sums rs_w .. rs_w2l2 of a tile for the whole input: each addend formed in vector lanes of
// the tier's width and added to its own accumulator (no per-row buffers), then the lanes in
// order and the rows past the last whole vector one by one, with the formulas of fill_terms.
inline void add_terms(const ReportTile& t, int64_t len, double* sums) {
    constexpr int L = kSumLanes;
    using V = LaneVec<double, L>::type;
    V acc[rs_w2l2 + 1] = {};
    const V zero = {};
    const V one = zero + 1.0;
    auto tw = [&](V a, V b) { return a == zero ? zero : a * b; };
    auto load = [](const double* from) {
        V v;
        std::memcpy(&v, from, sizeof v);
        return v;
    };
    int64_t j = 0;
    for (; j + L <= len; j += L) {
        const V w = load(t.w + j), y = load(t.y + j), l = load(t.l + j), p = load(t.p + j);
        const V wy = w * y, wn = w * (one - y), w2 = w * w, d = p - y;
        acc[rs_w] += w;
        acc[rs_wl] += load(t.terms[rs_wl] + j);
        acc[rs_wbce] += tw(w, load(t.bce + j));
        acc[rs_wy] += wy;
        acc[rs_wn] += wn;
        acc[rs_wp] += w * p;
        acc[rs_wsq] += w * d * d;
        acc[rs_wyl] += tw(wy, l);
        acc[rs_wnl] += tw(wn, l);
        acc[rs_w2] += w2;
        acc[rs_w2l] += tw(w2, l);
        acc[rs_w2l2] += tw(tw(w2, l), l);
    }
    for (int r = rs_w; r <= rs_w2l2; ++r) {
        double lanes[L];
        std::memcpy(lanes, &acc[r], sizeof lanes);
        for (int k = 0; k < L; ++k) sums[r] += lanes[k];
    }
    for (; j < len; ++j) {
        const double wd = t.w[j], yd = t.y[j], ld = t.l[j], d = t.p[j] - yd;
        const double wy = wd * yd, wn = wd * (1.0 - yd), w2 = wd * wd;
        sums[rs_w] += wd;
        sums[rs_wl] += t.terms[rs_wl][j];
        sums[rs_wbce] += times_weight(wd, t.bce[j]);
        sums[rs_wy] += wy;
        sums[rs_wn] += wn;
        sums[rs_wp] += wd * t.p[j];
        sums[rs_wsq] += wd * d * d;
        sums[rs_wyl] += times_weight(wy, ld);
        sums[rs_wnl] += times_weight(wn, ld);
        sums[rs_w2] += w2;
        sums[rs_w2l] += times_weight(w2, ld);
        sums[rs_w2l2] += times_weight(times_weight(w2, ld), ld);
    }
}

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
    alignas(64) T y_buf[kTile], p_buf[kTile], x_buf[kTile], w_buf[kTile], q_buf[kTile], ones[kTile];
    alignas(64) T l_buf[kTile], ce_buf[kTile], bce_buf[kTile], scratch[kTile];
    alignas(64) double wide[General && Focal ? kTile : 1];
    alignas(64) T skip[kTile];  // 1 for rows with the ignore label
    const auto tile = std::make_unique<ReportTile>();  // (too large for some threads' stacks)
    ReportTile& t = *tile;

    const LossParams<T> k(c);
    Call plain_call = c;  // bce: the same epsilon, no other option
    plain_call.label_smoothing = 0.0;
    plain_call.gamma = 0.0;
    plain_call.has_alpha = false;
    const LossParams<T> k_plain(plain_call);
    const bool per_class = c.pos_weight != nullptr;
    const bool omit = c.nan_policy == NanPolicy::omit;
    const bool weights_vary = c.weight_kind == WeightKind::per_row || c.weight_kind == WeightKind::per_element;
    const T w_const = c.weight_kind == WeightKind::scalar ? T(c.weight_scalar) : T(1);
    const T offset = T(s.logit_offset);
    const T ignore = T(s.ignore_label);
    if (!per_class) std::fill_n(q_buf, kTile, T(c.pos_weight_scalar));
    if (!weights_vary) std::fill_n(w_buf, kTile, w_const);
    std::fill_n(ones, kTile, T(1));

    bool exp_l = false, exp_ce = false, exp_bce = false;  // (loss_tile's hints, one per loss)
    for (int64_t i0 = begin; i0 < end; i0 += kTile) {
        const int64_t len = std::min(kTile, end - i0);
        const T* y = load_tile<T>(c.y_true, i0, len, y_buf);
        const T* pred = load_tile<T>(c.y_pred, i0, len, p_buf);
        const T* w = w_buf;
        if (c.weight_kind == WeightKind::per_element)
            w = load_tile<T>(c.weight, i0, len, w_buf);
        else if (c.weight_kind == WeightKind::per_row)
            fill_by_row(i0, len, c.row_size, w_buf, [&](int64_t r) { return load_one<T>(c.weight, r); });
        if (per_class) fill_by_class(static_cast<const T*>(c.pos_weight), c.n_classes, i0, len, q_buf);
        // a partial tile padded as process_block pads it, so that the loss loops see the same
        // lengths and give the same bits; only [0, len) is used below
        const int64_t padded_len = (len + kPad - 1) / kPad * kPad;
        if (padded_len != len) {
            y = pad_tile(y, y_buf, len, padded_len, T(0));
            pred = pad_tile(pred, p_buf, len, padded_len, FromLogits ? T(0) : T(0.5));
            if (weights_vary) w = pad_tile(w, w_buf, len, padded_len, T(1));
            if (per_class) std::fill(q_buf + len, q_buf + padded_len, T(1));
        }
        const T* x = pred;
        if (FromLogits && s.logit_offset != 0.0) {
            for (int64_t j = 0; j < padded_len; ++j) x_buf[j] = pred[j] + offset;
            x = x_buf;
        }
        const T has_ignore = s.has_ignore ? T(1) : T(0);
        for (int64_t j = 0; j < len; ++j) skip[j] = has_ignore * vm::detail::select(y[j] == ignore, T(1), T(0));

        const bool outside =
            loss_tile<T, FromLogits, Focal, O>(y, x, q_buf, ones, l_buf, scratch, wide, padded_len, k, exp_l);
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
            loss_tile<T, FromLogits, Focal, Ow>(y, x, q_buf, w, ce_buf, scratch, wide, padded_len, k, exp_ce);
            ce = ce_buf;
        }
        const T* bce = l_buf;
        if constexpr (!bce_is_loss) {
            loss_tile<T, FromLogits, false, Options::plain>(y, x, q_buf, ones, bce_buf, scratch, wide, padded_len,
                                                            k_plain, exp_bce);
            bce = bce_buf;
        }
        fill_tile<FromLogits>(t, y, x, w, l_buf, ce, bce, skip, omit, len);

        // the whole input: vector sums of each term (sum_f64's fixed order), then the bins
        out.sums[rs_count] += sum_f64(t.kept, len);
        add_terms(t, len, out.sums);
        out.sums[rs_omitted] += sum_f64(t.omitted, len);
        out.sums[rs_ignored] += sum_f64(t.ignored, len);
        for (int64_t j = 0; j < len; ++j) t.bin[j] = bin_of<FromLogits>(x[j], s.mantissa_bits);
        for (int64_t j = 0; j < len; ++j) t.ece_bin[j] = double(ece_bin(t.p[j]));
        for (int64_t j = 0; j < len; ++j) t.ece[j] = 3 * int32_t(t.ece_bin[j]);
        add_ece(t, len, out.sums + rs_ece);
        for (int64_t j = 0; j < len; ++j) {
            out.hist[2 * t.bin[j]] += t.terms[rs_wy][j];
            out.hist[2 * t.bin[j] + 1] += t.terms[rs_wn][j];
        }

        // each slicing: every row into its group's sums
        if (s.n_slicings > 0) fill_terms(t, len);
        for (int64_t sl = 0; sl < s.n_slicings; ++sl) {
            const ReportSlicing& g = s.slicings[sl];
            fill_by_row(i0, len, c.row_size, t.code, [&](int64_t r) { return g.codes[r]; });
            const int64_t bins = hist_bins(g.mantissa_bits);
            const bool same_bins = g.mantissa_bits == s.mantissa_bits;
            for (int64_t j = 0; j < len; ++j) {
                if (g.hist != nullptr && !same_bins) t.bin[j] = bin_of<FromLogits>(x[j], g.mantissa_bits);
                double* hist = g.hist != nullptr ? out.slice_hist[sl] + 2 * bins * t.code[j] : nullptr;
                add_row(out.slice_sums[sl] + rs_size * t.code[j], hist, t, j);
            }
            if (g.hist != nullptr && !same_bins)  // (the next slicing recomputes its own)
                for (int64_t j = 0; j < len; ++j) t.bin[j] = bin_of<FromLogits>(x[j], s.mantissa_bits);
        }

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
                const int64_t code = s.n_slicings > 0 ? s.slicings[0].codes[row / c.row_size] : -1;
                offer_top(out, s.top_k, TopLoss{t.l[j], row, t.w[j], t.y[j], double(pred[j]), code});
            }
        }
    }
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
    return k;
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
