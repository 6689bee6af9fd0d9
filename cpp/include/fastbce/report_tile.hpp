// The evaluation report's per-tile work (report.hpp), compiled once per SIMD tier: the bins of
// a prediction (bin_of, ece_bin), the tile's row values and flags (ReportTile, RowFlags), the
// fused pass of float64 sums (add_tile), the scattered adds into the AUC histogram and the
// ECE bins (CountedAdds, EceCopies, add_bins) and a call's byte counts added to the histogram
// (add_counts).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "fastbce/kernel.hpp"
#include "fastbce/report_lanes.hpp"
#include "fastbce/report_types.hpp"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

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
[[gnu::always_inline]] inline int32_t bin_of(T x, int m) {  // (inlined: its loops vectorise)
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

// ECE bin of p: min(floor(10 p), 9); NaN and p < 0 in bin 0 (clamped before the conversion:
// an unvalidated probability can be anything; p from logits is in [0, 1] or NaN, so only NaN
// needs the clamp before it). A plain loop of it vectorises.
template <bool FromLogits = false>
[[gnu::always_inline]] inline int32_t ece_bin(double p) {
    double t = p * 10.0;
    t = t > 0.0 ? t : 0.0;
    if constexpr (FromLogits) return std::min(int32_t(t), kEceBins - 1);
    t = t < double(kEceBins - 1) ? t : double(kEceBins - 1);
    return int32_t(t);
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

// Per-row values of one tile in float64, zero for rows that count nowhere (kept = 0). The
// fused pass (add_tile) always fills w, p and the addends wy, wn, wp of the bins; the rest only
// when groups or the largest losses need the rows. Columns are kTileStride apart, not kTile: at
// 4 KiB apart every column's j-th value fell in one L1 set, and a loop over a dozen columns
// evicted its own lines. `rec` holds each row's group addends side by side (store_records).
constexpr int64_t kTileStride = kTile + 8;
constexpr int kRecord = 16;  // rs_count .. rs_ignored, then one unused value
struct ReportTile {
    alignas(64) double w[kTileStride], y[kTileStride], l[kTileStride];
    alignas(64) double p[kTileStride], kept[kTileStride];
    alignas(64) double z[kTileStride];  // exp(-|x|) (logits)
    // the bins' addends, indexed by ReportSum: only rs_wy, rs_wn and rs_wp are filled
    alignas(64) double terms[rs_w2l2 + 1][kTileStride];
    alignas(64) double rec[kTile][kRecord];  // a row's addends of rs_count .. rs_ignored
    alignas(64) int32_t bin[kTile];    // the AUC histogram's bin (bin_of)
    alignas(64) int32_t ece[kTile];    // the ECE bin
    alignas(64) int32_t hslot[kTile];  // where add_bins adds the row in the histogram
    alignas(64) int32_t eslot[kTile];  // and in EceCopies
    alignas(64) int64_t code[kTile];
};

// The row flags of one padded tile in the working type (one vector width): kept, omitted
// (NaN under "omit") and ignored (the ignore label); rows past `len` are none of them.
template <class T>
struct RowFlags {
    alignas(64) T kept[kTile], omitted[kTile], ignored[kTile];
    bool all_kept = false;  // every row of [0, padded_len) counts
    bool hard = false;      // every label is 0 or 1

    // plain: no row is left out or ignored (nan_policy other than "omit", no ignore label);
    // the arrays are then written only if `arrays` (add_tile reads them unless Unit)
    void fill(const T* y, const T* x, const T* w, const T* skip, bool omit, bool plain, bool arrays,
              int64_t len, int64_t padded_len) {
        if (plain) {  // (the common case: only the labels need a look)
            int soft = 0;
            for (int64_t j = 0; j < padded_len; ++j) soft |= int(y[j] * (T(1) - y[j]) != T(0));
            hard = soft == 0;
            all_kept = len == padded_len;
            if (arrays || !all_kept) {
                for (int64_t j = 0; j < padded_len; ++j) {
                    kept[j] = vm::detail::select(j < len, T(1), T(0));
                    omitted[j] = ignored[j] = T(0);
                }
            }
            return;
        }
        const T omit_t = omit ? T(1) : T(0);
        int left_out = 0, soft = 0;  // (integer ors: a float sum would not vectorise)
        for (int64_t j = 0; j < padded_len; ++j) {
            const T in = vm::detail::select(j < len, T(1), T(0));
            const T nan = vm::detail::select((y[j] != y[j]) | (x[j] != x[j]) | (w[j] != w[j]), T(1), T(0));
            ignored[j] = in * skip[j];
            omitted[j] = in * nan * omit_t * (T(1) - skip[j]);
            kept[j] = in - ignored[j] - omitted[j];
            left_out |= int(kept[j] != T(1));
            soft |= int(y[j] * (T(1) - y[j]) != T(0));  // (NaN too)
        }
        all_kept = left_out == 0;
        hard = soft == 0;
    }
};

// Row j's addends of rs_count .. rs_ignored side by side in t.rec[j] (for the groups' sums):
// the 15 vectors of kSumLanes rows (and one of zeros) transposed in blocks.
inline void store_records(ReportTile& t, int64_t j, F64 (&col)[kRecord]) {
    static_assert(kRecord % kSumLanes == 0 && rs_ignored < kRecord);
    for (int b = 0; b < kRecord; b += kSumLanes) {
        transpose(col + b);
        for (int i = 0; i < kSumLanes; ++i) std::memcpy(t.rec[j + i] + b, &col[b + i], sizeof(F64));
    }
}

// The scattered adds of counted rows (weight 1, labels 0 or 1; add_bins' Counted path): a byte
// count in the AUC histogram (a wrap to 0 adds 256 to the float64 entry) and (1, p) into the
// row's ECE bin (EceCopies::hard). A common tile's adds wait (`held` rows of the tile's slots)
// until the next tile's add_tile, whose loop adds them a block of rows at a time before it
// overwrites their p: these scalar adds then run beside that loop's vector operations, where a
// pass of their own waited on them. The rows are added in the same order, so with the same bits.
struct CountedAdds {
    uint8_t* count = nullptr;
    double* hist = nullptr;  // where a count's wrap to 0 adds 256 (HistCountBuffer::overflow)
    bool* wrapped = nullptr;
    double* ece = nullptr;
    const ReportTile* tile = nullptr;
    int64_t held = 0;  // rows [0, held) of the tile's slots (t.hslot, t.eslot, t.p) wait

    [[gnu::always_inline]] void add(int64_t from, int64_t to) const {
        // (locals: the byte stores may alias anything, members would be loaded again each row)
        uint8_t* const c = count;
        double* const h = hist;
        double* const e = ece;
        const int32_t* const hslot = tile->hslot;
        const int32_t* const eslot = tile->eslot;
        const double* const p = tile->p;
        for (int64_t j = from; j < to; ++j) {
            if (++c[hslot[j]] == 0) [[unlikely]] {
                h[hslot[j]] += 256.0;
                *wrapped = true;
            }
            double* b = e + eslot[j];
            b[0] += 1.0;
            b[1] += p[j];  // (w p = p)
        }
    }
    // rows [from, from + N): the same adds as add(from, from + N), unrolled
    template <int N>
    [[gnu::always_inline]] void add_block(int64_t from) const {
        uint8_t* const c = count;
        double* const e = ece;
        const int32_t* const hslot = tile->hslot + from;
        const int32_t* const eslot = tile->eslot + from;
        const double* const p = tile->p + from;
#pragma GCC unroll 16
        for (int i = 0; i < N; ++i) {
            if (++c[hslot[i]] == 0) [[unlikely]] {
                hist[hslot[i]] += 256.0;
                *wrapped = true;
            }
            double* b = e + eslot[i];
            b[0] += 1.0;
            b[1] += p[i];
        }
    }
    void finish() {
        add(0, held);
        held = 0;
    }
};

// The fused pass of one padded tile: each row's float64 values (weight, label, loss, p; zero
// where the row does not count) formed once in vector lanes and added to the chunk's lane
// sums; the addends of the bins (and, with Rows, every per-row value) stored for add_bins and
// the groups. `l` is the loss without the sample weight, `ce` the elementwise loss of
// reduction="none" (its sum is "sum"), `bce` the plain cross-entropy; for logits
// t.z holds exp(-|x|) (exp_neg_abs) and t.p gets p. Lean (the common tile: Unit, labels 0 or
// 1, no Rows, ce and bce the same array as l): l is loaded once and only p is stored (add_bins'
// counted path needs no other per-row value), and the previous tile's held counted adds are
// added on the way (`held`); every sum gets the same addends as without it. The labels `y` are
// in T, or the float64 labels as given of a float call (report_chunk: soft labels only).
template <bool FromLogits, bool Rows, bool Unit, bool Lean, class T, class Y>
inline void add_tile(ReportTile& t, LaneSums& s, const RowFlags<T>& f, const Y* y, const T* x, const T* w,
                     const T* l, const T* ce, const T* bce, int64_t padded_len, bool records,
                     CountedAdds* held = nullptr) {
    constexpr int L = kSumLanes;
    using V = F64;
    auto load = [](const auto* from) { return widen(from); };
    auto store = [](double* to, V v) { std::memcpy(to, &v, sizeof v); };
    const V zero = {};
    const V one = zero + 1.0;
    // a zero factor wins over an infinite loss, not over a NaN (times_weight), as in the kernel's sums
    auto tw = [&](V a, V b) { return (a == zero) & (b == b) ? zero : a * b; };
    F64 acc[rs_ignored + 1];  // (a local copy: in `s` GCC stored every sum on every iteration)
    std::memcpy(acc, s.acc, sizeof acc);
    F64 lean_l = s.lean_l;
    const int64_t held_rows = Lean ? held->held : 0;
    // (a local copy of the held adds' pointers: their byte stores may alias any memory, so the
    // members would be loaded again after each)
    const CountedAdds adds = Lean ? *held : CountedAdds{};
    for (int64_t j = 0; j < padded_len; j += L) {
        const V kept = Unit ? one : load(f.kept + j), xd = load(x + j);
        const auto keep = kept != zero;
        V p = FromLogits ? sigmoid_from_exp(xd, load(t.z + j)) : xd;
        // selects, not products with the mask: a NaN of a row left out must not get in
        const V wv = Unit ? one : (keep ? load(w + j) : zero);
        const V yv = keep ? load(y + j) : zero, lv = keep ? load(l + j) : zero;
        const V cev = Lean ? lv : (keep ? load(ce + j) : zero);
        const V bv = Lean ? lv : (keep ? load(bce + j) : zero);
        p = keep ? p : zero;
        const V wy = wv * yv, wn = wv * (one - yv), wp = wv * p, w2 = wv * wv, d = p - yv;
        const V w2l = tw(w2, lv);
        if constexpr (!Unit) {  // (with unit weights: the row count, added once below)
            acc[rs_count] += kept;
            acc[rs_w] += wv;
            acc[rs_w2] += w2;
        }
        if constexpr (Lean) {
            // (labels 0 or 1, weight 1: the same addends, fewer operations: w y and w (1 - y)
            // are 1 or 0, p - y is p - 1 or p, l * l is 0 where l is; w l, w bce and w^2 l are
            // l, summed once in lean_l)
            const auto positive = yv != zero;
            const V dl = positive ? p - one : p;
            lean_l += lv;
            acc[rs_wy] = positive ? acc[rs_wy] + one : acc[rs_wy];
            acc[rs_wn] = positive ? acc[rs_wn] : acc[rs_wn] + one;
            acc[rs_wp] += p;
            acc[rs_wsq] += dl * dl;
            acc[rs_wyl] = positive ? acc[rs_wyl] + lv : acc[rs_wyl];
            acc[rs_wnl] = positive ? acc[rs_wnl] : acc[rs_wnl] + lv;
            acc[rs_w2l2] += lv * lv;
        } else {
            acc[rs_wl] += cev;
            acc[rs_wbce] += tw(wv, bv);
            acc[rs_wy] += wy;
            acc[rs_wn] += wn;
            acc[rs_wp] += wp;
            acc[rs_wsq] += wv * d * d;
            acc[rs_wyl] += tw(wy, lv);
            acc[rs_wnl] += tw(wn, lv);
            acc[rs_w2l] += w2l;
            acc[rs_w2l2] += tw(w2l, lv);
        }
        if constexpr (!Unit) {
            acc[rs_omitted] += load(f.omitted + j);
            acc[rs_ignored] += load(f.ignored + j);
        }
        if constexpr (Lean) {  // (before the store of p: the held rows' p is read)
            if (held_rows >= j + L)
                adds.add_block<L>(j);
            else if (held_rows > j)
                adds.add(j, held_rows);
        }
        store(t.p + j, p);
        if constexpr (!Lean) {
            store(t.w + j, wv);
            store(t.terms[rs_wy] + j, wy);
            store(t.terms[rs_wn] + j, wn);
            store(t.terms[rs_wp] + j, wp);
        }
        if constexpr (Rows) {
            if (records) {
                const V omitted = Unit ? zero : load(f.omitted + j), ignored = Unit ? zero : load(f.ignored + j);
                F64 col[kRecord] = {kept, wv, cev, tw(wv, bv), wy,      wn,      wp,           wv * d * d,
                                    tw(wy, lv), tw(wn, lv), w2, w2l, tw(w2l, lv), omitted, ignored, zero};
                store_records(t, j, col);
            }
            store(t.y + j, yv);
            store(t.l + j, lv);
            store(t.kept + j, kept);
        }
    }
    if constexpr (Lean) {
        if (held_rows > padded_len) adds.add(padded_len, held_rows);
        held->held = 0;
    }
    if constexpr (Unit) {
        const V rows = zero + double(padded_len / L);
        acc[rs_count] += rows;
        acc[rs_w] += rows;
        acc[rs_w2] += rows;
    }
    std::memcpy(s.acc, acc, sizeof acc);
    s.lean_l = lean_l;
}

// The whole input's ECE bins over one chunk, in 4 copies (row j into copy j mod 4, so that
// runs of rows in one bin do not wait on each other's stores), added to the scope's bins in a
// fixed order when the chunk ends. Tiles whose labels are all 0 or 1 add (w, wp) per bin and
// class (their w*y is w or 0); the others add (w, wp, wy) per bin.
constexpr int kEceCopies = 4;
struct EceCopies {
    alignas(64) double hard[kEceCopies][kEceBins][4] = {};
    alignas(64) double soft[kEceCopies][kEceBins][4] = {};

    void add_to(double* e) const {
        for (int k = 0; k < kEceCopies; ++k) {
            for (int b = 0; b < kEceBins; ++b) {
                const double* h = hard[k][b];
                const double* o = soft[k][b];
                e[3 * b] += (h[0] + h[2]) + o[0];
                e[3 * b + 1] += (h[1] + h[3]) + o[1];
                e[3 * b + 2] += h[2] + o[2];
            }
        }
    }
};

// The rows of a tile into the whole input's AUC histogram and ECE bins: per row one scattered
// add into each (the slots: hslot and eslot). With hard labels a row is a positive or a
// negative of weight w, one add into its histogram bin (Counted: every w is 1, a count in
// `counts`, HistCountBuffer) and one (w, wp) pair into its ECE bin. The histogram's range that
// the tile touched widens out.hist_begin and out.hist_end (counts->begin and end if Counted). The bins of x (m mantissa bits) and of t.p are formed
// in the loop that forms the slots (one vectorised pass, where three passes through t.bin and
// t.ece cost about 0.3 ns a row more); Keep also stores them there, for the groups. Counted rows
// are added by `adds` (CountedAdds), now or, if Hold, by the next tile's add_tile.
template <bool FromLogits, bool Hard, bool Counted = false, bool Hold = false, class T>
inline void add_bins(ReportTile& t, const T* x, const T* y, int m, bool keep, int64_t len, ReportPart& out,
                     EceCopies& ece, HistCountBuffer* counts = nullptr, CountedAdds* adds = nullptr) {
    // (written with conversions of 0 and 1, which vectorise; compares into int32 did not)
    int32_t lo = INT32_MAX, hi = 0;
    auto slots = [&](auto store_bins) {
        int32_t low = INT32_MAX, high = 0;  // (locals: the loop's min and max then vectorise)
        for (int32_t j = 0; j < int32_t(len); ++j) {
            const int32_t b = bin_of<FromLogits>(x[j], m), e = ece_bin<FromLogits>(t.p[j]);
            const int32_t label = Hard ? int32_t(y[j]) : 0;  // (0 or 1)
            if constexpr (decltype(store_bins)::value) t.bin[j] = b, t.ece[j] = e;
            t.hslot[j] = 2 * b + (Hard ? 1 - label : 0);
            t.eslot[j] = 4 * kEceBins * (j & (kEceCopies - 1)) + 4 * e + 2 * label;
            low = std::min(low, t.hslot[j]);
            high = std::max(high, t.hslot[j]);
        }
        lo = low, hi = high;
    };
    keep ? slots(std::true_type()) : slots(std::false_type());
    if constexpr (!Counted) {
        out.hist_begin = std::min(out.hist_begin, int64_t(lo));
        out.hist_end = std::max(out.hist_end, (int64_t(hi) | 1) + 1);  // (the end of its bin pair)
    }
    double* hist = out.hist;
    if constexpr (Counted) {
        counts->begin = std::min(counts->begin, int64_t(lo));
        counts->end = std::max(counts->end, int64_t(hi) + 1);
        if constexpr (Hold)
            adds->held = len;
        else
            adds->add(0, len);
    } else if constexpr (Hard) {
        double* e = &ece.hard[0][0][0];
        for (int64_t j = 0; j < len; ++j) {
            hist[t.hslot[j]] += t.w[j];
            double* b = e + t.eslot[j];
            b[0] += t.w[j];
            b[1] += t.terms[rs_wp][j];
        }
    } else {
        double* e = &ece.soft[0][0][0];
        for (int64_t j = 0; j < len; ++j) {
            double* h = hist + t.hslot[j];
            h[0] += t.terms[rs_wy][j];
            h[1] += t.terms[rs_wn][j];
            double* b = e + t.eslot[j];
            b[0] += t.w[j];
            b[1] += t.terms[rs_wp][j];
            b[2] += t.terms[rs_wy][j];
        }
    }
}

// The counts of a call's HistCountBuffers added to the histogram (report.cpp, CallHist::finish):
// blocks of 64 entries, each buffer's bytes summed as int32 (at most 255 a buffer, plus its
// overflow, a multiple of 256, for a buffer that wrapped: integers, exact in float64 in any
// order), then one add per entry whose total is not 0, as a select, so that these loops
// vectorise on the tier (the scalar loop of the baseline build took 12-14% of the report pass
// at 1M-row calls, in the caller while the other threads waited). Blocks whose counts and
// overflow are all zero are skipped: their entries are not read or written. (The loop before
// skipped 8 entries whose count bytes were all 0 without looking at their overflow, so 256 rows
// of one bin, their neighbours empty, were lost from the AUC.)
inline void add_counts(double* hist, const HistCountBuffer* const* buffers, int64_t n_buffers,
                       int64_t begin, int64_t end) {
    constexpr int64_t kBlock = 64;
    bool overflowed = false;
    for (int64_t b = 0; b < n_buffers; ++b) overflowed = overflowed || buffers[b]->overflowed;
    for (int64_t i = begin & ~(kBlock - 1); i < end; i += kBlock) {
        alignas(64) int32_t total[kBlock] = {};
        int32_t any = 0;
        for (int64_t b = 0; b < n_buffers; ++b) {
            const uint8_t* const count = buffers[b]->count + i;
            for (int k = 0; k < kBlock; ++k) {
                total[k] += count[k];
                any |= count[k];
            }
        }
        if (any == 0) {  // (an entry whose count wrapped to 0 has its 256s in overflow)
            int32_t over_any = 0;
            for (int64_t b = 0; b < n_buffers && overflowed; ++b) {
                if (!buffers[b]->overflowed) continue;
                const double* const over = buffers[b]->overflow + i;
                for (int k = 0; k < kBlock; ++k) over_any |= int32_t(over[k] != 0.0);
            }
            if (over_any == 0) continue;
        }
        alignas(64) double sum[kBlock];
        for (int k = 0; k < kBlock; ++k) sum[k] = double(total[k]);
        if (overflowed) {
            for (int64_t b = 0; b < n_buffers; ++b) {
                if (!buffers[b]->overflowed) continue;
                const double* const over = buffers[b]->overflow + i;
                for (int k = 0; k < kBlock; ++k) sum[k] += over[k];
            }
        }
        double* const h = hist + i;
        for (int k = 0; k < kBlock; ++k) h[k] = sum[k] != 0.0 ? h[k] + sum[k] : h[k];
    }
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
