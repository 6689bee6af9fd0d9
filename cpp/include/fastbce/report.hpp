// The evaluation report's pass (docs/report.md), compiled once per SIMD tier with the kernel.
// Per tile it loads the input as process_block does (TileInputs), gets the loss without the
// sample weight from kernel.hpp's loss_tile (weights of 1), the plain cross-entropy from
// loss_tile with no options (or the same numbers when the call has none), then in one loop over
// float64 vector lanes p = sigmoid(x) and every float64 sum (add_tile), and one scattered add
// per row into the AUC histogram and the ECE bins (add_bins); groups and the largest losses
// take the rows one by one. Its float64 lane arithmetic is in report_lanes.hpp.
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
// added on the way (`held`); every sum gets the same addends as without it.
template <bool FromLogits, bool Rows, bool Unit, bool Lean, class T>
inline void add_tile(ReportTile& t, LaneSums& s, const RowFlags<T>& f, const T* y, const T* x, const T* w,
                     const T* l, const T* ce, const T* bce, int64_t padded_len, bool records,
                     CountedAdds* held = nullptr) {
    constexpr int L = kSumLanes;
    using V = F64;
    auto load = [](const auto* from) { return widen(from); };
    auto store = [](double* to, V v) { std::memcpy(to, &v, sizeof v); };
    const V zero = {};
    const V one = zero + 1.0;
    // a zero factor wins over an infinite loss (times_weight), as in the kernel's sums
    auto tw = [&](V a, V b) { return a == zero ? zero : a * b; };
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

// Adds row j of the tile to one scope's sums (rows in element order): its record in vectors
// (one add per value, as a scalar loop would do, 8 + 4 + 2 + 1 wide so that nothing past
// rs_ignored is written), then its ECE bin (unless the scope keeps none) and its histogram bin.
inline void add_row(double* s, double* hist, const ReportTile& t, int64_t j, bool ece = true) {
    using V8 = double __attribute__((vector_size(64)));
    using V4 = double __attribute__((vector_size(32)));
    using V2 = double __attribute__((vector_size(16)));
    const double* r = t.rec[j];
    auto add = [&](auto v, int at) {
        decltype(v) a;
        std::memcpy(&v, r + at, sizeof v);
        std::memcpy(&a, s + at, sizeof a);
        a += v;
        std::memcpy(s + at, &a, sizeof a);
    };
    add(V8{}, 0);
    add(V4{}, 8);
    add(V2{}, 12);
    s[rs_ignored] += r[rs_ignored];
    static_assert(rs_ignored == 14 && kRecord >= 15);
    if (ece) {
        double* e = s + rs_ece + 3 * t.ece[j];
        e[0] += r[rs_w];
        e[1] += r[rs_wp];
        e[2] += r[rs_wy];
    }
    if (hist != nullptr) {
        hist[2 * t.bin[j]] += r[rs_wy];
        hist[2 * t.bin[j] + 1] += r[rs_wn];
    }
}

// A slicing's group sums over the common tiles (weight 1, labels 0 or 1, every row counts) in
// cells: per (group, label) 8 float64 (count, sum l, sum l^2, sum p, sum (p - y)^2, sum bce, 0,
// 0), one vector add a row instead of 15 sums, and per (group, ECE bin, label) (count, sum p).
// Every sum of the group follows when the chunk ends (fold): w = w^2 = count, w l = w^2 l = sum
// l, w y and w (1 - y) the counts of each label, w y l and w (1 - y) l the sum l of each, an ECE
// bin's w y the count of label 1. 448 bytes a group: 50 groups stay in L1 (a cell a (group, ECE
// bin, label) of 8 values, 64 KiB, did not). The cells are the thread's, zeroed per chunk and
// folded in a fixed order, so the sums do not depend on the threads. Only for slicings with ECE
// bins and few groups for the chunk's rows (zeroing and folding must stay small next to them).
constexpr int kCell = 8;                                    // values of a (group, label) cell
constexpr int64_t kCellValues = 2 * kCell + 4 * kEceBins;  // a group's values
constexpr int64_t kCellGroups = 4096;                       // at most this many groups
constexpr int64_t kRowsPerCellGroup = 64;                   // and at least this many chunk rows a group
constexpr int64_t kCellSlicings = 8;                        // slicings that may have cells (the first)

struct GroupCells {
    double* cells[kCellSlicings] = {};  // per slicing (the first ones), or null: its rows go by add_row
    bool any = false;       // some slicing has cells

    GroupCells(const ReportSpec& s, int64_t rows) {
        thread_local std::vector<double> kept[kCellSlicings];
        for (int64_t i = 0; i < std::min(s.n_slicings, kCellSlicings); ++i) {
            const ReportSlicing& g = s.slicings[i];
            if (g.stride != rs_size || g.n_groups > kCellGroups || g.n_groups * kRowsPerCellGroup > rows) continue;
            const size_t size = size_t(g.n_groups * kCellValues);
            if (kept[i].size() < size + 8) kept[i].resize(size + 8);
            // a (group, label) cell on one cache line (a vector's data is 16-byte aligned: its
            // 64-byte load and store per row each touched two lines)
            const uintptr_t at = reinterpret_cast<uintptr_t>(kept[i].data());
            cells[i] = kept[i].data() + ((64 - at % 64) % 64) / sizeof(double);
            std::fill_n(cells[i], size, 0.0);
            any = true;
        }
    }
    bool all(const ReportSpec& s) const {
        for (int64_t i = 0; i < s.n_slicings; ++i)
            if (i >= kCellSlicings || cells[i] == nullptr) return false;
        return true;
    }
    // the (group, label) cells of a slicing, then its (group, ECE bin, label) pairs
    static double* main_of(double* c, int64_t q, int64_t label) { return c + kCell * (2 * q + label); }
    static double* ece_of(double* c, int64_t groups, int64_t q, int64_t bin, int64_t label) {
        return c + 2 * kCell * groups + 2 * (2 * (kEceBins * q + bin) + label);
    }

    // Adds every group's cells into its sums (group by group, cells in order).
    void fold(const ReportSpec& s, const ReportPart& out) const {
        for (int64_t i = 0; i < std::min(s.n_slicings, kCellSlicings); ++i) {
            if (cells[i] == nullptr) continue;
            const int64_t groups = s.slicings[i].n_groups;
            for (int64_t q = 0; q < groups; ++q) {
                const double* neg = main_of(cells[i], q, 0);
                const double* pos = main_of(cells[i], q, 1);
                if (neg[0] + pos[0] == 0.0) continue;  // (no row: every value is 0)
                fold_group(neg, pos, ece_of(cells[i], groups, q, 0, 0), out.slice_sums[i] + rs_size * q);
            }
        }
    }

    static void fold_group(const double* neg, const double* pos, const double* ece, double* s) {
        const double rows = neg[0] + pos[0], l = neg[1] + pos[1];
        s[rs_count] += rows;
        s[rs_w] += rows;
        s[rs_w2] += rows;
        s[rs_wl] += l;
        s[rs_w2l] += l;
        s[rs_w2l2] += neg[2] + pos[2];
        s[rs_wbce] += neg[5] + pos[5];
        s[rs_wy] += pos[0];
        s[rs_wn] += neg[0];
        s[rs_wp] += neg[3] + pos[3];
        s[rs_wsq] += neg[4] + pos[4];
        s[rs_wyl] += pos[1];
        s[rs_wnl] += neg[1];
        for (int e = 0; e < kEceBins; ++e) {
            const double* v = ece + 4 * e;  // (label 0: count, sum p; then label 1)
            double* b = s + rs_ece + 3 * e;
            b[0] += v[0] + v[2];
            b[1] += v[1] + v[3];
            b[2] += v[2];
        }
    }
};

// Adds the rows of a common tile (as GroupCells says; every row counts, so len is the padded
// length) to a slicing's cells: each row's cell values formed in vector lanes from the tile's
// columns (add_tile with Rows filled t.l, t.p and t.y) and the plain cross-entropy, transposed
// kSumLanes rows at a time, each row's added to its cell in one vector add. They are the values
// add_tile's records hold for such a row (w = 1: every product by w is exact). With `held`, the
// same loop holds each row's histogram add back (its entry 2 t.bin + (1 - y), add_groups' counted
// records): a second pass over the rows read their codes, labels and bins again.
template <class T>
inline void add_cells(const ReportTile& t, const T* bce, const int64_t* code, double* cells, int64_t groups,
                      int64_t len, const HeldAdds* held = nullptr) {
    static_assert(kCell % kSumLanes == 0);
    const F64 zero = {};
    const F64 one = zero + 1.0;
    // (locals: the stores below may alias anything, held's members would be loaded each row)
    uint32_t* const add = held != nullptr ? held->add : nullptr;
    int64_t* const cursor = held != nullptr ? held->cursor : nullptr;
    for (int64_t j = 0; j < len; j += kSumLanes) {
        const F64 l = widen(t.l + j), p = widen(t.p + j), d = p - widen(t.y + j);
        F64 col[kCell] = {one, l, l == zero ? zero : l * l, p, d * d, widen(bce + j), zero, zero};
        for (int b = 0; b < kCell; b += kSumLanes) transpose(col + b);
        for (int i = 0; i < kSumLanes; ++i) {
            const int64_t r = j + i, q = code[r], label = int64_t(t.y[r]);  // (0 or 1)
            double* to = GroupCells::main_of(cells, q, label);
            for (int b = 0; b < kCell; b += kSumLanes) {
                F64 a;
                std::memcpy(&a, to + b, sizeof a);
                a += col[b + i];
                std::memcpy(to + b, &a, sizeof a);
            }
            double* e = GroupCells::ece_of(cells, groups, q, t.ece[r], label);
            e[0] += 1.0;
            e[1] += t.p[r];
            if (add != nullptr) {
                uint32_t* at = add + cursor[q]++;
                __builtin_prefetch(at + 16, 1);  // (the group's stream a few rows on: not in cache)
                *at = uint32_t(2 * t.bin[r] + int32_t(1 - label));
            }
        }
    }
}

// Adds the tile's rows to each slicing's groups: sums and ECE bins row by row (add_row), or for
// a common tile (`counted`: weight 1, labels 0 or 1, every row counts) into the slicing's
// cells (GroupCells, add_cells); the AUC histogram adds held back sorted by group
// (out.held, added a group at a time by the dispatcher: 50 groups' histograms are 26 MB, and a
// row's add straight into them went to a line far out of cache) or, without a buffer, added
// straight away. t.bin comes in with the whole input's bins and may leave with a slicing's
// (report_chunk bins each tile afresh).
template <bool FromLogits, class T>
inline void add_groups(const Call& c, const ReportSpec& s, ReportTile& t, const T* x, const T* bce, int64_t i0,
                       int64_t len, bool counted, const GroupCells& cells, ReportPart& out) {
    int bits = s.mantissa_bits;  // the bits of the bins t.bin holds
    for (int64_t sl = 0; sl < s.n_slicings; ++sl) {
        const ReportSlicing& g = s.slicings[sl];
        const int64_t* code = t.code;
        if (c.row_size != 1) {
            fill_by_row(i0, len, c.row_size, t.code, [&](int64_t r) { return g.code_at(r); });
        } else if (g.codes != nullptr) {
            code = g.codes + i0;  // (one element a row: the codes as given)
        } else {
            for (int64_t j = 0; j < len; ++j) t.code[j] = g.codes32[i0 + j];
        }
        const int64_t bins = hist_bins(g.mantissa_bits);
        if (g.hist != nullptr && g.mantissa_bits != bits) {
            for (int64_t j = 0; j < len; ++j) t.bin[j] = bin_of<FromLogits>(x[j], g.mantissa_bits);
            bits = g.mantissa_bits;
        }
        double* sums = out.slice_sums[sl];
        const bool ece = g.stride == rs_size;
        const HeldAdds* held = out.held != nullptr && out.held[sl].cursor != nullptr ? out.held + sl : nullptr;
        double* direct = g.hist != nullptr && held == nullptr ? out.slice_hist[sl] : nullptr;
        double* cell = counted && sl < kCellSlicings ? cells.cells[sl] : nullptr;
        // the row of a group's histogram in direct
        auto hist_row = [&](int64_t q) { return g.hist_rows != nullptr ? g.hist_rows[q] : q; };
        // (a common tile's held records: written by add_cells, in the loop that has each row's
        // code, label and bin at hand)
        const bool held_in_cells = cell != nullptr && held != nullptr;  // (cells: a counted tile)
        if (cell != nullptr) {
            add_cells(t, bce, code, cell, g.n_groups, len, held_in_cells ? held : nullptr);
        } else {
            for (int64_t j = 0; j < len; ++j) {
                double* h = nullptr;
                if (direct != nullptr) h = direct + 2 * bins * hist_row(code[j]);
                add_row(sums + g.stride * code[j], h, t, j, ece);
            }
        }
        if (cell != nullptr && direct != nullptr) {  // (add_row adds the bins of the others)
            for (int64_t j = 0; j < len; ++j) {
                direct[2 * bins * hist_row(code[j]) + 2 * t.bin[j] + int64_t(t.y[j] == 0.0)] += 1.0;
            }
        }
        if (held != nullptr && counted && !held_in_cells) {  // (every row: weight 1, label 0 or 1)
            for (int64_t j = 0; j < len; ++j) {
                uint32_t* to = held->add + held->cursor[code[j]]++;
                __builtin_prefetch(to + 16, 1);  // (the group's stream a few rows on: not in cache)
                *to = uint32_t(2 * t.bin[j] + int32_t(t.y[j] == 0.0));
            }
        } else if (held != nullptr && !counted) {
            const int64_t position = i0 + held->value_base;
            for (int64_t j = 0; j < len; ++j) {
                uint32_t* to = held->add + held->cursor[code[j]]++;
                __builtin_prefetch(to + 16, 1);
                *to = kHeldValue | uint32_t(position + j);
                held->value[position + j] = HeldValue{t.rec[j][rs_wy], t.rec[j][rs_wn]};
                held->entry[position + j] = uint32_t(2 * t.bin[j]);
            }
        }
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
    const auto inputs = std::make_unique<TileInputs<T>>(c);  // (as process_block loads them)
    TileInputs<T>& in = *inputs;
    alignas(64) T x_buf[kTile], ones[kTile];
    alignas(64) T l_buf[kTile], ce_buf[kTile], bce_buf[kTile], scratch[kTile];
    alignas(64) double wide[General && Focal ? kTile : 1];
    alignas(64) T skip[kTile];  // 1 for rows with the ignore label
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
        if (FromLogits && s.logit_offset != 0.0) {
            for (int64_t j = 0; j < padded_len; ++j) x_buf[j] = pred[j] + offset;
            x = x_buf;
        }
        if (s.has_ignore)  // (otherwise zero from the start)
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
        else if (rows)
            unit ? add_tile<FromLogits, true, true, false>(t, lane_sums, flags, y, x, w, l_buf, ce, bce,
                                                           padded_len, records)
                 : add_tile<FromLogits, true, false, false>(t, lane_sums, flags, y, x, w, l_buf, ce, bce,
                                                            padded_len, records);
        else if (lean)
            add_tile<FromLogits, false, true, true>(t, lane_sums, flags, y, x, w, l_buf, ce, bce, padded_len,
                                                    groups, &counted_adds);
        else
            unit ? add_tile<FromLogits, false, true, false>(t, lane_sums, flags, y, x, w, l_buf, ce, bce,
                                                            padded_len, groups)
                 : add_tile<FromLogits, false, false, false>(t, lane_sums, flags, y, x, w, l_buf, ce, bce,
                                                             padded_len, groups);
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
    return k;
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
