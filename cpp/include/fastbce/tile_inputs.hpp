// The kernel's tiles (kernel.hpp): tile size, the loaders from any stored type into tile
// buffers (TileInputs), and the input checks on those buffers.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "fastbce/types.hpp"
#include "fastbce/vecmath.hpp"

#ifndef FASTBCE_TIER
#define FASTBCE_TIER generic
#endif

namespace fastbce {
namespace FASTBCE_TIER {

constexpr int64_t kTile = 512;  // elements per tile: the tile buffers of double fit in L1
// The loss loops run over a multiple of kPad elements (a partial last tile is padded with
// harmless values): a multiple of every tier's vector length times its unrolling, so that every
// element goes through the vectorised loop body. A scalar or masked epilogue would compute the
// same formulas with other instructions, and an element's loss could depend on its position.
// The same holds for FMA: the library is built with -ffp-contract=off and fuses a multiply-add
// only where the source says vm::detail::mul_add (one FMA where the tier has it), because GCC's
// contraction differed between the loops and template instantiations that evaluate one formula
// (the clean and general focal loops gave float64 gamma = 0.3 other bits).
constexpr int64_t kPad = 64;
static_assert(kTile % kPad == 0);

// ---------------------------------------------------------------- loading

// IEEE binary16 -> float, exact: the exponent field moved into place and rebased by a multiply
// by 2^112 (which also normalises half subnormals); Inf/NaN keep an all-ones exponent.
inline float half_to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t magnitude = uint32_t(h & 0x7fffu) << 13;
    const float scaled = std::bit_cast<float>(magnitude) * 0x1p112f;
    const uint32_t finite = std::bit_cast<uint32_t>(scaled);
    const uint32_t special = magnitude | 0x7f800000u;
    return std::bit_cast<float>(sign | ((h & 0x7c00u) == 0x7c00u ? special : finite));
}

inline float bfloat16_to_float(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

template <class T, class S, class Convert>
inline void convert_tile(const S* src, int64_t stride, int64_t len, T* dst, Convert convert) {
    if (stride == 1) {
        for (int64_t j = 0; j < len; ++j) dst[j] = convert(src[j]);
    } else {
        for (int64_t j = 0; j < len; ++j) dst[j] = convert(src[j * stride]);
    }
}

// Returns `len` values of `v` from element `begin` as T: the input itself when it already is
// contiguous T (no copy), else `buf` filled with the converted values.
template <class T>
inline const T* load_tile(const View& v, int64_t begin, int64_t len, T* buf) {
    auto cast = [](auto x) { return static_cast<T>(x); };
    auto at = [&](auto* typed) { return typed + begin * v.stride; };
    switch (v.dtype) {
        case DType::u8: convert_tile(at(static_cast<const uint8_t*>(v.data)), v.stride, len, buf, cast); break;
        case DType::i8: convert_tile(at(static_cast<const int8_t*>(v.data)), v.stride, len, buf, cast); break;
        case DType::u16: convert_tile(at(static_cast<const uint16_t*>(v.data)), v.stride, len, buf, cast); break;
        case DType::i16: convert_tile(at(static_cast<const int16_t*>(v.data)), v.stride, len, buf, cast); break;
        case DType::u32: convert_tile(at(static_cast<const uint32_t*>(v.data)), v.stride, len, buf, cast); break;
        case DType::i32: convert_tile(at(static_cast<const int32_t*>(v.data)), v.stride, len, buf, cast); break;
        case DType::u64: convert_tile(at(static_cast<const uint64_t*>(v.data)), v.stride, len, buf, cast); break;
        case DType::i64: convert_tile(at(static_cast<const int64_t*>(v.data)), v.stride, len, buf, cast); break;
        case DType::f16:
            convert_tile(at(static_cast<const uint16_t*>(v.data)), v.stride, len, buf,
                         [](uint16_t h) { return static_cast<T>(half_to_float(h)); });
            break;
        case DType::bf16:
            convert_tile(at(static_cast<const uint16_t*>(v.data)), v.stride, len, buf,
                         [](uint16_t h) { return static_cast<T>(bfloat16_to_float(h)); });
            break;
        case DType::f32:
            if (std::is_same_v<T, float> && v.stride == 1)
                return reinterpret_cast<const T*>(at(static_cast<const float*>(v.data)));
            convert_tile(at(static_cast<const float*>(v.data)), v.stride, len, buf, cast);
            break;
        case DType::f64:
            if (std::is_same_v<T, double> && v.stride == 1)
                return reinterpret_cast<const T*>(at(static_cast<const double*>(v.data)));
            convert_tile(at(static_cast<const double*>(v.data)), v.stride, len, buf, cast);
            break;
    }
    return buf;
}

// `src[0, len)` in `buf`, followed by `fill` up to `padded_len` (src may be buf itself).
template <class T>
inline const T* pad_tile(const T* src, T* buf, int64_t len, int64_t padded_len, T fill) {
    if (src != buf) std::memcpy(buf, src, size_t(len) * sizeof(T));
    std::fill(buf + len, buf + padded_len, fill);
    return buf;
}

// Bytes of one stored element of dtype t.
inline int64_t dtype_bytes(DType t) {
    switch (t) {
        case DType::u8: case DType::i8: return 1;
        case DType::u16: case DType::i16: case DType::f16: case DType::bf16: return 2;
        case DType::u32: case DType::i32: case DType::f32: return 4;
        case DType::u64: case DType::i64: case DType::f64: return 8;
    }
    return 1;
}

// Reads one byte of every cache line that the contiguous elements [begin, begin + len) of `v`
// occupy, before a tile's loops read them (a strided input is left alone). These independent
// loads ask memory for all the tile's lines at once, and their quick succession of misses keeps
// the L2 streamer ahead. Without them each loop asked for the lines of one input one by one, as
// far apart as its arithmetic made them: the prefetcher fell behind, and a thread read at about
// 16 lines in flight. On a Sapphire Rapids VM one thread took 1.17 ns an element of 1e8 float32
// logits (CPU time), 0.45 in L2 and 0.51 to read the same bytes alone; with them 0.64.
// Where the inputs fit in the caches the streamer kept up and the touches cost 7% (1e6 elements),
// so calls read that much only from kTouchFrom bytes of input on (16-32 MiB: the same either way).
constexpr int64_t kTouchFrom = int64_t(1) << 24;
inline void touch_lines(const View& v, int64_t begin, int64_t len) {
    if (v.stride != 1 || len <= 0) return;
    const int64_t bytes = len * dtype_bytes(v.dtype);
    const auto* first = static_cast<const volatile unsigned char*>(v.data) + begin * dtype_bytes(v.dtype);
    for (int64_t off = 0; off < bytes; off += 64) static_cast<void>(first[off]);
    static_cast<void>(first[bytes - 1]);  // (the last line, where `first` is not line-aligned)
}

// Asks for the cache lines of the contiguous elements [begin, begin + len) of `v` into L2
// (prefetcht2), without waiting for them: process_block issues it for the next tile while this
// one computes, so that the next tile's touches (touch_lines) find their lines in L2 or on the
// way. Touches alone left memory idle during a tile's arithmetic: each tile waited for its lines,
// then computed (two threads at 1e8: 0.45 ns an element, with 0.26 of arithmetic and 0.27 to read
// the bytes). Every address is one of the elements' own bytes, never past the range (a prefetch
// does not fault anyway). Sapphire Rapids VM, 1e8 elements, two threads, A/B alternated on a
// shared machine: 4-12% less time for float32 logits, 1-6% focal, 7-12% uint8 labels; into L1
// (prefetcht0), two tiles ahead, or issued after the loss loops: less or a loss; prefetches in
// place of the touches: 5-50% slower (docs/benchmarks.md). (Inline assembly on x86: GCC 12
// turned __builtin_prefetch here into no instruction at all.)
inline void prefetch_lines(const View& v, int64_t begin, int64_t len) {
    if (v.stride != 1 || len <= 0) return;
    const int64_t bytes = len * dtype_bytes(v.dtype);
    const auto* first = static_cast<const unsigned char*>(v.data) + begin * dtype_bytes(v.dtype);
    auto prefetch = [](const unsigned char* at) {
#if defined(__x86_64__) || (defined(__i386__) && defined(__SSE__))
        asm volatile("prefetcht2 %0" : : "m"(*at));
#else
        __builtin_prefetch(at, 0, 1);
#endif
    };
    for (int64_t off = 0; off < bytes; off += 64) prefetch(first + off);
    prefetch(first + bytes - 1);  // (the last line, where `first` is not line-aligned)
}

// One element of `v` as T (used once per row for per-row weights).
template <class T>
inline T load_one(const View& v, int64_t index) {
    T value;
    return *load_tile<T>(v, index, 1, &value);
}

// Fills dst[0, len) with row values for the elements [begin, begin + len): each value repeats
// for the row_size elements of its row. `row_value(r)` gives the value of row r.
template <class U, class RowValue>
inline void fill_by_row(int64_t begin, int64_t len, int64_t row_size, U* dst, RowValue row_value) {
    int64_t row = begin / row_size;
    int64_t offset = begin % row_size;
    for (int64_t j = 0; j < len; ++row, offset = 0) {
        const int64_t m = std::min(len - j, row_size - offset);
        const U value = row_value(row);
        for (int64_t k = 0; k < m; ++k) dst[j + k] = value;
        j += m;
    }
}

// Fills dst[0, len) with the per-class values for the elements [begin, begin + len).
template <class T>
inline void fill_by_class(const T* per_class, int64_t n_classes, int64_t begin, int64_t len, T* dst) {
    int64_t cls = begin % n_classes;
    for (int64_t j = 0; j < len; cls = 0) {
        const int64_t m = std::min(len - j, n_classes - cls);
        std::memcpy(dst + j, per_class + cls, size_t(m) * sizeof(T));
        j += m;
    }
}

// The inputs of one tile in the working type: labels y, predictions p, sample weights w and
// class weights q, each either the input itself (contiguous working type) or a buffer holding
// the converted values. Constant weights are filled once. load() pads a partial tile to a
// multiple of kPad with label 0, prediction `p_fill` (1/2, or a logit of 0), weight 1 and class
// weight 1, which pass every check; only [0, len) may be used after the loss loops.
template <class T>
struct TileInputs {
    alignas(64) T y_buf[kTile], p_buf[kTile], w_buf[kTile], q[kTile];
    const T* y = nullptr;
    const T* p = nullptr;
    const T* w = w_buf;
    bool per_class, weights_vary;

    explicit TileInputs(const Call& c)
        : per_class(c.pos_weight != nullptr),
          weights_vary(c.weight_kind == WeightKind::per_row || c.weight_kind == WeightKind::per_element) {
        if (!per_class) std::fill_n(q, kTile, T(c.pos_weight_scalar));
        if (!weights_vary) std::fill_n(w_buf, kTile, T(c.weight_kind == WeightKind::scalar ? c.weight_scalar : 1.0));
    }

    // Elements [i0, i0 + len) of the call, not padded (the derivatives' loops take any length).
    void load_unpadded(const Call& c, int64_t i0, int64_t len) {
        y = load_tile<T>(c.y_true, i0, len, y_buf);
        p = load_tile<T>(c.y_pred, i0, len, p_buf);
        w = w_buf;
        if (c.weight_kind == WeightKind::per_element)
            w = load_tile<T>(c.weight, i0, len, w_buf);
        else if (c.weight_kind == WeightKind::per_row)
            fill_by_row(i0, len, c.row_size, w_buf, [&](int64_t r) { return load_one<T>(c.weight, r); });
        if (per_class) fill_by_class(static_cast<const T*>(c.pos_weight), c.n_classes, i0, len, q);
    }

    // The predictions alone, for a loop that reads the labels as they are stored (plain options:
    // no weights); returns the padded length. y is left null.
    int64_t load_pred(const Call& c, int64_t i0, int64_t len, T p_fill) {
        y = nullptr;
        p = load_tile<T>(c.y_pred, i0, len, p_buf);
        const int64_t padded_len = (len + kPad - 1) / kPad * kPad;
        if (padded_len != len) p = pad_tile(p, p_buf, len, padded_len, p_fill);
        return padded_len;
    }

    // Elements [i0, i0 + len) of the call; returns the padded length.
    int64_t load(const Call& c, int64_t i0, int64_t len, T p_fill) {
        load_unpadded(c, i0, len);
        const int64_t padded_len = (len + kPad - 1) / kPad * kPad;
        if (padded_len != len) {
            y = pad_tile(y, y_buf, len, padded_len, T(0));
            p = pad_tile(p, p_buf, len, padded_len, p_fill);
            if (weights_vary) w = pad_tile(w, w_buf, len, padded_len, T(1));
            if (per_class) std::fill(q + len, q + padded_len, T(1));
        }
        return padded_len;
    }
};

// ---------------------------------------------------------------- checks

// Index of the first value outside [0, 1] (NaN is nan_policy's business, not a range error), or len.
template <class T>
inline int64_t first_outside_unit(const T* v, int64_t len) {
    int bad = 0;
    for (int64_t j = 0; j < len; ++j) bad |= int(v[j] < T(0)) | int(v[j] > T(1));
    if (!bad) return len;
    for (int64_t j = 0; j < len; ++j)
        if (v[j] < T(0) || v[j] > T(1)) return j;
    return len;
}

// Index of the first weight that is negative or infinite, or len.
template <class T>
inline int64_t first_bad_weight(const T* w, int64_t len) {
    constexpr T inf = std::numeric_limits<T>::infinity();
    int bad = 0;
    for (int64_t j = 0; j < len; ++j) bad |= int(w[j] < T(0)) | int(w[j] == inf);
    if (!bad) return len;
    for (int64_t j = 0; j < len; ++j)
        if (w[j] < T(0) || w[j] == inf) return j;
    return len;
}

// Index of the first element with a NaN in y, p or w, or len.
template <class T>
inline int64_t first_nan(const T* y, const T* p, const T* w, int64_t len) {
    int bad = 0;
    for (int64_t j = 0; j < len; ++j) bad |= int(y[j] != y[j]) | int(p[j] != p[j]) | int(w[j] != w[j]);
    if (!bad) return len;
    for (int64_t j = 0; j < len; ++j)
        if (y[j] != y[j] || p[j] != p[j] || w[j] != w[j]) return j;
    return len;
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
