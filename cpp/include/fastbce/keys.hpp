// A table of text keys and their int64 codes that lasts across batches: group labels arrive a
// batch (a parquet row group's dictionary) at a time, and each batch's values are hashed once
// against the table, never the keys seen before (Arrow's index_in rebuilt a hash table of every
// key seen for each batch: a million keys cost 0.4 s per row group).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace fastbce {

class KeyCodes {
public:
    // codes[i] = the code of key i of an Arrow string array (offsets, data), or -1 if unknown.
    template <class Offset>
    void lookup(const Offset* offsets, const char* data, int64_t n, int64_t* codes) const {
        for (int64_t i = 0; i < n; ++i) {
            const int64_t entry = find(view(offsets, data, i));
            codes[i] = entry < 0 ? -1 : codes_[size_t(entry)];
        }
    }

    // Adds key positions[i] of the array with code codes[i] (a key already there is kept).
    template <class Offset>
    void insert(const Offset* offsets, const char* data, const int64_t* positions, const int64_t* codes,
                int64_t n) {
        for (int64_t i = 0; i < n; ++i) add(view(offsets, data, positions[i]), codes[i]);
    }

    // Forgets the keys whose code is >= mark (a batch that failed).
    void forget(int64_t mark) {
        KeyCodes kept;
        for (size_t e = 0; e < codes_.size(); ++e)
            if (codes_[e] < mark) kept.add(key(int64_t(e)), codes_[e]);
        *this = std::move(kept);
    }

    int64_t size() const { return int64_t(codes_.size()); }

private:
    std::string chars_;                // the keys' bytes, one after another
    std::vector<int64_t> starts_{0};   // key e is chars_[starts_[e], starts_[e + 1])
    std::vector<int64_t> codes_;       // the code of key e
    std::vector<int64_t> slots_;       // open addressing: key index + 1, or 0 for empty

    template <class Offset>
    static std::string_view view(const Offset* offsets, const char* data, int64_t i) {
        return {data + offsets[i], size_t(offsets[i + 1] - offsets[i])};
    }
    std::string_view key(int64_t e) const {
        return {chars_.data() + starts_[size_t(e)], size_t(starts_[size_t(e) + 1] - starts_[size_t(e)])};
    }
    static size_t hash(std::string_view k) { return std::hash<std::string_view>{}(k); }

    int64_t find(std::string_view k) const {
        if (slots_.empty()) return -1;
        const size_t mask = slots_.size() - 1;
        for (size_t s = hash(k) & mask;; s = (s + 1) & mask) {
            const int64_t e = slots_[s] - 1;
            if (e < 0) return -1;
            if (key(e) == k) return e;
        }
    }

    void add(std::string_view k, int64_t code) {
        if (find(k) >= 0) return;
        if (2 * (codes_.size() + 1) > slots_.size()) grow();
        chars_.append(k);
        starts_.push_back(int64_t(chars_.size()));
        codes_.push_back(code);
        place(int64_t(codes_.size()) - 1);
    }

    void place(int64_t e) {
        const size_t mask = slots_.size() - 1;
        size_t s = hash(key(e)) & mask;
        while (slots_[s] != 0) s = (s + 1) & mask;
        slots_[s] = e + 1;
    }

    void grow() {  // at most half full: short probes
        slots_.assign(std::max<size_t>(16, 2 * slots_.size()), 0);
        for (int64_t e = 0; e < int64_t(codes_.size()); ++e) place(e);
    }
};

// into[rows[i]] += from[i] for n rows of `width` float64 values each (rows distinct): a batch's
// per-group sums added to the groups' running sums, in one pass over memory.
inline void add_rows(double* into, int64_t width, const int64_t* rows, const double* from, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        double* to = into + rows[i] * width;
        const double* add = from + i * width;
        for (int64_t k = 0; k < width; ++k) to[k] += add[k];
    }
}

}  // namespace fastbce
