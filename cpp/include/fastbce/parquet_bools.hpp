#pragma once
// Boolean columns of parquet files, read without pyarrow's boolean decode: pyarrow 26 spends
// about 6 ns a row turning a boolean column into an Arrow bitmap (a byte per value first, then
// bits), 2.5x what it spends on a float column of 4 bytes a row, and the largest single cost of
// `fastbce score` on a file of clicks (docs/scoring.md, "Boolean labels"). A data page of a
// boolean column without nulls already holds the bitmap (PLAIN: bit-packed, first value in the
// lowest bit, as Arrow's), or runs of it (RLE), so the values are copied, not decoded.
//
// Two parts, both from the format's specification (parquet-format's parquet.thrift and
// Encodings.md; Thrift's compact protocol):
// - page_headers: the pages of a column chunk (its bytes as stored), from their Thrift headers;
// - bool_page_bits: one page's values (decompressed by the caller, pyarrow's codecs) into a bitmap,
//   after checking its definition levels say no value is null.
// Anything these do not take (a null, an encoding other than PLAIN or RLE, repeated values, bytes
// that do not parse) throws FormatError; the caller then reads the column with pyarrow.
// No Python here (module.cpp binds it).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace fastbce::parquet {

struct FormatError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// parquet.thrift's Encoding values used here (page types are the caller's to tell apart)
inline constexpr int32_t kPlain = 0;
inline constexpr int32_t kRle = 3;

// A page of a column chunk: where its payload starts in the chunk and what its header says.
struct PageHeader {
    int64_t payload = 0;  // offset of the payload (after the header) in the chunk
    int32_t type = -1;
    int32_t uncompressed_size = -1;
    int32_t compressed_size = -1;
    int32_t num_values = -1;
    int32_t encoding = -1;
    int32_t levels_encoding = kRle;  // v1: definition_level_encoding
    int32_t levels_bytes = 0;        // v2: definition_levels_byte_length
    int32_t repetition_bytes = 0;    // v2: repetition_levels_byte_length
    bool is_compressed = true;       // v2 (the format's default)
};

// Thrift's compact protocol, reading only: field headers, zigzag varints, and skipping whatever
// a header holds that is not needed (statistics, CRCs, fields added by later versions).
class CompactReader {
public:
    CompactReader(const uint8_t* data, int64_t size) : p_(data), begin_(data), end_(data + size) {}

    int64_t offset() const { return p_ - begin_; }

    uint8_t byte() {
        if (p_ >= end_) throw FormatError("a page header runs past the column chunk");
        return *p_++;
    }

    uint64_t varint() {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            const uint8_t b = byte();
            v |= uint64_t(b & 0x7f) << shift;
            if ((b & 0x80) == 0) return v;
        }
        throw FormatError("a varint of more than 10 bytes");
    }

    int64_t zigzag() {
        const uint64_t v = varint();
        return int64_t(v >> 1) ^ -int64_t(v & 1);
    }

    int32_t i32() {
        const int64_t v = zigzag();
        if (v < INT32_MIN || v > INT32_MAX) throw FormatError("an i32 out of range");
        return int32_t(v);
    }

    // Reads the fields of the struct at hand up to its stop byte: on_field(id, type) reads or
    // skips each field's value. (Compact headers hold the id's difference from the previous one.)
    template <class OnField>
    void fields(OnField&& on_field) {
        int64_t last = 0;
        for (uint8_t h = byte(); h != 0; h = byte()) {
            const int delta = h >> 4;
            const int64_t id = delta != 0 ? last + delta : zigzag();
            if (id < INT16_MIN || id > INT16_MAX) throw FormatError("a field id out of range");
            on_field(int(id), h & 0x0f);
            last = id;
        }
    }

    // Skips a value of compact type `type` (in a struct: a bool has no bytes; in a list: one).
    void skip(int type, int depth, bool in_list = false) {
        if (depth > 32) throw FormatError("Thrift structs nested too deep");
        switch (type) {
            case 1:
            case 2:
                if (in_list) byte();
                return;
            case 3: byte(); return;
            case 4:
            case 5:
            case 6: varint(); return;
            case 7: advance(8); return;
            case 8: advance(length()); return;
            case 9:
            case 10: {
                const uint8_t h = byte();
                const int element = h & 0x0f;
                const int64_t n = (h >> 4) == 15 ? length() : int64_t(h >> 4);
                for (int64_t i = 0; i < n; ++i) skip(element, depth + 1, true);
                return;
            }
            case 11: {
                const int64_t n = length();
                if (n == 0) return;
                const uint8_t kinds = byte();
                for (int64_t i = 0; i < n; ++i) skip(kinds >> 4, depth + 1, true), skip(kinds & 0x0f, depth + 1, true);
                return;
            }
            case 12: fields([&](int, int t) { skip(t, depth + 1); }); return;
            default: throw FormatError("an unknown Thrift type " + std::to_string(type));
        }
    }

private:
    // A length or a count: at most the bytes left (each element takes one at least).
    int64_t length() {
        const uint64_t n = varint();
        if (n > uint64_t(end_ - p_)) throw FormatError("a length past the column chunk");
        return int64_t(n);
    }

    void advance(int64_t n) {
        if (n > end_ - p_) throw FormatError("a value runs past the column chunk");
        p_ += n;
    }

    const uint8_t* p_;
    const uint8_t* begin_;
    const uint8_t* end_;
};

namespace detail {

inline int32_t i32_field(CompactReader& r, int type) {
    if (type != 5) throw FormatError("a page header field of the wrong type");
    return r.i32();
}

inline void read_data_page(CompactReader& r, PageHeader& page) {
    r.fields([&](int id, int type) {
        switch (id) {
            case 1: page.num_values = i32_field(r, type); break;
            case 2: page.encoding = i32_field(r, type); break;
            case 3: page.levels_encoding = i32_field(r, type); break;
            default: r.skip(type, 1);  // repetition levels' encoding, statistics
        }
    });
}

inline void read_data_page_v2(CompactReader& r, PageHeader& page) {
    r.fields([&](int id, int type) {
        switch (id) {
            case 1: page.num_values = i32_field(r, type); break;
            case 4: page.encoding = i32_field(r, type); break;
            case 5: page.levels_bytes = i32_field(r, type); break;
            case 6: page.repetition_bytes = i32_field(r, type); break;
            case 7:
                if (type != 1 && type != 2) throw FormatError("is_compressed is not a bool");
                page.is_compressed = type == 1;
                break;
            default: r.skip(type, 1);  // num_nulls (the levels tell), num_rows, statistics
        }
    });
}

}  // namespace detail

// The pages of a column chunk (`size` bytes, from its first page on), in order. Checks that each
// header parses and each payload lies within the chunk; what the pages hold is bool_page_bits'.
inline std::vector<PageHeader> page_headers(const uint8_t* chunk, int64_t size) {
    std::vector<PageHeader> pages;
    int64_t at = 0;
    while (at < size) {
        CompactReader r(chunk + at, size - at);
        PageHeader page;
        r.fields([&](int id, int type) {
            switch (id) {
                case 1: page.type = detail::i32_field(r, type); break;
                case 2: page.uncompressed_size = detail::i32_field(r, type); break;
                case 3: page.compressed_size = detail::i32_field(r, type); break;
                case 5:
                    if (type != 12) throw FormatError("data_page_header is not a struct");
                    detail::read_data_page(r, page);
                    break;
                case 8:
                    if (type != 12) throw FormatError("data_page_header_v2 is not a struct");
                    detail::read_data_page_v2(r, page);
                    break;
                default: r.skip(type, 0);  // crc, the index and dictionary pages' headers
            }
        });
        if (page.type < 0 || page.compressed_size < 0 || page.uncompressed_size < 0)
            throw FormatError("a page header without its type or sizes");
        page.payload = at + r.offset();
        if (page.compressed_size > size - page.payload) throw FormatError("a page runs past the column chunk");
        at = page.payload + page.compressed_size;
        pages.push_back(page);
    }
    return pages;
}

// Appends bits to a zeroed bitmap (Arrow's order: bit i of byte k is value 8k + i).
class BitmapWriter {
public:
    BitmapWriter(uint8_t* out, int64_t capacity_bits, int64_t start) : out_(out), capacity_(capacity_bits), at_(start) {}

    int64_t position() const { return at_; }

    // n values from bit-packed bytes (first value in the lowest bit of src[0])
    void bits(const uint8_t* src, int64_t n) {
        room(n);
        const int shift = int(at_ & 7);
        const int64_t whole = n >> 3;
        uint8_t* dst = out_ + (at_ >> 3);
        if (shift == 0) {
            std::memcpy(dst, src, size_t(whole));
        } else {
            for (int64_t k = 0; k < whole; ++k) {
                dst[k] = uint8_t(dst[k] | (src[k] << shift));
                dst[k + 1] = uint8_t(src[k] >> (8 - shift));
            }
        }
        at_ += whole << 3;
        const int rest = int(n & 7);
        if (rest != 0) {
            const unsigned last = src[whole] & ((1u << rest) - 1u);
            for (int b = 0; b < rest; ++b)
                if ((last >> b) & 1u) out_[(at_ + b) >> 3] = uint8_t(out_[(at_ + b) >> 3] | (1u << ((at_ + b) & 7)));
            at_ += rest;
        }
    }

    // n copies of one value
    void run(bool value, int64_t n) {
        room(n);
        if (!value) {
            at_ += n;  // (the bitmap is zeroed)
            return;
        }
        int64_t i = at_, end = at_ + n;
        for (; i < end && (i & 7) != 0; ++i) out_[i >> 3] = uint8_t(out_[i >> 3] | (1u << (i & 7)));
        const int64_t bytes = (end - i) >> 3;
        std::memset(out_ + (i >> 3), 0xff, size_t(bytes));
        for (i += bytes << 3; i < end; ++i) out_[i >> 3] = uint8_t(out_[i >> 3] | (1u << (i & 7)));
        at_ = end;
    }

private:
    void room(int64_t n) {
        if (n < 0 || n > capacity_ - at_) throw FormatError("more values than the row group's rows");
    }

    uint8_t* out_;
    int64_t capacity_;
    int64_t at_;
};

namespace detail {

// The RLE / bit-packing hybrid of bit width 1 (Encodings.md), `n` values from `data`: calls
// run(value, count) and bits(bytes, count). Throws if the bytes end first.
template <class Run, class Bits>
void hybrid_width1(const uint8_t* data, int64_t size, int64_t n, Run&& run, Bits&& bits) {
    CompactReader r(data, size);  // (its unsigned varint is the hybrid's ULEB128 header)
    int64_t done = 0;
    while (done < n) {
        const uint64_t header = r.varint();
        if ((header & 1) == 0) {
            const uint8_t value = r.byte();
            if (value > 1) throw FormatError("a run of a value other than 0 or 1");
            const int64_t count = int64_t(std::min<uint64_t>(header >> 1, uint64_t(n - done)));
            run(value == 1, count);
            done += count;
        } else {
            const uint64_t groups = header >> 1;  // of 8 values, one byte each at width 1
            const int64_t at = r.offset();
            if (groups > uint64_t(size - at)) throw FormatError("bit-packed values run past the page");
            const int64_t count = int64_t(std::min<uint64_t>(groups * 8, uint64_t(n - done)));
            bits(data + at, count);
            for (uint64_t g = 0; g < groups; ++g) r.byte();
            done += count;
        }
    }
}

inline uint32_t le32(const uint8_t* p) {  // (the format's order on any host)
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

}  // namespace detail

// One data page's values, none null, appended to `out` from its bit `start`; returns the bit
// after them. `page` is the payload as decompressed: a v1 page whole, a v2 page as its levels
// followed by its decompressed values. `levels`: -1 when a v1 page of an optional column starts
// with its definition levels (a 4-byte length, then the hybrid), n >= 0 for the n bytes of a v2
// page's levels (0: a required column, no levels). Throws FormatError on a null or what it
// does not read.
inline int64_t bool_page_bits(const uint8_t* page, int64_t size, int64_t levels, int64_t num_values, int32_t encoding,
                              uint8_t* out, int64_t capacity_bits, int64_t start) {
    if (num_values < 0) throw FormatError("a negative count of values");
    int64_t at = 0;
    if (levels == -1) {
        if (size < 4) throw FormatError("a page shorter than its levels' length");
        levels = int64_t(detail::le32(page));
        at = 4;
    }
    if (levels < 0 || levels > size - at) throw FormatError("definition levels past the page");
    if (levels > 0) {  // all 1: every value defined
        const uint8_t* lv = page + at;
        detail::hybrid_width1(
            lv, levels, num_values,
            [](bool value, int64_t count) {
                if (!value && count > 0) throw FormatError("a null value");
            },
            [](const uint8_t* bytes, int64_t count) {
                for (int64_t k = 0; k < (count >> 3); ++k)
                    if (bytes[k] != 0xff) throw FormatError("a null value");
                const int rest = int(count & 7);
                if (rest != 0 && (bytes[count >> 3] & ((1u << rest) - 1u)) != ((1u << rest) - 1u))
                    throw FormatError("a null value");
            });
        at += levels;
    }
    const uint8_t* values = page + at;
    const int64_t values_size = size - at;
    BitmapWriter w(out, capacity_bits, start);
    if (encoding == kPlain) {
        if ((num_values + 7) / 8 > values_size) throw FormatError("a page shorter than its values");
        w.bits(values, num_values);
    } else if (encoding == kRle) {
        if (values_size < 4) throw FormatError("a page shorter than its values' length");
        const int64_t length = int64_t(detail::le32(values));
        if (length > values_size - 4) throw FormatError("RLE values past the page");
        detail::hybrid_width1(
            values + 4, length, num_values, [&](bool value, int64_t count) { w.run(value, count); },
            [&](const uint8_t* bytes, int64_t count) { w.bits(bytes, count); });
    } else {
        throw FormatError("boolean values of encoding " + std::to_string(encoding));
    }
    return w.position();
}

}  // namespace fastbce::parquet
