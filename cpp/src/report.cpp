// Splits a report call (docs/report.md) into chunks, runs them over threads on the active tier and
// merges their partial sums, histograms and largest losses in chunk order.
#include <algorithm>
#include <cstdlib>
#include <new>
#include <memory>
#include <mutex>
#include <vector>

#include "fastbce/fastbce.hpp"
#include "parallel.hpp"

namespace fastbce {
namespace {

constexpr int64_t kChunkUnit = 1 << 16;            // chunk sizes are multiples of this
constexpr int64_t kMaxChunks = 16;                 // chunks of one call (fixed: not the threads)
constexpr int64_t kPartialsBudget = int64_t(1) << 25;  // float64 values of all chunks' partials
constexpr int64_t kLargeGroupSums = int64_t(1) << 22;  // per-group values a chunk may copy (32 MiB)

// Zeroed float64 values from calloc: large ones come as fresh pages, which the system maps (and
// zeroes) when first written, so a group histogram's untouched pages cost nothing.
struct ZeroedValues {
    struct Free {
        void operator()(double* p) const { std::free(p); }
    };
    std::unique_ptr<double, Free> values;
    size_t size = 0;

    explicit ZeroedValues(size_t n)
        : values(static_cast<double*>(std::calloc(std::max<size_t>(n, 1), sizeof(double)))), size(n) {
        if (!values) throw std::bad_alloc();
    }
    double* data() const { return values.get(); }
};

// One chunk's partial outputs, zeroed, in the layout of ReportSpec. A group histogram is
// cleared and merged only in the blocks that rows touched (slice_touched): 50 groups' histograms
// are 26 MB a chunk, of which a chunk's rows touch about half.
struct Partial {
    std::vector<double> sums, hist;
    std::vector<std::vector<double>> slice_sums;
    std::vector<ZeroedValues> slice_hist;
    std::vector<std::vector<uint8_t>> touched;
    std::vector<double*> slice_sums_ptr, slice_hist_ptr;
    std::vector<uint8_t*> touched_ptr;
    std::vector<TopLoss> top;
    ReportPart part;

    // Calls f(offset, length) for each touched block of slicing i's histogram.
    template <class F>
    void each_touched(size_t i, F f) const {
        const std::vector<uint8_t>& flags = touched[i];
        const size_t block = size_t(1) << kHistBlockShift;
        for (size_t b = 0; b < flags.size(); ++b)
            if (flags[b] != 0) f(b * block, std::min(block, slice_hist[i].size - b * block));
    }

    void clear() {
        std::fill(sums.begin(), sums.end(), 0.0);
        if (part.hist_begin < part.hist_end)  // (only what rows touched: the rest stayed 0)
            std::fill(hist.begin() + part.hist_begin, hist.begin() + part.hist_end, 0.0);
        part.hist_begin = INT64_MAX;
        part.hist_end = 0;
        for (auto& v : slice_sums) std::fill(v.begin(), v.end(), 0.0);
        for (size_t i = 0; i < slice_hist.size(); ++i) {
            double* h = slice_hist[i].data();
            each_touched(i, [h](size_t at, size_t n) { std::fill_n(h + at, n, 0.0); });
            std::fill(touched[i].begin(), touched[i].end(), uint8_t(0));
        }
        part.top_size = 0;
        part.fault = Fault::none;
        part.fault_index = -1;
    }

    explicit Partial(const ReportSpec& s)
        : sums(rs_size), hist(size_t(2 * hist_bins(s.mantissa_bits))), top(size_t(s.top_k)) {
        for (int64_t i = 0; i < s.n_slicings; ++i) {
            const ReportSlicing& g = s.slicings[i];
            const size_t values = g.hist != nullptr ? size_t(g.n_groups * 2 * hist_bins(g.mantissa_bits)) : 0;
            slice_sums.emplace_back(size_t(g.n_groups * g.stride));
            slice_hist.emplace_back(values);
            touched.emplace_back((values + (size_t(1) << kHistBlockShift) - 1) >> kHistBlockShift);
        }
        for (auto& v : slice_sums) slice_sums_ptr.push_back(v.data());
        for (auto& v : slice_hist) slice_hist_ptr.push_back(v.size == 0 ? nullptr : v.data());
        for (auto& v : touched) touched_ptr.push_back(v.data());
        part.sums = sums.data();
        part.hist = hist.data();
        part.slice_sums = slice_sums_ptr.data();
        part.slice_hist = slice_hist_ptr.data();
        part.slice_touched = touched_ptr.data();
        part.top = top.data();
    }
};

void add_into(double* into, const double* from, size_t n) {
    for (size_t i = 0; i < n; ++i) into[i] += from[i];
}

// Adds a chunk's partial to the spec's outputs (called in chunk order).
void merge(ReportSpec& s, const Partial& p, std::vector<TopLoss>& top) {
    add_into(s.sums, p.sums.data(), p.sums.size());
    if (p.part.hist_begin < p.part.hist_end)
        add_into(s.hist + p.part.hist_begin, p.hist.data() + p.part.hist_begin,
                 size_t(p.part.hist_end - p.part.hist_begin));
    for (int64_t i = 0; i < s.n_slicings; ++i) {
        add_into(s.slicings[i].sums, p.slice_sums[size_t(i)].data(), p.slice_sums[size_t(i)].size());
        double* into = s.slicings[i].hist;
        const double* from = p.slice_hist[size_t(i)].data();
        if (into != nullptr)
            p.each_touched(size_t(i), [&](size_t at, size_t n) { add_into(into + at, from + at, n); });
    }
    top.insert(top.end(), p.top.begin(), p.top.begin() + p.part.top_size);
}

// Options level of the loss without the sample weight: label smoothing, pos_weight or (without
// focal) alpha, with values in the working precision as the kernel takes them.
bool general_options(const Call& c, bool is_double, bool focal) {
    auto in_working = [is_double](double v) { return is_double ? v : double(float(v)); };
    return in_working(c.label_smoothing) != 0.0 || c.pos_weight != nullptr ||
           in_working(c.pos_weight_scalar) != 1.0 || (c.has_alpha && !focal);
}

// One chunk written straight into the spec's outputs, which the caller zeroed: the same sums as a
// partial merged into them (0 + x is x), without the partial's copy of every group's sums.
Result run_in_place(const Call& c, ReportSpec& s, ReportFn fn) {
    std::vector<double*> slice_sums, slice_hist;
    for (int64_t i = 0; i < s.n_slicings; ++i) {
        slice_sums.push_back(s.slicings[i].sums);
        slice_hist.push_back(s.slicings[i].hist);
    }
    std::vector<TopLoss> top(size_t(s.top_k));
    ReportPart part;
    part.sums = s.sums;
    part.hist = s.hist;
    part.slice_sums = slice_sums.data();
    part.slice_hist = slice_hist.data();
    part.top = top.data();
    if (c.n > 0) fn(c, s, 0, c.n, part);
    Result result;
    if (part.fault != Fault::none) {
        result.fault = part.fault;
        result.fault_index = part.fault_index;
        return result;
    }
    top.resize(size_t(part.top_size));
    std::sort(top.begin(), top.end(), ranks_before);
    s.top_found = int64_t(top.size());
    std::copy_n(top.begin(), s.top_found, s.top);
    result.total.loss = s.sums[rs_wl];
    result.total.weight = s.sums[rs_w];
    result.total.count = s.sums[rs_count];
    return result;
}

}  // namespace

Result run_report(const Call& c, ReportSpec& s) {
    const bool is_double = c.y_pred.dtype == DType::f64;
    const bool focal = is_double ? c.gamma > 0.0 : static_cast<float>(c.gamma) > 0.0f;
    const ReportFn fn =
        active_report_kernels().fn[is_double][c.from_logits][focal][general_options(c, is_double, focal)];

    // Chunks: fixed by n and the size of one chunk's partials, never by the threads.
    int64_t per_chunk = rs_size + 2 * hist_bins(s.mantissa_bits) + 8 * s.top_k;
    for (int64_t i = 0; i < s.n_slicings; ++i) {
        const ReportSlicing& g = s.slicings[i];
        per_chunk += g.n_groups * (g.stride + (g.hist != nullptr ? 2 * hist_bins(g.mantissa_bits) : 0));
    }
    const int64_t units = std::max<int64_t>(1, (c.n + kChunkUnit - 1) / kChunkUnit);
    // Very many groups: one chunk, written in place (a copy of every group's sums per chunk
    // would cost more memory and time than a second thread saves on this scatter-bound pass).
    // A chunk's partial is zeroed and merged whole, so a chunk has at least per_chunk / 8 rows
    // (50 groups' histograms are 3.3M values: two chunks of a 1M-row batch, not sixteen).
    const int64_t by_size = std::min(kPartialsBudget / per_chunk, 8 * c.n / per_chunk);
    const int64_t n_chunks =
        per_chunk > kLargeGroupSums ? 1 : std::clamp<int64_t>(by_size, 1, std::min(kMaxChunks, units));
    if (n_chunks == 1) return run_in_place(c, s, fn);
    const int64_t chunk = (units + n_chunks - 1) / n_chunks * kChunkUnit;
    const int64_t threads = std::min<int64_t>(threads_for(c.n, c.threads), n_chunks);

    // Each chunk's partial is merged as soon as every chunk before it is: at most about
    // `threads` partials are alive at once, and the merge order is the chunk order.
    // Merged partials are cleared and reused (fresh pages would cost a page fault each).
    std::vector<std::unique_ptr<Partial>> done(static_cast<size_t>(n_chunks));
    std::vector<std::unique_ptr<Partial>> spare;
    std::vector<TopLoss> top;
    std::mutex mutex;
    int64_t next = 0;
    Result result;
    parallel_for(n_chunks, threads, [&](int64_t i) {
        const int64_t begin = i * chunk, end = std::min(c.n, begin + chunk);
        std::unique_ptr<Partial> partial;
        {
            std::lock_guard<std::mutex> lock(mutex);
            if (!spare.empty()) partial = std::move(spare.back()), spare.pop_back();
        }
        if (partial) partial->clear();
        else partial = std::make_unique<Partial>(s);
        if (begin < end) fn(c, s, begin, end, partial->part);
        std::lock_guard<std::mutex> lock(mutex);
        done[size_t(i)] = std::move(partial);
        for (; next < n_chunks && done[size_t(next)]; ++next) {
            const Partial& p = *done[size_t(next)];
            if (p.part.fault != Fault::none && result.fault == Fault::none) {
                result.fault = p.part.fault;
                result.fault_index = p.part.fault_index;
            }
            if (result.fault == Fault::none) merge(s, p, top);
            spare.push_back(std::move(done[size_t(next)]));
        }
    });
    if (result.fault != Fault::none) return result;
    std::sort(top.begin(), top.end(), ranks_before);
    s.top_found = std::min<int64_t>(s.top_k, int64_t(top.size()));
    std::copy_n(top.begin(), s.top_found, s.top);
    result.total.loss = s.sums[rs_wl];
    result.total.weight = s.sums[rs_w];
    result.total.count = s.sums[rs_count];
    return result;
}

}  // namespace fastbce
