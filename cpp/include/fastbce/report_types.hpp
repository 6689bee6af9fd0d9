// Plain data of the evaluation report (docs/report.md): what one report call asks for and where
// its float64 sums go. No Python, no SIMD; shared by the binding, the dispatcher and every tier.
#pragma once

#include <cstdint>

#include "fastbce/types.hpp"

namespace fastbce {

// The sums of one scope (the whole input, or one group), in this order; all float64.
enum ReportSum : int32_t {
    rs_count = 0,  // rows counted
    rs_w,          // sum w
    rs_wl,         // sum w*l        (l: the loss without the sample weight)
    rs_wbce,       // sum w*bce      (plain cross-entropy)
    rs_wy,         // sum w*y
    rs_wn,         // sum w*(1-y)
    rs_wp,         // sum w*p
    rs_wsq,        // sum w*(p-y)^2
    rs_wyl,        // sum w*y*l
    rs_wnl,        // sum w*(1-y)*l
    rs_w2,         // sum w^2
    rs_w2l,        // sum w^2*l
    rs_w2l2,       // sum w^2*l^2
    rs_omitted,    // rows left out for a NaN (nan_policy "omit")
    rs_ignored,    // rows whose label is ignore_label
    rs_ece,        // 10 bins of p, each (sum w, sum w*p, sum w*y)
    rs_size = rs_ece + 30,
};
constexpr int kEceBins = 10;

// The AUC histogram: a monotone binning of the prediction with 2^(mantissa_bits + 6) bins (the
// layout is in report.hpp, bin_of); each bin holds (weight of positives, weight of negatives).
constexpr int kMaxMantissaBits = 11;
constexpr int64_t hist_bins(int mantissa_bits) { return int64_t(64) << mantissa_bits; }

// One slicing: a group code per row and the per-group outputs (zeroed by the caller).
struct ReportSlicing {
    const int64_t* codes = nullptr;  // one code in [0, n_groups) per row
    // or, with codes null, int32 codes (an Arrow dictionary's indices as read: no int64 copy of
    // them per batch, and half the bytes for the passes that read them)
    const int32_t* codes32 = nullptr;
    int64_t n_groups = 0;
    double* sums = nullptr;          // n_groups * stride
    int64_t stride = rs_size;        // rs_size, or rs_ece: no ECE bins (slicings of many groups)
    double* hist = nullptr;          // n_groups * hist_bins(mantissa_bits) * 2, or null: no AUC
    int mantissa_bits = 0;
    // the histogram of group q is row hist_rows[q] of hist (null: row q). With it, hist may
    // already hold sums: a call of at most kHistAfterCheck elements adds nothing to it unless
    // every row passed the checks; a longer call that fails may have added its first rounds
    // (for rows of hist that the caller clears then)
    const int64_t* hist_rows = nullptr;

    int64_t code_at(int64_t row) const { return codes != nullptr ? codes[row] : int64_t(codes32[row]); }
};
// Calls of at most this many elements add to the group histograms only after checking every
// row (their adds are held back in one round): report.cpp's kRoundElements.
constexpr int64_t kHistAfterCheck = int64_t(1) << 21;

// A slicing's histogram adds held back, in a buffer sorted by group (report.cpp adds them into
// the groups' histograms a group at a time, each in row order). A row of group g goes to
// add[cursor[g]++]: one 4-byte record a row (written once and read once: 8-byte ones cost
// twice the memory traffic), so that the rows of a group write one stream. A row of weight 1
// with label 0 or 1 (the common case) is its histogram entry, 2 bin + (1 - y): one add of 1.0;
// any other row is kHeldValue | its position, its (w y, w (1 - y)) in value[position] and its
// entry 2 bin in entry[position], the position being its element index + value_base.
constexpr uint32_t kHeldValue = uint32_t(1) << 31;  // (positions of a round and entries are less)
struct HeldValue {
    double wy, wn;
};
struct HeldAdds {
    int64_t* cursor = nullptr;
    uint32_t* add = nullptr;
    HeldValue* value = nullptr;
    uint32_t* entry = nullptr;
    int64_t value_base = 0;
};

// The whole input's histogram counts of the rows of weight 1 with labels 0 or 1 (report.hpp's
// CountedAdds): one byte an entry (256 KiB, not the float64 histogram's 2 MiB: the scattered adds
// stay in L1 and L2), a wrap to 0 adding 256 to the entry of `overflow`. A buffer serves one chunk
// at a time and keeps its counts from chunk to chunk of a call; report.cpp adds them to the
// spec's histogram once the call has succeeded and gives the buffer back all zero. Every value
// is an integer, so the sums are the same bits whichever chunks a buffer served.
struct HistCountBuffer {
    uint8_t* count = nullptr;            // 2 * hist_bins(kMaxMantissaBits) entries
    double* overflow = nullptr;          // the same entries: 256 per wrap
    int64_t begin = INT64_MAX, end = 0;  // the entries touched
    bool overflowed = false;             // some entry of overflow is not 0
};

// One of the rows of largest loss.
struct TopLoss {
    double loss = 0.0;    // l, the loss without the sample weight (the ranking key)
    int64_t row = 0;      // flat index in the call's input
    double weight = 0.0;  // w
    double y_true = 0.0;  // as given
    double y_pred = 0.0;  // as given (before logit_offset)
    int64_t code = -1;    // group code in the first slicing, or -1
};

// Larger loss first; equal losses by row, earlier first: the order of top_losses.
inline bool ranks_before(const TopLoss& a, const TopLoss& b) {
    return a.loss > b.loss || (a.loss == b.loss && a.row < b.row);
}

struct ReportSpec {
    double logit_offset = 0.0;  // added to every logit (from_logits only)
    bool has_ignore = false;
    double ignore_label = 0.0;

    double* sums = nullptr;  // rs_size, the whole input
    double* hist = nullptr;  // hist_bins(mantissa_bits) * 2
    int mantissa_bits = kMaxMantissaBits;

    ReportSlicing* slicings = nullptr;
    int64_t n_slicings = 0;

    int64_t top_k = 0;
    TopLoss* top = nullptr;  // room for top_k entries; the first top_found are filled, in order
    int64_t top_found = 0;
};

// The output of one chunk (or the merged total): the same layout as ReportSpec's outputs.
struct ReportPart {
    double* sums = nullptr;
    double* hist = nullptr;          // the float64 adds of rows not counted in `counts`
    int64_t hist_begin = INT64_MAX;  // the entries of hist that rows touched: [begin, end)
    int64_t hist_end = 0;
    double** slice_sums = nullptr;  // per slicing
    double** slice_hist = nullptr;  // per slicing (entries may be null): rows add to it directly;
                                    // null when every slicing's adds are held
    HeldAdds* held = nullptr;       // per slicing, or null: where rows' histogram adds are held
    HistCountBuffer* counts = nullptr;  // the whole input's counted rows (never null)
    TopLoss* top = nullptr;         // a heap of at most top_k entries (worst on top)
    int64_t top_size = 0;
    Fault fault = Fault::none;
    int64_t fault_index = -1;
};

using ReportFn = void (*)(const Call&, const ReportSpec&, int64_t begin, int64_t end, ReportPart&);
// hist += the counts of `buffers` (their sum, an integer: the same bits in any order) over
// entries [begin, end); entries with no count keep their bits (as with no add).
using AddCountsFn = void (*)(double* hist, const HistCountBuffer* const* buffers, int64_t n_buffers,
                             int64_t begin, int64_t end);
struct ReportKernels {
    ReportFn fn[2][2][2][2];  // [double working type][from_logits][focal][general options]
    AddCountsFn add_counts;   // (report.cpp's CallHist::finish, once a call has succeeded)
};

}  // namespace fastbce
