// Splits a report call (docs/report.md) into chunks, runs them over threads on the active tier and
// merges their partial sums, histograms and largest losses in chunk order.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <utility>
#include <vector>

#include "fastbce/fastbce.hpp"
#include "parallel.hpp"
#include "per_process.hpp"

namespace fastbce {
namespace {

constexpr int64_t kChunkUnit = 1 << 16;            // chunk sizes are multiples of this
constexpr int64_t kMaxChunks = 16;                 // chunks of one call (fixed: not the threads)
constexpr int64_t kMinChunks = 4;                  // chunks of a call of 4+ units (or of its units)
constexpr int64_t kPartialsBudget = int64_t(1) << 25;  // float64 values of all chunks' partials
// per-group values a chunk may copy (8 MiB; at 2^22 the four chunks of a batch of 65536 groups
// held 96 MB of copies: a report of the 5e7-row file peaked at 342 MB, over the 300 MB bound)
constexpr int64_t kLargeGroupSums = int64_t(1) << 20;
// Group histograms: chunks of at most kHeldChunk elements, whose histogram adds are held back
// for rounds of at most kRoundElements (a 4-byte record and room for 20 bytes of values each per
// slicing: 48 MiB).
constexpr int64_t kHeldChunk = int64_t(1) << 19;
constexpr int64_t kRoundElements = kHistAfterCheck;

// Buffers of the whole input's histogram (2 * hist_bins(kMaxMantissaBits) float64), all zero
// when free, kept for the process and shared by the calls of every thread: a chunk's partial and
// a call's adds (CallHist) take one each, call after call, without a 2 MiB allocation and its
// zeroing or page faults each time; only the entries used are zeroed when one is given back.
constexpr int64_t kHistEntries = 2 * hist_bins(kMaxMantissaBits);

template <class Buffer>
class BufferPool {
public:
    static Buffer* take() {
        Shared& p = per_process<Shared>();
        {
            std::lock_guard<std::mutex> lock(p.mutex);
            if (!p.free.empty()) {
                Buffer* b = p.free.back();
                p.free.pop_back();
                return b;
            }
        }
        return new Buffer;
    }
    static void give(Buffer* b) {  // (all zero again)
        Shared& p = per_process<Shared>();
        std::lock_guard<std::mutex> lock(p.mutex);
        p.free.push_back(b);
    }

private:
    struct Shared {
        std::mutex mutex;
        std::vector<Buffer*> free;  // (a few per thread, at most as many as ever ran at once)
    };
    // (per_process: never destroyed, as pool threads may outlive statics; a forked child makes
    // its own, as the parent's mutex may have been held by a thread the child does not have)
};

// n zero values of T in pages the OS maps (zeroed) when first touched: a pool buffer costs only
// the pages its calls touch (a report without soft labels or weights never writes a chunk's
// float64 partial, and a count's overflow only where it wrapped), not a write of every page at
// its construction (about 4000 page faults and 17 MB of zeroing in a run of `fastbce score`).
// calloc hands out fresh pages for blocks this large (or zeroes what it reuses).
template <class T>
class ZeroPages {
public:
    explicit ZeroPages(size_t n) : p_(static_cast<T*>(std::calloc(n, sizeof(T)))) {
        if (p_ == nullptr) throw std::bad_alloc();
    }
    ~ZeroPages() { std::free(p_); }
    ZeroPages(const ZeroPages&) = delete;
    ZeroPages& operator=(const ZeroPages&) = delete;
    T* data() { return p_; }
    const T* data() const { return p_; }
    T& operator[](size_t i) { return p_[i]; }
    const T& operator[](size_t i) const { return p_[i]; }

private:
    T* p_;
};

struct HistBuffer {
    ZeroPages<double> values{size_t(kHistEntries)};
};
struct CountBuffer {
    ZeroPages<uint8_t> count{size_t(kHistEntries)};
    ZeroPages<double> overflow{size_t(kHistEntries)};
    HistCountBuffer view{count.data(), overflow.data()};
};

// A pool buffer held by one owner: given back, entries [begin, end) zeroed, at the end.
class PooledHist {
public:
    PooledHist() : b_(BufferPool<HistBuffer>::take()) {}
    ~PooledHist() {
        clear();
        BufferPool<HistBuffer>::give(b_);
    }
    PooledHist(const PooledHist&) = delete;
    PooledHist& operator=(const PooledHist&) = delete;
    double* get() { return b_->values.data(); }
    const double* get() const { return b_->values.data(); }
    void touched(int64_t begin, int64_t end) {
        begin_ = std::min(begin_, begin);
        end_ = std::max(end_, end);
    }
    void clear() {
        if (begin_ < end_) std::fill(get() + begin_, get() + end_, 0.0);
        begin_ = INT64_MAX;
        end_ = 0;
    }

private:
    HistBuffer* b_;
    int64_t begin_ = INT64_MAX, end_ = 0;
};

// One chunk's partial outputs, zeroed, in the layout of ReportSpec; the group histograms have
// none (their adds are held back, HeldRound), so part.slice_hist is null.
struct Partial {
    std::vector<double> sums;
    PooledHist hist;
    std::vector<std::vector<double>> slice_sums;
    std::vector<double*> slice_sums_ptr;
    std::vector<TopLoss> top;
    ReportPart part;

    void clear() {
        std::fill(sums.begin(), sums.end(), 0.0);
        hist.touched(part.hist_begin, part.hist_end);  // (only what rows touched: the rest stayed 0)
        hist.clear();
        part.hist_begin = INT64_MAX;
        part.hist_end = 0;
        for (auto& v : slice_sums) std::fill(v.begin(), v.end(), 0.0);
        part.top_size = 0;
        part.fault = Fault::none;
        part.fault_index = -1;
    }

    ~Partial() { hist.touched(part.hist_begin, part.hist_end); }  // (zeroed when given back)
    Partial(const Partial&) = delete;
    Partial& operator=(const Partial&) = delete;

    explicit Partial(const ReportSpec& s)
        : sums(rs_size), top(size_t(s.top_k)) {
        for (int64_t i = 0; i < s.n_slicings; ++i) {
            const ReportSlicing& g = s.slicings[i];
            slice_sums.emplace_back(size_t(g.n_groups * g.stride));
        }
        for (auto& v : slice_sums) slice_sums_ptr.push_back(v.data());
        part.sums = sums.data();
        part.hist = hist.get();
        part.slice_sums = slice_sums_ptr.data();
        part.top = top.data();
    }
};

void add_into(double* into, const double* from, size_t n) {
    for (size_t i = 0; i < n; ++i) into[i] += from[i];
}

// The whole input's histogram adds of one call, kept apart from the spec's histogram until the
// call has succeeded, so that a call that fails leaves it as it was (_report.py passes the
// accumulator's own histogram, not a fresh 2 MiB one per batch): the chunks' float64 partials,
// added in chunk order into `floats`, and the counts of counted rows in the buffers the chunks
// took (HistCountBuffer). finish adds floats, then the counts' sum over the buffers (an integer,
// exact), to the histogram: the same bits as the partials and counts added into a zeroed
// histogram and that added to it, whenever a call's rows are all counted or none is.
class CallHist {
public:
    CallHist() = default;
    ~CallHist() {
        floats_.touched(begin_, end_);
        for (CountBuffer* b : all_) {
            clear(b->view);
            BufferPool<CountBuffer>::give(b);
        }
    }
    CallHist(const CallHist&) = delete;
    CallHist& operator=(const CallHist&) = delete;

    double* floats() { return floats_.get(); }

    // A buffer for one chunk (any free one: the counts are the same whichever it is).
    HistCountBuffer* take() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!idle_.empty()) {
            HistCountBuffer* b = idle_.back();
            idle_.pop_back();
            return b;
        }
        all_.reserve(all_.size() + 1);
        CountBuffer* b = BufferPool<CountBuffer>::take();
        all_.push_back(b);
        return &b->view;
    }
    void give(HistCountBuffer* b) {
        std::lock_guard<std::mutex> lock(mutex_);
        idle_.push_back(b);
    }

    // Adds a chunk's float64 partial (entries [begin, end)); in chunk order.
    void add(const double* from, int64_t begin, int64_t end) {
        if (begin >= end) return;
        add_into(floats_.get() + begin, from + begin, size_t(end - begin));
        widen(begin, end);
    }
    void widen(int64_t begin, int64_t end) {
        begin_ = std::min(begin_, begin);
        end_ = std::max(end_, end);
    }

    // hist += the call's adds, the buffers' counts zeroed on the way.
    void finish(double* hist) {
        if (begin_ < end_) add_into(hist + begin_, floats_.get() + begin_, size_t(end_ - begin_));
        int64_t begin = INT64_MAX, end = 0;
        std::vector<const HistCountBuffer*> views;
        views.reserve(all_.size());
        for (const CountBuffer* b : all_) {
            begin = std::min(begin, b->view.begin), end = std::max(end, b->view.end);
            views.push_back(&b->view);
        }
        // (on the tier, vectorised: the counts are zeroed by clear below, and an entry with no
        // count keeps its bits, as with no add)
        if (begin < end)
            active_report_kernels().add_counts(hist, views.data(), int64_t(views.size()), begin, end);
        for (CountBuffer* b : all_) clear(b->view);
    }

private:
    // All zero again (the counts of a call that failed, or the overflow of one that wrapped).
    static void clear(HistCountBuffer& b) {
        if (b.begin < b.end) {
            const int64_t begin = b.begin & ~int64_t(7);
            std::memset(b.count + begin, 0, size_t(b.end - begin));
            if (b.overflowed) std::fill(b.overflow + begin, b.overflow + b.end, 0.0);
        }
        b.begin = INT64_MAX;
        b.end = 0;
        b.overflowed = false;
    }

    PooledHist floats_;
    int64_t begin_ = INT64_MAX, end_ = 0;  // the entries of floats_ added to
    std::mutex mutex_;
    std::vector<CountBuffer*> all_;        // the buffers taken (back to the pool at the end)
    std::vector<HistCountBuffer*> idle_;   // those no chunk is using
};

// Adds a chunk's partial to the spec's outputs (called in chunk order); its histogram to the
// call's (CallHist).
void merge(ReportSpec& s, const Partial& p, CallHist& hist, std::vector<TopLoss>& top) {
    add_into(s.sums, p.sums.data(), p.sums.size());
    hist.add(p.hist.get(), p.part.hist_begin, p.part.hist_end);
    for (int64_t i = 0; i < s.n_slicings; ++i)
        add_into(s.slicings[i].sums, p.slice_sums[size_t(i)].data(), p.slice_sums[size_t(i)].size());
    top.insert(top.end(), p.top.begin(), p.top.begin() + p.part.top_size);
}

// Whether codes[0, n) has one outside [0, groups): a branch-free sweep (the caller looks for
// the row only when it has). Unsigned, so that a negative code is as large as can be.
// (an or of bits, which vectorises even in the baseline build, where the bool or of compares
// ran one code at a time and cost 8% of a grouped report: a code v in [0, groups) is one whose
// v - groups is negative and v is not; groups > 0 and both below 2^63)
template <class Code>
bool any_code_outside(const Code* codes, int64_t n, int64_t groups) {
    if constexpr (sizeof(Code) == 4) {
        // int32 codes (an Arrow dictionary's indices) in 32-bit lanes, twice as many a vector
        // and no widening (the same test with groups and v below 2^31)
        if (groups <= INT32_MAX) {
            uint32_t bad = 0;
            for (int64_t e = 0; e < n; ++e) {
                const uint32_t v = uint32_t(codes[e]);
                bad |= v | ~(v - uint32_t(groups));
            }
            return (bad >> 31) != 0;
        }
    }
    uint64_t bad = 0;
    for (int64_t e = 0; e < n; ++e) {
        const uint64_t v = uint64_t(int64_t(codes[e]));
        bad |= v | ~(v - uint64_t(groups));
    }
    return (bad >> 63) != 0;
}

// The first element of [begin, end) whose row has a group code outside [0, n_groups) in a
// slicing that `counted` does not say HeldRound counts (it checks those as it counts), or -1.
// Checked per chunk before its codes index anything (an Arrow dictionary's indices are not
// checked by Arrow when built with safe=False): fault group_code, as the loss pass gives.
int64_t first_code_outside(const Call& c, const ReportSpec& s, int64_t begin, int64_t end, bool counted) {
    if (begin >= end) return -1;
    const int64_t first_row = begin / c.row_size, rows = (end - 1) / c.row_size + 1 - first_row;
    int64_t bad_row = INT64_MAX;
    for (int64_t i = 0; i < s.n_slicings; ++i) {
        const ReportSlicing& g = s.slicings[i];
        if (counted && g.hist != nullptr) continue;
        const bool outside = g.codes != nullptr ? any_code_outside(g.codes + first_row, rows, g.n_groups)
                                                : any_code_outside(g.codes32 + first_row, rows, g.n_groups);
        if (!outside) continue;
        for (int64_t r = first_row; r < first_row + rows && r < bad_row; ++r)
            if (uint64_t(g.code_at(r)) >= uint64_t(g.n_groups)) bad_row = r;
    }
    return bad_row == INT64_MAX ? -1 : std::max(begin, bad_row * c.row_size);
}

// count[q] += the codes equal to q, for the codes before the first one outside [0, groups);
// returns that one's index, or n. Blocks of codes are checked, then counted while in L1 (a
// separate pass over a chunk's codes cost 8% of a grouped report). Few groups: into 4 copies
// (row j into copy j mod 4), so that runs of one group do not wait on each other's increments.
template <class Code>
int64_t count_codes(const Code* codes, int64_t n, int64_t groups, int64_t* count) {
    constexpr int64_t kCopies = 4, kBlock = 2048;
    const bool few = groups <= 1024;
    int64_t copies[kCopies][1024] = {};
    for (int64_t b = 0; b < n; b += kBlock) {
        const int64_t stop = std::min(n, b + kBlock);
        int64_t e = b;
        if (any_code_outside(codes + b, stop - b, groups)) {
            for (; uint64_t(int64_t(codes[e])) < uint64_t(groups); ++e) ++count[codes[e]];
            for (int64_t q = 0; few && q < groups; ++q)
                count[q] += copies[0][q] + copies[1][q] + copies[2][q] + copies[3][q];
            return e;
        }
        if (few)
            for (; e + kCopies <= stop; e += kCopies)
                for (int64_t k = 0; k < kCopies; ++k) ++copies[k][codes[e + k]];
        for (; e < stop; ++e) ++count[codes[e]];
    }
    for (int64_t q = 0; few && q < groups; ++q) count[q] += copies[0][q] + copies[1][q] + copies[2][q] + copies[3][q];
    return n;
}

// The group histograms' adds of one round of chunks, held back sorted by chunk, then group, then
// row (a stable counting sort on the codes), and added a group at a time straight into the
// spec's histograms: a group's histogram (512 KiB for 50 groups) stays in cache while its rows
// add to it, and every bin gets its adds in row order whatever the threads (the same bits as
// one pass in place). The buffers are the calling thread's, kept from call to call (fresh pages
// would cost a page fault each).
class HeldRound {
public:
    HeldRound(const Call& c, const ReportSpec& s, int64_t chunk) : c_(c), s_(s), chunk_(chunk) {
        thread_local std::vector<Buffers> kept;
        if (kept.size() < size_t(s.n_slicings)) kept.resize(size_t(s.n_slicings));
        const int64_t room = std::min(c.n, chunks_per_round() * chunk);
        for (int64_t i = 0; i < s.n_slicings; ++i) {
            Buffers& b = kept[size_t(i)];
            if (s.slicings[i].hist != nullptr && b.adds.size() < size_t(room)) {
                b.adds.resize(size_t(room));
                b.values.resize(size_t(room));
                b.entries.resize(size_t(room));
            }
            bufs_.push_back(&b);
        }
    }

    // Chunks per round: kRoundElements rounded up to whole chunks (a call of at most
    // kRoundElements is one round).
    int64_t chunks_per_round() const { return (kRoundElements + chunk_ - 1) / chunk_; }

    // Sets where each chunk of [first, first + count) puts its rows: per slicing, the
    // chunk's rows counted per group.
    void start(int64_t first, int64_t count) {
        first_ = first;
        count_ = count;
        held_.assign(size_t(count * s_.n_slicings), HeldAdds{});
        cursors_.resize(size_t(s_.n_slicings));
        for (int64_t i = 0; i < s_.n_slicings; ++i) {
            const ReportSlicing& g = s_.slicings[i];
            if (g.hist != nullptr) cursors_[size_t(i)].resize(size_t(count * g.n_groups));
        }
    }

    // Counts chunk k's rows per group (in the task of chunk k, before its rows) and points its
    // cursors at its part of the buffers: group q's rows start where group q - 1's end.
    // Returns the first element whose code is outside its slicing's groups (counted up to it), or -1.
    int64_t prepare_chunk(int64_t k, ReportPart& part) {
        int64_t bad = INT64_MAX;
        const int64_t begin = (first_ + k) * chunk_, end = std::min(c_.n, begin + chunk_);
        const int64_t at = begin - first_ * chunk_;  // the chunk's first index in the buffers
        part.held = held_.data() + k * s_.n_slicings;
        for (int64_t i = 0; i < s_.n_slicings; ++i) {
            const ReportSlicing& g = s_.slicings[i];
            if (g.hist == nullptr) continue;
            int64_t* count = cursors_[size_t(i)].data() + k * g.n_groups;  // (counts, then cursors)
            std::fill_n(count, g.n_groups, 0);
            if (c_.row_size == 1 && g.codes != nullptr)
                bad = std::min(bad, begin + count_codes(g.codes + begin, end - begin, g.n_groups, count));
            else if (c_.row_size == 1)
                bad = std::min(bad, begin + count_codes(g.codes32 + begin, end - begin, g.n_groups, count));
            else
                for (int64_t e = begin; e < end;) {  // (runs of row_size elements share a code)
                    const int64_t row = e / c_.row_size, stop = std::min(end, (row + 1) * c_.row_size);
                    if (uint64_t(g.code_at(row)) >= uint64_t(g.n_groups)) {
                        bad = std::min(bad, e);
                        break;
                    }
                    count[g.code_at(row)] += stop - e;
                    e = stop;
                }
            for (int64_t q = 0, next = at; q < g.n_groups; ++q) next += std::exchange(count[q], next);
            Buffers& b = *bufs_[size_t(i)];
            part.held[i] = HeldAdds{count, b.adds.data(), b.values.data(), b.entries.data(), -first_ * chunk_};
        }
        return bad < end ? bad : -1;
    }

    // Adds the round's held adds into the histograms: tasks are (slicing, group) pairs.
    void add(int64_t threads) {
        std::vector<std::pair<int64_t, int64_t>> tasks;
        for (int64_t i = 0; i < s_.n_slicings; ++i)
            if (s_.slicings[i].hist != nullptr)
                for (int64_t q = 0; q < s_.slicings[i].n_groups; ++q) tasks.emplace_back(i, q);
        parallel_for(int64_t(tasks.size()), threads, [&](int64_t task) {
            const auto [i, q] = tasks[size_t(task)];
            const ReportSlicing& g = s_.slicings[i];
            const int64_t bins = hist_bins(g.mantissa_bits);
            double* hist = g.hist + 2 * bins * (g.hist_rows != nullptr ? g.hist_rows[q] : q);
            const Buffers& b = *bufs_[size_t(i)];
            const uint32_t* adds = b.adds.data();
            const HeldValue* values = b.values.data();
            const uint32_t* entries = b.entries.data();
            const int64_t* cursor = cursors_[size_t(i)].data();  // (each at the end of its rows)
            for (int64_t k = 0; k < count_; ++k) {
                const int64_t at = k * g.n_groups + q;
                const int64_t end = cursor[at], begin = q == 0 ? k * chunk_ : cursor[at - 1];
                // (the bins are known: their lines are fetched early, far enough ahead for a line
                // from memory: 16 rows ahead, the held adds took 1.8 ns a row in perf samples,
                // 128 ahead 1.1)
                constexpr int64_t ahead = 128;
                for (int64_t r = begin; r < end; ++r) {
                    if (r + ahead < end && (adds[r + ahead] & kHeldValue) == 0)
                        __builtin_prefetch(hist + adds[r + ahead], 1);
                    const uint32_t add = adds[r];
                    if ((add & kHeldValue) == 0) {  // (the other class's add would be 0.0: no change)
                        hist[add] += 1.0;
                    } else {
                        const uint32_t at = add & ~kHeldValue;
                        double* h = hist + entries[at];
                        h[0] += values[at].wy;
                        h[1] += values[at].wn;
                    }
                }
            }
        });
    }

private:
    struct Buffers {
        std::vector<uint32_t> adds;
        std::vector<HeldValue> values;
        std::vector<uint32_t> entries;
    };
    const Call& c_;
    const ReportSpec& s_;
    int64_t chunk_;
    int64_t first_ = 0, count_ = 0;
    std::vector<Buffers*> bufs_;
    std::vector<HeldAdds> held_;                  // [chunk of the round][slicing]
    std::vector<std::vector<int64_t>> cursors_;   // per slicing: [chunk * n_groups + group], where
                                                  // the group's next row goes
};

// Options level of the loss without the sample weight: label smoothing, pos_weight or (without
// focal) alpha, with values in the working precision as the kernel takes them.
bool general_options(const Call& c, bool is_double, bool focal) {
    auto in_working = [is_double](double v) { return is_double ? v : double(float(v)); };
    return in_working(c.label_smoothing) != 0.0 || c.pos_weight != nullptr ||
           in_working(c.pos_weight_scalar) != 1.0 || (c.has_alpha && !focal);
}

// One chunk written straight into the spec's outputs, which the caller zeroed: the same sums as a
// partial merged into them (0 + x is x), without the partial's copy of every group's sums.
Result run_in_place(const Call& c, ReportSpec& s, ReportFn fn, HeldRound* held) {
    CallHist call_hist;
    std::vector<double*> slice_sums, slice_hist;
    for (int64_t i = 0; i < s.n_slicings; ++i) {
        slice_sums.push_back(s.slicings[i].sums);
        slice_hist.push_back(s.slicings[i].hist);
    }
    std::vector<TopLoss> top(size_t(s.top_k));
    ReportPart part;
    part.sums = s.sums;
    part.hist = call_hist.floats();
    part.slice_sums = slice_sums.data();
    part.slice_hist = slice_hist.data();
    part.top = top.data();
    part.counts = call_hist.take();
    int64_t bad = first_code_outside(c, s, 0, c.n, held != nullptr);
    if (held != nullptr) {
        held->start(0, 1);
        const int64_t counted_bad = held->prepare_chunk(0, part);
        if (counted_bad >= 0) bad = bad < 0 ? counted_bad : std::min(bad, counted_bad);
    }
    if (bad >= 0) {
        Result result;
        result.fault = Fault::group_code;
        result.fault_index = bad;
        return result;
    }
    try {
        if (c.n > 0) fn(c, s, 0, c.n, part);
    } catch (...) {
        call_hist.widen(part.hist_begin, part.hist_end);  // (zeroed when given back)
        throw;
    }
    call_hist.widen(part.hist_begin, part.hist_end);  // (what it wrote: zeroed at the end)
    Result result;
    if (part.fault != Fault::none) {
        result.fault = part.fault;
        result.fault_index = part.fault_index;
        return result;
    }
    call_hist.finish(s.hist);
    if (held != nullptr) held->add(threads_for(c.n, c.threads));
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
    bool group_hists = false;
    for (int64_t i = 0; i < s.n_slicings; ++i) {
        per_chunk += s.slicings[i].n_groups * s.slicings[i].stride;
        group_hists = group_hists || s.slicings[i].hist != nullptr;
    }
    const int64_t units = std::max<int64_t>(1, (c.n + kChunkUnit - 1) / kChunkUnit);
    // Very many groups: one chunk, written in place (a copy of every group's sums per chunk
    // would cost more memory and time than a second thread saves on this scatter-bound pass).
    // A chunk's partial is zeroed and merged (the whole input's histogram where rows touched
    // it, 2 MiB), so a chunk has at least per_chunk / 2 rows: a 1M-row batch is 6 chunks, not 16.
    const int64_t by_size = std::min(kPartialsBudget / per_chunk, 2 * c.n / per_chunk);
    int64_t n_chunks =
        per_chunk > kLargeGroupSums ? 1 : std::clamp<int64_t>(by_size, 1, std::min(kMaxChunks, units));
    // But a call of 2 to 4 chunk units is cut in as many chunks: rows of weight 1 with labels 0
    // or 1 (the usual call) are counted in bytes (CallHist) and never touch a chunk's float64
    // histogram, whose zeroing and merging then cost nothing, and a call of 131072 to 524287
    // rows ran as one chunk, on one thread (docs/report.md, "Cost"). Whatever the weights: a
    // call with weights of 1 gives the same bits as one without
    if (per_chunk <= kLargeGroupSums) n_chunks = std::max(n_chunks, std::min(units, kMinChunks));
    if (n_chunks == 1) {
        // (a call that group histograms may hold sums already: its adds after every check)
        std::optional<HeldRound> held;
        if (group_hists && c.n > 0 && c.n <= kRoundElements) held.emplace(c, s, c.n);
        return run_in_place(c, s, fn, held ? &*held : nullptr);
    }
    // (group histograms: chunks small enough that rounds of them hold their adds)
    if (group_hists) n_chunks = std::max(n_chunks, (units + kHeldChunk / kChunkUnit - 1) / (kHeldChunk / kChunkUnit));
    const int64_t chunk = (units + n_chunks - 1) / n_chunks * kChunkUnit;
    n_chunks = (c.n + chunk - 1) / chunk;
    const int64_t threads = std::min<int64_t>(threads_for(c.n, c.threads), n_chunks);

    // Each chunk's partial is merged as soon as every chunk before it is: at most about
    // `threads` partials are alive at once, and the merge order is the chunk order.
    // Merged partials are cleared and reused (fresh pages would cost a page fault each).
    // With group histograms the chunks run in rounds, each followed by its held adds.
    std::vector<std::unique_ptr<Partial>> done(static_cast<size_t>(n_chunks));
    std::vector<std::unique_ptr<Partial>> spare;
    std::vector<TopLoss> top;
    std::mutex mutex;
    int64_t next = 0;
    Result result;
    std::optional<HeldRound> held;
    if (group_hists) held.emplace(c, s, chunk);
    CallHist call_hist;
    const int64_t per_round = held ? held->chunks_per_round() : n_chunks;
    for (int64_t first = 0; first < n_chunks && result.fault == Fault::none; first += per_round) {
        const int64_t count = std::min(per_round, n_chunks - first);
        if (held) held->start(first, count);
        parallel_for(count, std::min(threads, count), [&](int64_t k) {
            const int64_t i = first + k;
            const int64_t begin = i * chunk, end = std::min(c.n, begin + chunk);
            std::unique_ptr<Partial> partial;
            {
                std::lock_guard<std::mutex> lock(mutex);
                if (!spare.empty()) partial = std::move(spare.back()), spare.pop_back();
            }
            if (partial) partial->clear();
            else partial = std::make_unique<Partial>(s);
            int64_t bad = first_code_outside(c, s, begin, end, bool(held));
            if (held) {
                const int64_t counted_bad = held->prepare_chunk(k, partial->part);
                if (counted_bad >= 0) bad = bad < 0 ? counted_bad : std::min(bad, counted_bad);
            }
            if (bad >= 0) {
                partial->part.fault = Fault::group_code;  // (before the codes index anything more)
                partial->part.fault_index = bad;
            } else {
                partial->part.counts = call_hist.take();
                fn(c, s, begin, end, partial->part);
                call_hist.give(partial->part.counts);
            }
            std::lock_guard<std::mutex> lock(mutex);
            done[size_t(i)] = std::move(partial);
            for (; next < n_chunks && done[size_t(next)]; ++next) {
                const Partial& p = *done[size_t(next)];
                if (p.part.fault != Fault::none && result.fault == Fault::none) {
                    result.fault = p.part.fault;
                    result.fault_index = p.part.fault_index;
                }
                if (result.fault == Fault::none) merge(s, p, call_hist, top);
                spare.push_back(std::move(done[size_t(next)]));
            }
        });
        if (held && result.fault == Fault::none) held->add(threads);
    }
    if (result.fault != Fault::none) return result;
    call_hist.finish(s.hist);
    std::sort(top.begin(), top.end(), ranks_before);
    s.top_found = std::min<int64_t>(s.top_k, int64_t(top.size()));
    std::copy_n(top.begin(), s.top_found, s.top);
    result.total.loss = s.sums[rs_wl];
    result.total.weight = s.sums[rs_w];
    result.total.count = s.sums[rs_count];
    return result;
}

}  // namespace fastbce
