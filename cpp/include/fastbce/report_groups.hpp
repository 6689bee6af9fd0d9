// The evaluation report's group sums (report.hpp), compiled once per SIMD tier: a row added to
// one scope (add_row), the per-(group, label) cells of common tiles (GroupCells, add_cells)
// and a tile's adds to every slicing's groups (add_groups).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fastbce/report_tile.hpp"

namespace fastbce {
namespace FASTBCE_TIER {

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
// cells: per (group, ECE bin) 8 float64 (count, sum y, sum y l, sum (1 - y) l, sum l^2, sum p,
// sum (p - y)^2, sum bce), one vector add a row instead of 15 sums and the ECE bin's 3. Every sum
// of the group follows when the chunk ends (fold): an ECE bin's (w, w p, w y) is its cell's
// count, sum p and sum y; the group's sums are its cells' added in bin order (w = w^2 = count,
// w l = w^2 l = sum y l + sum (1 - y) l, w (1 - y) = count - sum y: whole numbers, exact). A row
// touches one line (the cells per (group, label) with the ECE bin's pair apart took a second
// read-modify-write and the label in the address). 640 bytes a group: 50 groups are 32 KiB, in
// L1. The cells are the thread's, zeroed per chunk and folded in a fixed order, so the sums do
// not depend on the threads. Only for slicings with ECE bins and few groups for the chunk's rows
// (zeroing and folding must stay small next to them).
constexpr int kCell = 8;                                     // values of a (group, ECE bin) cell
constexpr int64_t kCellValues = int64_t(kCell) * kEceBins;  // a group's values
constexpr int64_t kCellGroups = 4096;                        // at most this many groups
constexpr int64_t kRowsPerCellGroup = 64;                    // and at least this many chunk rows a group
constexpr int64_t kCellSlicings = 8;                         // slicings that may have cells (the first)

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
            // a cell on one cache line (a vector's data is 16-byte aligned: its 64-byte load and
            // store per row each touched two lines)
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
    // the cell of (group q, ECE bin) in a slicing's cells
    static double* cell_of(double* c, int64_t q, int64_t bin) { return c + kCell * (kEceBins * q + bin); }

    // Adds every group's cells into its sums (group by group, cells in order).
    void fold(const ReportSpec& s, const ReportPart& out) const {
        for (int64_t i = 0; i < std::min(s.n_slicings, kCellSlicings); ++i) {
            if (cells[i] == nullptr) continue;
            for (int64_t q = 0; q < s.slicings[i].n_groups; ++q)
                fold_group(cell_of(cells[i], q, 0), out.slice_sums[i] + rs_size * q);
        }
    }

    static void fold_group(const double* c, double* s) {
        double t[kCell] = {};  // (the group's totals, bin after bin)
        for (int e = 0; e < kEceBins; ++e)
            for (int k = 0; k < kCell; ++k) t[k] += c[kCell * e + k];
        if (t[0] == 0.0) return;  // (no row: every value is 0)
        for (int e = 0; e < kEceBins; ++e) {
            const double* v = c + kCell * e;
            double* b = s + rs_ece + 3 * e;
            b[0] += v[0];
            b[1] += v[5];
            b[2] += v[1];
        }
        const double rows = t[0], l = t[2] + t[3];
        s[rs_count] += rows;
        s[rs_w] += rows;
        s[rs_w2] += rows;
        s[rs_wl] += l;
        s[rs_w2l] += l;
        s[rs_w2l2] += t[4];
        s[rs_wbce] += t[7];
        s[rs_wy] += t[1];
        s[rs_wn] += rows - t[1];
        s[rs_wp] += t[5];
        s[rs_wsq] += t[6];
        s[rs_wyl] += t[2];
        s[rs_wnl] += t[3];
    }
};

// Adds the rows of a common tile (as GroupCells says; every row counts, so len is the padded
// length) to a slicing's cells: each row's cell values formed in vector lanes from the tile's
// columns (add_tile with Rows filled t.l, t.p and t.y) and the plain cross-entropy, transposed
// kSumLanes rows at a time, each row's added to its (group, ECE bin) cell in one vector add. They
// are the values add_tile's records hold for such a row (w = 1: every product by w is exact).
// With `held`, the same loop holds each row's histogram add back (its entry 2 t.bin + (1 - y),
// add_groups' counted records): a second pass over the rows read their codes, labels and bins again.
template <class T>
inline void add_cells(const ReportTile& t, const T* bce, const int64_t* code, double* cells, int64_t len,
                      const HeldAdds* held = nullptr) {
    static_assert(kCell % kSumLanes == 0);
    const F64 zero = {};
    const F64 one = zero + 1.0;
    // (locals: the stores below may alias anything, held's members would be loaded each row)
    uint32_t* const add = held != nullptr ? held->add : nullptr;
    int64_t* const cursor = held != nullptr ? held->cursor : nullptr;
    for (int64_t j = 0; j < len; j += kSumLanes) {
        const F64 l = widen(t.l + j), p = widen(t.p + j), y = widen(t.y + j), d = p - y;
        const F64 yl = y == zero ? zero : l, nl = y == zero ? l : zero;  // (y is 0 or 1)
        F64 col[kCell] = {one, y, yl, nl, l == zero ? zero : l * l, p, d * d, widen(bce + j)};
        for (int b = 0; b < kCell; b += kSumLanes) transpose(col + b);
        for (int i = 0; i < kSumLanes; ++i) {
            const int64_t r = j + i, q = code[r];
            double* to = GroupCells::cell_of(cells, q, t.ece[r]);
            for (int b = 0; b < kCell; b += kSumLanes) {
                F64 a;
                std::memcpy(&a, to + b, sizeof a);
                a += col[b + i];
                std::memcpy(to + b, &a, sizeof a);
            }
            if (add != nullptr) {
                uint32_t* at = add + cursor[q]++;
                __builtin_prefetch(at + 16, 1);  // (the group's stream a few rows on: not in cache)
                *at = uint32_t(2 * t.bin[r] + int32_t(t.y[r] == 0.0));
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
            add_cells(t, bce, code, cell, len, held_in_cells ? held : nullptr);
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

}  // namespace FASTBCE_TIER
}  // namespace fastbce
