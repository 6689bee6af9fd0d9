// Group keys and their int64 codes, kept across batches: group labels arrive a batch (a parquet
// row group, or its dictionary) at a time and each row is hashed once against the keys seen, never
// the keys seen before (Arrow's index_in rebuilt a hash table of every key seen for each batch: a
// million keys cost 0.4 s per row group). The text keys live only here (their bytes, one after
// another), not as Python strings too: a million keys of 8 bytes take ~23 MB instead of ~190 MB.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace fastbce {

// One Arrow string (or large_string) array: offsets (n + 1), bytes, and the validity bitmap (null:
// every row valid) starting at bit `bit_offset`.
template <class Offset>
struct TextColumn {
    const Offset* offsets;
    const char* data;
    const uint8_t* valid;
    int64_t bit_offset;
    int64_t n;

    bool is_null(int64_t i) const {
        if (valid == nullptr) return false;
        const int64_t b = bit_offset + i;
        return ((valid[b >> 3] >> (b & 7)) & 1) == 0;
    }
    std::string_view at(int64_t i) const { return {data + offsets[i], size_t(offsets[i + 1] - offsets[i])}; }
};

// Text keys in the order of their codes (key e has code e), and at most one missing key (null),
// which has a code but no text and is never found by text. 4 bytes a slot and 4 a key offset,
// plus the bytes, growing by an eighth: a million keys of 8 bytes take about 23 MB (8-byte slots
// and offsets, stored hashes and doubling took 45 MB). The offsets widen to 8 bytes once the
// bytes pass `narrow_limit` (4 GiB; tests set a small one). The hash is not stored: a probe
// compares the key's bytes (most probes find their key at once, whose bytes are read then
// anyway), and a rehash hashes the keys again.
class KeyCodes {
public:
    static constexpr uint64_t kNarrowLimit = UINT32_MAX;
    static constexpr int64_t kMaxKeys = int64_t(UINT32_MAX) - 1;  // a slot holds key + 1
    static constexpr int64_t kAhead = 8;                           // lookup's prefetch distance (rows)
    static constexpr size_t kFetchAheadSlots = size_t(1) << 17;    // from this many slots (512 KiB)

    explicit KeyCodes(uint64_t narrow_limit = kNarrowLimit)
        : narrow_limit_(std::min(narrow_limit, kNarrowLimit)) {}

    // codes[i] = the code of row i in [begin, end), -1 if not seen (reads only: threads may share).
    // A row's home slot, the offset of the key it holds and that key's bytes are three dependent
    // cache misses in a large table (row by row, a lookup among a million keys took about 50 ns),
    // so they are fetched ahead in a pipeline: row i + 3 kAhead's slot, row i + 2 kAhead's offset
    // and row i + kAhead's bytes while row i is probed as find does (about 35 ns).
    template <class Offset>
    void lookup(const TextColumn<Offset>& col, int64_t begin, int64_t end, int64_t* codes) const {
        if (slots_.size() < kFetchAheadSlots) {  // (a table in cache: prefetches would cost, not save)
            for (int64_t i = begin; i < end; ++i) codes[i] = col.is_null(i) ? null_ : find(col.at(i));
            return;
        }
        const size_t mask = slots_.size() - 1;
        constexpr int64_t kRing = 4 * kAhead;  // (a power of two)
        size_t home[kRing];
        auto fetch_slot = [&](int64_t r) {
            home[r % kRing] = size_t(hash(col.at(r))) & mask;
            __builtin_prefetch(&slots_[home[r % kRing]]);
        };
        for (int64_t r = begin; r < std::min(end, begin + 3 * kAhead); ++r) fetch_slot(r);
        for (int64_t i = begin; i < end; ++i) {
            if (i + 3 * kAhead < end) fetch_slot(i + 3 * kAhead);
            if (i + 2 * kAhead < end) {
                const uint32_t slot = slots_[home[(i + 2 * kAhead) % kRing]];
                if (slot != 0) __builtin_prefetch(start_of(int64_t(slot) - 1));
            }
            if (i + kAhead < end) {
                const uint32_t slot = slots_[home[(i + kAhead) % kRing]];
                if (slot != 0) __builtin_prefetch(chars_.data() + start(int64_t(slot) - 1));
            }
            codes[i] = col.is_null(i) ? null_ : find_from(col.at(i), home[i % kRing]);
        }
    }

    // Each row whose code is < 0 gets its code, its key added if new (in row order).
    template <class Offset>
    void add_unknown(const TextColumn<Offset>& col, int64_t* codes) {
        for (int64_t i = 0; i < col.n; ++i)
            if (codes[i] < 0) codes[i] = col.is_null(i) ? null_code() : code(col.at(i));
    }

    int64_t find(std::string_view k) const {
        if (slots_.empty()) return -1;
        return find_from(k, size_t(hash(k)) & (slots_.size() - 1));
    }
    // find's probe from the key's home slot (slots_ not empty).
    int64_t find_from(std::string_view k, size_t home) const {
        const size_t mask = slots_.size() - 1;
        for (size_t s = home;; s = (s + 1) & mask) {
            const uint32_t slot = slots_[s];
            if (slot == 0) return -1;
            if (same(key(int64_t(slot) - 1), k)) return int64_t(slot) - 1;
        }
    }

    int64_t code(std::string_view k) {  // the code of a key, added if new
        const int64_t e = find(k);
        if (e >= 0) return e;
        if (size() >= kMaxKeys) throw std::length_error("more than 2^32 - 2 distinct group keys");
        if (2 * (size_t(size()) + 1) > slots_.size()) rehash(std::max<size_t>(16, 2 * slots_.size()));
        room_for(chars_, k.size());
        chars_.insert(chars_.end(), k.begin(), k.end());
        push_end();
        place(size() - 1, k);
        return size() - 1;
    }

    int64_t null_code() {  // the code of the missing key, added if new
        if (null_ < 0) {
            if (size() >= kMaxKeys) throw std::length_error("more than 2^32 - 2 distinct group keys");
            null_ = size();
            push_end();
        }
        return null_;
    }
    int64_t find_null() const { return null_; }

    // Forgets the keys whose code is >= mark (a batch that failed).
    void forget(int64_t mark) {
        if (mark >= size()) return;
        chars_.resize(size_t(start(mark)));
        if (wide()) starts64_.resize(size_t(mark) + 1);
        else starts32_.resize(size_t(mark) + 1);
        if (null_ >= mark) null_ = -1;
        rehash(slots_.size());
    }

    int64_t size() const { return int64_t(wide() ? starts64_.size() : starts32_.size()) - 1; }
    bool is_null(int64_t e) const { return e == null_; }
    std::string_view key(int64_t e) const {
        const uint64_t a = start(e), b = start(e + 1);
        return {chars_.data() + a, size_t(b - a)};
    }
    uint64_t start(int64_t e) const { return wide() ? starts64_[size_t(e)] : starts32_[size_t(e)]; }
    // where start(e) is held (lookup prefetches it)
    const void* start_of(int64_t e) const {
        if (wide()) return &starts64_[size_t(e)];
        return &starts32_[size_t(e)];
    }
    bool wide() const { return !starts64_.empty(); }

    // The bytes held (capacities: what the allocations take).
    int64_t nbytes() const {
        return int64_t(chars_.capacity() + starts32_.capacity() * sizeof(uint32_t) +
                       starts64_.capacity() * sizeof(uint64_t) + slots_.capacity() * sizeof(uint32_t));
    }

    // The codes sorted by key (bytewise: the order of the code points for UTF-8), the null last,
    // into out (size() of them).
    void order(int64_t* out) const {
        int64_t n = 0;
        for (int64_t e = 0; e < size(); ++e)
            if (e != null_) out[n++] = e;
        std::sort(out, out + n, [this](int64_t a, int64_t b) { return key(a) < key(b); });
        if (null_ >= 0) out[n] = null_;
    }

    // Everything as (bytes, starts, null code) and back (pickling).
    std::string_view chars() const { return {chars_.data(), chars_.size()}; }
    void restore(std::string_view chars, const int64_t* starts, int64_t n_starts, int64_t null) {
        if (n_starts < 1 || starts[0] != 0 || uint64_t(starts[n_starts - 1]) != chars.size() ||
            n_starts - 1 > kMaxKeys || null < -1 || null >= n_starts - 1)
            throw std::invalid_argument("KeyCodes: inconsistent state");
        for (int64_t e = 0; e + 1 < n_starts; ++e)
            if (starts[e + 1] < starts[e]) throw std::invalid_argument("KeyCodes: inconsistent state");
        chars_.assign(chars.begin(), chars.end());
        starts32_.clear();
        starts64_.clear();
        if (chars_.size() > narrow_limit_) {
            starts32_.shrink_to_fit();
            starts64_.assign(starts, starts + n_starts);
        } else {
            starts32_.assign(starts, starts + n_starts);
        }
        null_ = null;
        size_t slots = 16;
        while (slots < 2 * size_t(size())) slots *= 2;
        rehash(slots);
    }

private:
    std::vector<char> chars_;            // the keys' bytes, one after another
    std::vector<uint32_t> starts32_{0};  // key e is chars_[starts[e], starts[e + 1]) (narrow)
    std::vector<uint64_t> starts64_;     // the same once wide (then starts32_ is empty)
    std::vector<uint32_t> slots_;        // open addressing: key + 1, or 0 for empty
    int64_t null_ = -1;                  // the code of the missing key, -1 if none
    uint64_t narrow_limit_;              // the offsets widen when the bytes pass this

    // The end of the last key, just appended to chars_ (the offsets widened if it needs it).
    void push_end() {
        const uint64_t end = chars_.size();
        if (!wide() && end > narrow_limit_) {
            starts64_.assign(starts32_.begin(), starts32_.end());
            starts32_.clear();
            starts32_.shrink_to_fit();
        }
        if (wide()) room_for(starts64_, 1), starts64_.push_back(end);
        else room_for(starts32_, 1), starts32_.push_back(uint32_t(end));
    }

    // Room for `more` elements, growing by an eighth (not doubling: a table of a million keys
    // keeps little spare room; the copies add up to a few times its size, a few milliseconds).
    template <class V>
    static void room_for(V& v, size_t more) {
        if (v.size() + more > v.capacity())
            v.reserve(std::max(v.size() + more, v.capacity() + v.capacity() / 8 + 64));
    }

    // a == b, short keys compared inline (a call of memcmp per probe was about a fifth of a lookup):
    // 4 to 16 bytes as two words that may overlap, reading no byte outside either key.
    static bool same(std::string_view a, std::string_view b) {
        const size_t n = a.size();
        if (n != b.size()) return false;
        if (n > 16) return std::memcmp(a.data(), b.data(), n) == 0;
        if (n >= 8)
            return word<uint64_t>(a, 0) == word<uint64_t>(b, 0) && word<uint64_t>(a, n - 8) == word<uint64_t>(b, n - 8);
        if (n >= 4)
            return word<uint32_t>(a, 0) == word<uint32_t>(b, 0) && word<uint32_t>(a, n - 4) == word<uint32_t>(b, n - 4);
        for (size_t i = 0; i < n; ++i)
            if (a[i] != b[i]) return false;
        return true;
    }
    template <class W>
    static W word(std::string_view k, size_t at) {
        W w;
        std::memcpy(&w, k.data() + at, sizeof w);
        return w;
    }
    // A multiply-xorshift hash of 8-byte words (the keys are short: a country, an id).
    static uint64_t hash(std::string_view k) {
        uint64_t h = 0x9E3779B97F4A7C15ull ^ k.size();
        size_t i = 0;
        for (; i + 8 <= k.size(); i += 8) {
            uint64_t w;
            std::memcpy(&w, k.data() + i, 8);
            h = (h ^ w) * 0xFF51AFD7ED558CCDull;
            h ^= h >> 32;
        }
        if (i < k.size()) {
            uint64_t w = 0;
            std::memcpy(&w, k.data() + i, k.size() - i);
            h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        }
        h ^= h >> 33;
        h *= 0xC4CEB9FE1A85EC53ull;
        return h ^ (h >> 29);
    }

    void place(int64_t e, std::string_view k) {
        const size_t mask = slots_.size() - 1;
        size_t s = size_t(hash(k)) & mask;
        while (slots_[s] != 0) s = (s + 1) & mask;
        slots_[s] = uint32_t(e + 1);
    }

    // A table of `slots` slots (a power of two, at least twice the keys: short probes), the
    // keys hashed again. The old table goes first: the two are never held at once.
    void rehash(size_t slots) {
        std::vector<uint32_t>().swap(slots_);
        slots_.assign(std::max<size_t>(16, slots), 0);
        for (int64_t e = 0; e < size(); ++e)
            if (e != null_) place(e, key(e));
    }
};

// The range of n > 0 integers (vectorised; int64, the usual codes, on the CPU's widest vectors).
template <class T>
void int_range(const T* v, int64_t n, int64_t& lo, int64_t& hi) {
    T a = v[0], b = v[0];
    for (int64_t i = 0; i < n; ++i) {
        a = v[i] < a ? v[i] : a;
        b = v[i] > b ? v[i] : b;
    }
    lo = int64_t(a), hi = int64_t(b);
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
inline void int64_range(const int64_t* v, int64_t n, int64_t& lo, int64_t& hi) {
    int_range(v, n, lo, hi);
}

// (int32: Arrow dictionary indices and int32 codes, checked a batch at a time; the baseline
// build has no 32-bit vector min and max before SSE4.1)
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
inline void int32_range(const int32_t* v, int64_t n, int64_t& lo, int64_t& hi) {
    int_range(v, n, lo, hi);
}

// marks[v - base] = 1 for each value v in [base, base + size), stopping once all are marked: with
// few labels, every one turns up within the first rows and the rest is never read.
template <class T>
void mark_ints(const T* v, int64_t n, int64_t base, uint8_t* marks, int64_t size) {
    int64_t left = size;
    for (int64_t i = 0; i < n && left > 0; ++i) {
        const uint64_t at = uint64_t(int64_t(v[i])) - uint64_t(base);
        if (at < uint64_t(size) && marks[at] == 0) {
            marks[at] = 1;
            --left;
        }
    }
}

// out[i] = table[v[i] - base] (every value in the table's range).
template <class T>
void gather_codes(const T* v, int64_t n, int64_t base, const int64_t* table, int64_t* out) {
    for (int64_t i = 0; i < n; ++i) out[i] = table[uint64_t(int64_t(v[i])) - uint64_t(base)];
}

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
