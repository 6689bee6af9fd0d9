// The fused binary cross-entropy kernel: ONE loop computes every loss option of docs/reference.md.
// It is compiled once per SIMD tier (cpp/src/kernel_tier.cpp); FASTBCE_TIER names the tier's
// namespace so that each copy of these inline functions keeps its own symbols.
//
// Data flow of one block: for each tile of kTile elements, the loaders convert y_true, y_pred and
// the weights from whatever type they are stored in into small working-type buffers (or point at
// the input itself when it already is contiguous working type), the checks scan those buffers,
// loss_tile() computes the loss, and sum_f64() adds it to float64 sums in a fixed order.
// No buffer is larger than a tile, so a block streams through L1 whatever the input size.
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
#include "fastbce/sigmoid_table.hpp"
#include "fastbce/softplus_table.hpp"
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

// ---------------------------------------------------------------- the loss

// The focal band of float logits: |x| > focal_band and exp(-|x|) > 0, where a correct
// prediction's loss, about b exp(-(1 + gamma)|x|) with b its class balance (alpha or 1 - alpha),
// may be below 2^-126: its float factor (1 - p_t)^gamma or the loss times it can then be subnormal
// (an operand or result of a multiply, each a microcode assist on Intel cores). The bound is
// where that loss, with the smaller balance, reaches 2^-126 e^0.05 (the margin covers every
// rounding): below it, with labels in [0, 1] (balance and cross-entropy at most 1), every
// intermediate of the float formulas is at least the loss, so normal, and an element whose
// loss is normal takes them (the bound was 84 / (1 + gamma) before: normal losses in between,
// e.g. |x| in (28, 28.6) for gamma 2 and alpha 1/4, took the mixed loop at twice the time).
// A zero balance (alpha 0 or 1) keeps that older bound. Beyond 104, exp(-|x|) is 0 and nothing
// is tiny.
struct FocalBand {
    static double bound(double gamma, bool has_alpha, double alpha) {
        const double b = has_alpha ? std::min(alpha, 1.0 - alpha) : 1.0;
        if (!(b > 0.0)) return 84.0 / (1.0 + gamma);
        return std::max(0.0, (126.0 * 0.6931471805599453 - 0.05 + std::log(std::min(b, 1.0))) / (1.0 + gamma));
    }
    static bool wide(float x, float z, float band) { return (std::abs(x) > band) & (z > 0.0f); }

    // The float64 counterpart (LossParams::scaled_band, focal_element's Scaled): where a correct
    // prediction's focal loss, b exp(-(1 + gamma)|x|), reaches 2^-1022 e^0.05; below it every
    // intermediate of the double formulas is at least that loss, so normal. A zero balance keeps
    // the older bound, 660 / (1 + gamma). (That bound, for every alpha above e^-48, sent normal
    // losses to the scaled loop: gamma 2, alpha 1/4 at |x| = 230 ran 1.25x (v4) to 2x (baseline)
    // the time of |x| = 200.)
    static double scaled(double gamma, bool has_alpha, double alpha) {
        const double b = has_alpha ? std::min(alpha, 1.0 - alpha) : 1.0;
        if (!(b > 0.0)) return 660.0 / (1.0 + gamma);
        return std::max(0.0, (1022.0 * 0.6931471805599453 - 0.05 + std::log(std::min(b, 1.0))) / (1.0 + gamma));
    }
};

// Per-call constants in the working type.
template <class T>
struct LossParams {
    T keep;         // 1 - s        (label smoothing: y' = y * keep + shift)
    T shift;        // s / 2
    T clip_lo;      // epsilon
    T clip_hi;      // 1 - epsilon, rounded in the working type as Keras does
    T gamma;        // focal exponent, at most T's largest finite value (see below)
    int half_gamma;  // 2 gamma when that is a whole number in [1, 8] (gamma = 1/2, 1, ..., 4), else 0
    // class balancing alpha*y' + (1-alpha)*(1-y'), only when alpha is given: the factor is
    // on * (that) + off, with (on, off) = (1, 0) or (0, 1), exactly the term or exactly 1. (A
    // select on a loop-invariant bool here stops GCC 12 from vectorising the loop.)
    T balance_on;
    T balance_off;
    T alpha;
    T one_minus_alpha;
    T balance_alpha;    // alpha with alpha given, else 0 (balance_factor's one-FMA form)
    T balance_alpha_c;  // 1 - alpha with alpha given, else 0
    T focal_band;  // (float logits) |x| beyond it: the focal factor is formed in double (FocalBand)
    T scaled_band;  // (double logits) |x| beyond it: the focal loss may be scaled (focal_element)
    T t_min;        // (double logits) 2^(-1088 / (1 + gamma)), the same's floor for 1 - p_t
    // Tiny smoothing: 0 < s/2 below T's normal range (s < 2^-125 in float, 2^-1021 in double).
    // s/2 would round to 0 (or a subnormal) although x s/2 can be normal, so such a call takes
    // shift = 0 (keep is exactly 1) and adds the d = s/2 terms on D = d 2^600, a normal double
    // (loss_loop's TinyS); half_s_up is D then, else 0. Decided per call, never per element.
    double half_s_up;

    static bool tiny_smoothing(const Call& c) {
        const double s = double(T(c.label_smoothing));
        return s > 0.0 && s / 2.0 < double(std::numeric_limits<T>::min());
    }

    explicit LossParams(const Call& c)
        : keep(T(1) - T(c.label_smoothing)),
          shift(tiny_smoothing(c) ? T(0) : T(c.label_smoothing) / T(2)),
          clip_lo(T(c.epsilon)),
          clip_hi(T(1) - T(c.epsilon)),
          // a gamma beyond float32's range would be inf: inf * log(1 - p_t) = inf * 0 = NaN where
          // p_t = 0; the largest float gives the factor 1 there, and elsewhere the same 0
          gamma(T(std::min(c.gamma, double(std::numeric_limits<T>::max())))),
          half_gamma(gamma >= T(0.5) && gamma <= T(4) && 2 * gamma == T(int(2 * gamma)) ? int(2 * gamma) : 0),
          balance_on(c.has_alpha ? T(1) : T(0)),
          balance_off(c.has_alpha ? T(0) : T(1)),
          alpha(T(c.alpha)),
          one_minus_alpha(T(1) - T(c.alpha)),
          balance_alpha(c.has_alpha ? alpha : T(0)),
          balance_alpha_c(c.has_alpha ? one_minus_alpha : T(0)),
          focal_band(T(FocalBand::bound(double(gamma), c.has_alpha, c.alpha))),
          scaled_band(T(FocalBand::scaled(double(gamma), c.has_alpha, c.alpha))),
          // (0, no floor, where that power of 2 is not normal: gamma < 0.065, or float)
          t_min(std::is_same_v<T, double> && 1088.0 / (1.0 + double(gamma)) <= 1022.0
                    ? T(std::exp2(-1088.0 / (1.0 + double(gamma))))
                    : T(0)),
          half_s_up(tiny_smoothing(c) ? double(T(c.label_smoothing)) * 0x1p599 : 0.0) {}
};

template <class T>
constexpr T inf = std::numeric_limits<T>::infinity();

// The type float products are formed in where a float intermediate could be subnormal: double,
// where a product of float-range values is always normal (and a product of two floats exact).
// On Intel cores a float multiply with a subnormal operand or result takes a microcode assist
// (~100 cycles); the conversions to and from double do not (measured on every tier), so
// T(double(a) * double(b)) is the same bits as a * b without the assist.
template <class T>
using Wide = std::conditional_t<std::is_same_v<T, float>, double, T>;

// a * b where a zero weight wins over an infinite loss (0 * inf = 0, not NaN): a label, class or
// sample weight of zero means the term does not count.
template <class T>
FASTBCE_VM_INLINE T times_weight(T a, T b) {
    return a == T(0) ? T(0) : a * b;
}

// Step 5's factor: alpha y' + (1 - alpha)(1 - y') as two non-negative terms (no cancellation for
// a small alpha), or exactly 1 without alpha: alpha y' + ((1 - alpha)(1 - y') + off) in two FMAs,
// with (alpha, 1 - alpha, off) = (0, 0, 1) without alpha (the on/off multiply-add and the sum
// took four operations; one rounding fewer, so soft labels may differ by an ulp from before).
// Finite: y' and 1 - y' are finite (labels in [0, 1], the focal loops' clean tiles), where a zero
// factor needs no test (times_weight) to give the same bits.
template <bool Finite = false, class T>
FASTBCE_VM_INLINE T balance_factor(const LossParams<T>& k, T ys, T ys_c) {
    using vm::detail::mul_add;
    if constexpr (Finite) return mul_add(k.balance_alpha, ys, mul_add(k.balance_alpha_c, ys_c, k.balance_off));
    using vm::detail::select;
    const T rest = select(k.balance_alpha_c == T(0), k.balance_off, mul_add(k.balance_alpha_c, ys_c, k.balance_off));
    return select(k.balance_alpha == T(0), rest, mul_add(k.balance_alpha, ys, rest));
}

// t^(H/2), the focal factor (1 - p_t)^gamma for gamma = H/2 in {1/2, 1, ..., 4}: products and
// a correctly rounded sqrt, as accurate as the inputs allow and equal to what pow() gives (NaN for
// a negative base and a half-odd gamma; a negative base comes only from unvalidated probabilities
// outside [0, 1]).
template <int H, class T>
FASTBCE_VM_INLINE T half_power(T t) {
    static_assert(H >= 1 && H <= 8);
    [[maybe_unused]] const T t2 = t * t;
    T whole;
    if constexpr (H / 2 == 0) whole = T(1);
    else if constexpr (H / 2 == 1) whole = t;
    else if constexpr (H / 2 == 2) whole = t2;
    else if constexpr (H / 2 == 3) whole = t2 * t;
    else whole = t2 * t2;
    if constexpr (H % 2 == 1) return whole * std::sqrt(t);
    else return whole;
}

// Calls by_products(std::integral_constant<int, H>{}) for half_gamma = H in 1..8 (gamma = H/2 in
// {1/2, 1, ..., 4}, where half_power applies) and returns true; false for any other gamma, which
// the caller raises to its power otherwise. One compile-time instance per H.
template <class F>
FASTBCE_VM_INLINE bool with_half_gamma(int half_gamma, F&& by_products) {
    switch (half_gamma) {
        case 1: by_products(std::integral_constant<int, 1>{}); return true;
        case 2: by_products(std::integral_constant<int, 2>{}); return true;
        case 3: by_products(std::integral_constant<int, 3>{}); return true;
        case 4: by_products(std::integral_constant<int, 4>{}); return true;
        case 5: by_products(std::integral_constant<int, 5>{}); return true;
        case 6: by_products(std::integral_constant<int, 6>{}); return true;
        case 7: by_products(std::integral_constant<int, 7>{}); return true;
        case 8: by_products(std::integral_constant<int, 8>{}); return true;
        default: return false;
    }
}

// 1 - p_t = y'(1 - p) + (1 - y')p (step 4), a sum of non-negative terms: from the logit x with
// z = exp(-|x|) (x >= 0: p = 1/(1+z), 1-p = z/(1+z); x < 0: p = z/(1+z), 1-p = 1/(1+z)), or from
// the unclipped probability x (as Keras 3).
// The small term (label weight times z, or times a tiny probability) is left out where it is
// below half an ulp of the other one: a product with a tiny z would underflow there (a microcode
// assist on Intel, and the underflow flag), for the same bits. Where the other term is 0 (hard
// labels) it is kept: it is then the result.
template <class T>
struct TinyTerm {
    static constexpr T z_max = std::is_same_v<T, float> ? T(0x1p-86) : T(0x1p-455);
    static constexpr T other_min = std::is_same_v<T, float> ? T(0x1p-60) : T(0x1p-400);
    static FASTBCE_VM_INLINE T keep(T z, T other) { return vm::detail::select((z < z_max) & (other >= other_min), T(0), z); }
};

// The deep band of float64 logits: 0 < z = exp(-|x|) < 2^-1020, |x| in about (707, 745.2), only
// in tiles beyond the fast exp's range. There a correct hard prediction's loss is z times normal
// factors (times z^gamma for focal calls): an operation on z, or one producing a subnormal, takes a
// microcode assist on Intel cores (~100+ cycles; the band ran 12x slower). Such a loss is computed
// on Z = z 2^1074 (exact, normal) and rounded once to the subnormal grid with integer operations
// (down); which formula an element takes depends on it alone, never on its tile.
struct Deep {
    using U = uint64_t;
    static constexpr U limit = std::bit_cast<U>(0x1p-1020) - 1u;
    // 0 < v < 2^-1020, as an integer compare (no FP operation on a subnormal v)
    static FASTBCE_VM_INLINE bool in(double v) { return std::bit_cast<U>(v) - 1u < limit; }
    // v 2^1074 for v in [0, 2^-1020): exact and normal (the subnormal's bit pattern as an integer,
    // or two scalings by 2^537)
    static FASTBCE_VM_INLINE double up(double v) {
        const double big = vm::detail::max_by_bits(v, 0x1p-1022) * 0x1p537 * 0x1p537;
        return vm::detail::select(v < 0x1p-1022, vm::detail::small_uint_to_fp<double>(std::bit_cast<U>(v)), big);
    }
    // m 2^-1074 for a finite m >= 0, rounded once: to the subnormal grid as an integer (the bits
    // of m + 2^52, as exp builds its subnormal results), or scaled back where it is normal
    static FASTBCE_VM_INLINE double down(double m) {
        const double sub = std::bit_cast<double>(std::bit_cast<U>(m + 0x1p52) - std::bit_cast<U>(0x1p52));
        const double normal = vm::detail::max_by_bits(m, 0x1p52) * 0x1p-537 * 0x1p-537;
        return vm::detail::select(m < 0x1p52, sub, normal);
    }
    // balance z^(1 + g) for z in the band (a focal loss with gamma g outside {1/2, ..., 4}, whose
    // ce is z and 1 - p_t is z): log z from log Z, and 0 where z^g < e^-40 (the product, below
    // 2^54 2^-57.7 times balance <= 1, rounds to 0 there), so that every value stays normal. For
    // gamma in {1/2, ..., 4} the loss is below z^1.5 < 2^-1530: 0.
    static FASTBCE_VM_INLINE double pow_loss(double z, double balance, double g) {
        using Tr = vm::detail::traits<double>;
        const double big_z = up(z);
        const double log_z = (vm::log(big_z) - 1074.0 * Tr::ln2_hi) - 1074.0 * Tr::ln2_lo;
        const double a = g * log_z;
        const bool zero = a < -40.0;
        const double f = vm::exp_nonpositive_normal(vm::detail::select(zero, -40.0, a));
        return vm::detail::select(zero, 0.0, down((balance * big_z) * f));
    }
};

// SigmoidZ (kSigmoidZ): z is sigmoid(-|x|) instead, the smaller of p and 1 - p (at most 1/2), and
// 1 - p_t = z + v (1 - 2z) with v the label weight of the unlikely side (1 - y' for x > 0, else
// y'): two non-negative terms, two FMAs, no division. 1 - 2z is exact for z >= 1/4 and within
// half an ulp of [1/2, 1] below; no product has two small factors, so nothing underflows where
// the result is normal (no TinyTerm guard). The y' z + (1 - y')(1 - z) it replaces took five
// operations. The side is x > 0, as the cross-entropy's (at x = 0, z = 1/2 and both sides give
// 1/2).
// NoTiny: the caller knows z >= TinyTerm's z_max (|x| < 59): no guard either way (kept for the
// callers' sake).
template <bool FromLogits, bool SigmoidZ = false, bool NoTiny = false, class T>
FASTBCE_VM_INLINE T one_minus_pt(T ys, T ys_c, T x, [[maybe_unused]] T z) {
    if constexpr (FromLogits && SigmoidZ) {
        const T v = x > T(0) ? ys_c : ys;
        return vm::detail::mul_add(v, vm::detail::mul_add(T(-2), z, T(1)), z);
    } else if constexpr (FromLogits) {
        // (this arrangement, as before the guard: with the two terms reordered by side, the
        // double gamma = 2.7 focal loop ran 60% slower on v4)
        const bool pos = x >= T(0);
        const T zk = TinyTerm<T>::keep(z, pos ? ys_c : ys);
        return vm::detail::mul_add(ys, pos ? zk : T(1), ys_c * (pos ? T(1) : zk)) / (T(1) + zk);
    } else {
        const T xk = TinyTerm<T>::keep(x, ys);
        return vm::detail::mul_add(ys, T(1) - xk, ys_c * xk);
    }
}

// Float focal losses of logits on AVX-512 (plain and weighted levels): softplus(-|x|) and
// sigmoid(-|x|) from tables (softplus_table.hpp, sigmoid_table.hpp), and the focal loops' z is
// sigmoid(-|x|) rather than exp(-|x|) (one_minus_pt's SigmoidZ), in every tile of such a call.
template <class T, bool FromLogits, Options O>
#if defined(FASTBCE_SOFTPLUS_TABLE)
constexpr bool kSigmoidZ = FromLogits && O != Options::general && std::is_same_v<T, float>;
#else
constexpr bool kSigmoidZ = false;
#endif

// (1 - p_t)^gamma as exp(gamma log t), in double also for float (see loss_tile)
struct PowFactor {
    double g;
    template <class U>
    FASTBCE_VM_INLINE U operator()(U t) const { return U(vm::exp(g * vm::log(double(t)))); }
};

// |x| in (band, 746) (beyond it exp(-|x|) = 0), the float64 band where focal_element may scale:
// one unsigned compare of bit patterns (NaN is outside).
template <class T>
FASTBCE_VM_INLINE bool in_scaled_band(T x, T band) {
    using Bits = typename vm::detail::traits<T>::uint;
    const Bits lo = std::bit_cast<Bits>(band);
    return std::bit_cast<Bits>(std::abs(x)) - lo - 1u < std::bit_cast<Bits>(T(746)) - lo - 1u;
}

// One element of apply_focal's step 4-6 (non-general calls) in the type `widen` gives: float, or
// double for the focal band (products of float-range values never leave double's normal range).
// Scaled (float64 logits: a tile with an |x| in (scaled_band, 746) or beyond the fast exp's range,
// and every tile for gamma outside {1/2, ..., 4}): a correct prediction's loss * factor can be
// subnormal for |x| in about (708.4, 745.2) / (1 + gamma), and a multiply producing a subnormal
// takes a microcode assist on Intel cores. An element with |x| in (scaled_band, 746) (beyond it
// exp(-|x|) = 0), labels in [0, 1] and ce < 2^-100 forms it as (loss 2^1074) * factor, rounded
// once to the subnormal grid (Deep::down): the same bits where the result is normal,
// one double rounding where it is not, decided by the element alone. Its 1 - p_t is clamped to
// t_min = 2^(-1088 / (1 + gamma)), where every power of it stays normal; below it the loss, at
// most 2(|x| + 1) t times t^gamma < 2^11 t_min^(1 + gamma), rounds to 0 (t_min is 0, no clamp,
// where that power of 2 would not be normal: gamma < 0.065).
// NoTiny: see one_minus_pt (focal_table_loop).
template <Options O, bool FromLogits, bool Clean, bool Scaled = false, bool NoTiny = false, class T, class Factor, class Widen>
FASTBCE_VM_INLINE auto focal_element(T ce, T ys, T ys_c, T x, T z, T w, const LossParams<T>& k, Factor factor, Widen widen) {
    using W = decltype(widen(T(0)));
    const W balance = widen(balance_factor<Clean>(k, ys, ys_c));  // step 5
    const W loss = Clean ? balance * widen(ce) : times_weight(balance, widen(ce));
    const W t = one_minus_pt<FromLogits, kSigmoidZ<T, FromLogits, O>, NoTiny>(widen(ys), widen(ys_c), widen(x), widen(z));
    W focal;
    if constexpr (Scaled) {
        static_assert(std::is_same_v<W, double>);
        using vm::detail::select;
        using Bits = uint64_t;
        // (integer compares of bit patterns, and ce < 2^-100 rather than loss <= ce: GCC folded
        // a compare of loss with the zero test of times_weight into a select it could not
        // vectorise)
        const bool sc = in_scaled_band(x, k.scaled_band) &
                        (std::bit_cast<Bits>(ce) < std::bit_cast<Bits>(T(0x1p-100))) &
                        (std::bit_cast<Bits>(ys) <= std::bit_cast<Bits>(T(1))) &
                        (std::bit_cast<Bits>(ys_c) <= std::bit_cast<Bits>(T(1)));
        const W big = select(sc, loss, W(0x1p-1000)) * W(0x1p537) * W(0x1p537);  // (others: harmless)
        const W product = select(sc, big, loss) * factor(select(sc, vm::detail::max_by_bits(t, k.t_min), t));
        const W small = select(t < k.t_min, W(0), Deep::down(select(sc, product, W(0))));
        focal = select(sc, small, product);
    } else {
        focal = loss * factor(t);
    }
    const W v = Clean ? focal : vm::detail::select(loss == inf<W>, loss, focal);
    if constexpr (O == Options::weighted) return times_weight(widen(w), v);
    else return v;
}

// Step 4 and, for weighted and general calls, step 6: ce[j] = loss[j] * factor(1 - p_t) (* w[j]),
// except that an infinite loss stays infinite (it has p_t < 1, so its factor is > 0 even where it
// underflowed to 0). For general calls `loss` is the float64 product of loss_tile, `t` holds
// 1 - p_t, and the factor (evaluated in float64: a float factor can be subnormal where the
// product is not) and the weight multiply it in float64 too, before the one rounding to T.
// Otherwise this loop also forms 1 - p_t (from y, x and, for logits, z = exp(-|x|) in `t`) and
// step 5's class balance: the loss loop stays that of plain cross-entropy, and the two shorter
// loops ran 7% faster than one that did it all (AVX2, gamma 2). The factor (<= 1) comes first and
// the weight last: no intermediate can overflow where the result does not. Clean: every logit
// of the tile is within the fast exp's range and every label in [0, 1], so the cross-entropy is
// finite and neither the zero-weight test nor the infinity select is needed (same bits).
template <Options O, bool FromLogits, bool Clean, bool Mixed = false, bool Scaled = false, class T, class Factor>
inline void apply_focal(T* __restrict ce, const double* __restrict wide_loss, const T* __restrict y,
                        const T* __restrict pred, const T* __restrict t, const T* __restrict w, int64_t len,
                        const LossParams<T>& k, Factor factor) {
    // (a blend, not a ternary: with `inf ? loss : loss * factor` GCC moves the factor into a
    // branch, which SSE4.2 cannot vectorise)
    for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
        if constexpr (O == Options::general) {
            const double loss = wide_loss[j];
            const double v = vm::detail::select(loss == inf<double>, loss, loss * factor(double(t[j])));
            ce[j] = T(times_weight(double(w[j]), v));
        } else {
            T ys = y[j], ys_c = T(1) - y[j], x = pred[j], z = FromLogits ? t[j] : T(0), ce_j = ce[j];
            // Mixed (float logits): an element with |x| in the band where a float factor or
            // product could be subnormal is computed in double instead (rounded to float once),
            // and the float formulas below see harmless values in its place. Which formula an
            // element takes depends on it alone, never on its tile.
            [[maybe_unused]] bool wide = false;
            [[maybe_unused]] double wide_v = 0.0;
            auto as_double = [](T v) { return double(v); };
            auto as_is = [](T v) { return v; };
            if constexpr (Mixed && std::is_same_v<Factor, PowFactor>) {
                // (exp and log in double: one evaluation, on the 1 - p_t the element needs; the
                // float formula's factor is that rounded to float, as PowFactor gives it, and 1
                // in the band's lanes: there it can be subnormal, and the float formula's
                // multiply by it took a microcode assist although its result is not used)
                using vm::detail::select;
                wide = FocalBand::wide(x, z, k.focal_band);
                constexpr bool sig = kSigmoidZ<T, FromLogits, O>;
                const double t_d = one_minus_pt<FromLogits, sig>(double(ys), double(ys_c), double(x), double(z));
                ce_j = select(wide, T(1), ce_j), x = select(wide, T(0), x), z = select(wide, T(1), z);
                const T t_f = one_minus_pt<FromLogits, sig>(ys, ys_c, x, z);
                const double fd = factor(select(wide, t_d, double(t_f)));
                const T ff = T(select(wide, 1.0, fd));
                wide_v = focal_element<O, FromLogits, true>(ce[j], ys, ys_c, pred[j], t[j], w[j], k,
                                                             [fd](double) { return fd; }, as_double);
                const T v = focal_element<O, FromLogits, false>(ce_j, ys, ys_c, x, z, w[j], k, [ff](T) { return ff; }, as_is);
                ce[j] = select(wide, T(wide_v), v);
                continue;
            } else if constexpr (Mixed) {
                wide = FocalBand::wide(x, z, k.focal_band);
                wide_v = focal_element<O, FromLogits, true>(ce_j, ys, ys_c, x, z, w[j], k, factor, as_double);
                using vm::detail::select;
                ce_j = select(wide, T(1), ce_j), x = select(wide, T(0), x), z = select(wide, T(1), z);
            }
            if constexpr (std::is_same_v<T, double> && FromLogits && !Clean) {
                // float64 logits in the deep band (Deep): a correct hard prediction's ce and z are
                // replaced by 0, which gives its loss, 0, for gamma in {1/2, ..., 4}; other gammas
                // take Deep::pow_loss
                using vm::detail::select;
                const bool deep = Deep::in(z) & ((x >= T(0) ? ys_c : ys) == T(0));
                [[maybe_unused]] const T z_deep = select(deep, z, T(0x1p-1021));  // (others: harmless)
                ce_j = select(deep, T(0), ce_j), z = select(deep, T(0), z);
                if constexpr (std::is_same_v<Factor, PowFactor>) {
                    T d = Deep::pow_loss(z_deep, balance_factor(k, ys, ys_c), factor.g);
                    if constexpr (O == Options::weighted) d = times_weight(w[j], d);
                    const T v = focal_element<O, FromLogits, Clean, Scaled>(ce_j, ys, ys_c, x, z, w[j], k, factor, as_is);
                    ce[j] = select(deep, d, v);
                    continue;
                }
            }
            const T v = focal_element<O, FromLogits, Clean, Scaled>(ce_j, ys, ys_c, x, z, w[j], k, factor, as_is);
            if constexpr (Mixed) ce[j] = vm::detail::select(wide, T(wide_v), v);
            else ce[j] = v;
        }
    }
}

// Float64 logits with sample weights in a tile with an |x| outside the fast exp's range: the loss
// can be subnormal (|x| > 708.4) or near it, and w times it is formed by loss_tile (weight_tile).
template <class T, bool FromLogits, bool Finite>
constexpr bool WeightLater = FromLogits && !Finite && std::is_same_v<T, double>;

// Float logits with sample weights: in a tile beyond the fast exp's range, or with an |x| above
// wide_weight_abs (a loss can be below 2^-115 there, down to 2^-126 at 87.33), w times a loss can
// be subnormal, and a float multiply producing it takes a microcode assist on Intel cores (~100
// cycles). Such tiles form it as float(double(w) * double(loss)) in the loss loop (WideWeight):
// the product of two floats is exact in double and rounded once, the float product's bits
// (gradual underflow included), and the conversions take no assist, not even from or to a
// subnormal (measured on every tier). (Before, a pass over the tile after the loss loop scanned
// for tiny losses and multiplied: weighted float32 at |x| = 87 ran 1.4x the fastest magnitude.)
template <class T>
constexpr T wide_weight_abs = std::is_same_v<T, float> ? T(80) : std::numeric_limits<T>::infinity();

// Whether a finite tile with these largest and smallest |x| (bit patterns) takes WideWeight: an
// |x| above wide_weight_abs, unless every |x| is at least zero_exp_min (every loss is then 0 or
// at least |x|).
template <class Bits, class T = std::conditional_t<sizeof(Bits) == 4, float, double>>
FASTBCE_VM_INLINE bool wide_weight(Bits max_abs_bits, Bits min_abs_bits) {
    return (max_abs_bits > std::bit_cast<Bits>(wide_weight_abs<T>)) & (min_abs_bits < std::bit_cast<Bits>(vm::zero_exp_min<T>));
}

// ce *= w (step 6), float64: a loss below 2^-1020 (only beyond |x| = 708, never in a tile within
// the fast exp's range) times a weight below 2^900 is formed as w (loss 2^1074) and rounded once (Deep::up,
// Deep::down): no operation sees a subnormal. The product's rounding makes this a double
// rounding (within one subnormal ulp of w * loss), so it depends on the element alone.
inline void weight_tile(double* __restrict ce, const double* __restrict w, int64_t len) {
    int tiny = 0;
    for (int64_t j = 0; j < len; ++j) tiny |= int(Deep::in(ce[j]));
    if (!tiny) {
        for (int64_t j = 0; j < len; ++j) ce[j] = times_weight(w[j], ce[j]);  // FASTBCE_VEC_LOOP
        return;
    }
    using vm::detail::select;
    for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
        const double loss = ce[j], wj = w[j];
        const bool scaled = Deep::in(loss) & (wj < 0x1p900);
        const double ls = select(scaled, loss, 0x1p-1021);  // (other lanes: harmless values)
        const double v = Deep::down(select(scaled, wj, 1.0) * Deep::up(ls));
        ce[j] = select(scaled, v, times_weight(wj, select(scaled, 1.0, loss)));
    }
}

// A tile of logits beyond the fast exp's range whose every |x| is within it or at least
// zero_exp_min (745.134 for double, 103.975 for float: exp(-|x|) rounds to 0 there, in the general
// exp too; a bound of 746 / 104 sent |x| = 104 to the general loops, 1.5x slower) and finite:
// puts those zeros into z (the fast exp's values elsewhere are the general one's bits) and returns
// true, and the tile takes the loops of a finite one, which give the same bits for its elements.
// Whole vectors of |x| >= 1000 took the general exp and loops: 1.3-1.6x slower.
template <class T>
inline bool saturate_tile(const T* __restrict x, T* __restrict z, int64_t len) {
    using Bits = typename vm::detail::traits<T>::uint;
    constexpr Bits lo = std::bit_cast<Bits>(vm::normal_exp_max<T>);
    constexpr Bits hi = std::bit_cast<Bits>(vm::zero_exp_min<T>);
    constexpr Bits inf_bits = std::bit_cast<Bits>(inf<T>);
    int general = 0;  // an |x| in (lo, hi), or infinite or NaN
    for (int64_t j = 0; j < len; ++j) {
        const Bits a = std::bit_cast<Bits>(std::abs(x[j]));
        general |= int((a - lo - 1u < hi - lo - 1u) | (a >= inf_bits));
    }
    if (general) return false;
    for (int64_t j = 0; j < len; ++j) z[j] = vm::detail::select(std::abs(x[j]) > vm::normal_exp_max<T>, T(0), z[j]);  // FASTBCE_VEC_LOOP
    return true;
}

// exp(-|x|) for a tile, in Z (the working type, or double for the report's p): the cheaper exp
// of a normal result, and the general one again for a tile with any |x| beyond its range (or a
// NaN), as loss_tile does.
template <class T, class Z = T>
inline void exp_neg_abs(const T* __restrict x, Z* __restrict z, int64_t len) {
    using Bits = typename vm::detail::traits<Z>::uint;
    Bits max_abs_bits = 0;
    for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
        const Z a = std::abs(Z(x[j]));
        max_abs_bits = std::max(max_abs_bits, std::bit_cast<Bits>(a));
        z[j] = vm::exp_nonpositive_normal(-a);
    }
    if (max_abs_bits > std::bit_cast<Bits>(vm::normal_exp_max<Z>)) {
        for (int64_t j = 0; j < len; ++j) z[j] = vm::exp_nonpositive(-std::abs(Z(x[j])));  // FASTBCE_VEC_LOOP
    }
}

// loss_loop's range check: the larger of acc and v's bit pattern (a value in [+0, 1] has bits <=
// those of 1; negative, -0, > 1 and NaN more), which the caller compares with bits(1). SSE2 has no
// 64-bit integer compare, and GCC does not vectorise a 64-bit max there: the float64 loss loop ran
// scalar on baseline, its ternaries as branches on the sign of x. There the sign bits of
// (bits(1) - b) | b, which is negative exactly where b > bits(1) (unsigned), are ORed instead:
// subtract, or, and, as SSE2 has them; the caller's test reads the same.
template <class T, class Bits>
FASTBCE_VM_INLINE Bits range_max(Bits acc, T v) {
    const Bits b = std::bit_cast<Bits>(v);
    if constexpr (FASTBCE_VM_SSE2_ONLY && sizeof(T) == 8) {
        constexpr Bits sign = Bits(1) << 63;
        return acc | (((std::bit_cast<Bits>(T(1)) - b) | b) & sign);
    }
    return std::max(acc, b);
}

// Steps 1-3 of the elementwise loss for one tile, and those of steps 5-6 that apply_focal does
// not take: the main loop of loss_tile below, where the formulas are explained. For logits `scratch` holds exp(-|x|);
// Finite: every logit is known to be finite and its exp(-|x|) normal or 0 (no deep band).
// SoftGiven: `scratch` holds softplus(-|x|) itself (the AVX-512 float table, softplus_table.hpp)
// rather than exp(-|x|). Returns the largest bit pattern of the labels (and probabilities) for
// the range check.
// TinyS: the call's smoothing is tiny (LossParams::half_s_up), a loop of its own (general only).
template <class T, bool FromLogits, bool Focal, Options O, bool Finite, bool SoftGiven = false, bool WideWeight = false,
          bool TinyS = false>
inline typename vm::detail::traits<T>::uint loss_loop(const T* __restrict y, const T* __restrict pred,
                                                     const T* __restrict q, const T* __restrict w,
                                                     T* __restrict ce, T* __restrict scratch,
                                                     double* __restrict wide_loss, int64_t len,
                                                     const LossParams<T>& k) {
    if constexpr (O == Options::general && !TinyS) {
        if (k.half_s_up != 0.0)
            return loss_loop<T, FromLogits, Focal, O, Finite, SoftGiven, WideWeight, true>(y, pred, q, w, ce, scratch,
                                                                                           wide_loss, len, k);
    }
    // The range check as a maximum of bit patterns: a value in [+0, 1] has bits <= those of 1,
    // anything else (negative, > 1, NaN, -0) more. NaN and -0 are no range error, so a tile with
    // any of them only takes the exact check (first_outside_unit), which finds nothing: one
    // integer max an element instead of two compares and an or.
    constexpr bool General = O == Options::general;
    using Bits = typename vm::detail::traits<T>::uint;
    Bits max_bits = 0;
    for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
        max_bits = range_max(max_bits, y[j]);
        if constexpr (!FromLogits) max_bits = range_max(max_bits, pred[j]);
        // step 1: y' and 1 - y', each from y directly so that neither cancels (a tiny label
        // smoothing would otherwise round 1 - y' to 0)
        T ys = y[j], ys_c = T(1) - y[j];
        if constexpr (General) {
            ys = vm::detail::mul_add(y[j], k.keep, k.shift);
            ys_c = vm::detail::mul_add(T(1) - y[j], k.keep, k.shift);
        }
        const T x = pred[j];
        T neg_log_p, neg_log_1mp;  // step 2: -log p and -log(1-p), both >= 0
        [[maybe_unused]] T soft = T(0);
        [[maybe_unused]] bool deep = false;  // (general float64 logits: the loss is scaled, Deep)
        if constexpr (FromLogits) {
            const T z = scratch[j];  // exp(-|x|), in [0, 1] (or softplus(-|x|), SoftGiven)
            if constexpr (SoftGiven) soft = z;
            else soft = vm::log1p_small_nonnegative(z);
            if constexpr (General) {  // (the other levels use soft directly, below)
                // (double: a tiny soft, |x| > 315, is left out of the likely side's term, where
                // it is below half an ulp of |x|, and out of the unlikely side's where the other
                // term is there, as in one_minus_pt; in the deep band, a correct hard prediction's
                // loss is formed on z 2^1074 and rounded once below (Deep). Float products are
                // made in double.)
                T soft_p = soft, soft_1mp = soft;
                if constexpr (std::is_same_v<T, double>) {
                    const bool tiny = soft < TinyTerm<T>::z_max;
                    using vm::detail::select;
                    soft_p = select(tiny & ((x < T(0)) | (ys_c >= TinyTerm<T>::other_min)), T(0), soft);
                    soft_1mp = select(tiny & ((x > T(0)) | (ys >= TinyTerm<T>::other_min)), T(0), soft);
                    if constexpr (!Focal && !Finite && !TinyS) {  // (TinyS: no Deep, rare calls)
                        // (factors below 2^200, so that the scaled product stays finite)
                        const Bits factors = std::max(std::max(std::bit_cast<Bits>(ys), std::bit_cast<Bits>(ys_c)),
                                                      std::max(std::bit_cast<Bits>(q[j]), std::bit_cast<Bits>(w[j])));
                        const T z = scratch[j];
                        deep = Deep::in(z) & ((x > T(0) ? ys_c : ys) == T(0)) & (factors < std::bit_cast<Bits>(0x1p200));
                        const T big_z = Deep::up(select(deep, z, T(0x1p-1021)));  // (others: harmless)
                        soft_p = select(deep & (x > T(0)), big_z, soft_p);
                        soft_1mp = select(deep & (x < T(0)), big_z, soft_1mp);
                    }
                }
                neg_log_p = (x < T(0) ? -x : T(0)) + soft_p;
                neg_log_1mp = (x > T(0) ? x : T(0)) + soft_1mp;
            }
        } else {
            T pc = x < k.clip_lo ? k.clip_lo : x;  // written so that NaN stays NaN
            pc = pc > k.clip_hi ? k.clip_hi : pc;
            // One general log and one log1p_small: with q = min(p, 1 - p) (1 - p is exact for
            // p >= 1/2), {log p, log(1 - p)} = {log q, log1p(-q)} and -q is in [-1/2, 0].
            const bool low = pc < T(0.5);
            const T qp = low ? pc : T(1) - pc;
            const T log_q = vm::log(qp);
            const T log_1mq = vm::log1p_small(-qp);
            // (-log1p(-q) ~ q is left out where the other term is there, as in one_minus_pt)
            const T small = TinyTerm<T>::keep(-log_1mq, low ? ys : ys_c);
            neg_log_p = low ? -log_q : small;
            neg_log_1mp = low ? small : -log_q;
        }
        // steps 3, 5 and 6. With the general options the loss is a product of up to five factors
        // (y', q, -log p, balance, w), and a float intermediate could overflow or underflow where
        // the result does not: for float input they are multiplied in double (exact enough, and
        // no float-range product leaves double's range), then rounded once.
        T loss;
        if constexpr (General) {
            using W = double;
            const W pos = ((ys == T(0)) | (q[j] == T(0))) ? W(0) : W(ys) * (W(q[j]) * W(neg_log_p));
            W wide = pos + times_weight(W(ys_c), W(neg_log_1mp));
            if constexpr (TinyS) {  // + d (q (-log p) - log(1 - p)), formed on D = d 2^600
                // (D q 2^-300 is within 2^+-302, so that no product overflows early)
                const W dq = q[j] == T(0) ? W(0) : (k.half_s_up * W(q[j])) * 0x1p-300;
                wide += times_weight(dq, W(neg_log_p)) * 0x1p-300 +
                        times_weight(k.half_s_up, W(neg_log_1mp)) * 0x1p-600;
            }
            const W plain_wide = wide;
            wide = times_weight(W(balance_factor(k, ys, ys_c)), wide);  // step 5
            if constexpr (TinyS)  // the balance's own d: alpha d + (1 - alpha) d
                wide += times_weight(W(k.balance_on) * k.half_s_up, plain_wide) * 0x1p-600;
            if constexpr (Focal) {
                wide_loss[j] = wide;  // the factor and step 6 follow in apply_focal
            } else {
                wide = times_weight(W(w[j]), wide);  // step 6
                if constexpr (std::is_same_v<T, double> && FromLogits && !Finite)
                    wide = vm::detail::select(deep, Deep::down(vm::detail::select(deep, wide, 0.0)), wide);
            }
            loss = T(wide);
        } else {
            if constexpr (FromLogits) {
                // q = 1: softplus(-|x|) + (x > 0 ? (1 - y') x : -y' x), two non-negative terms
                // and one product (12% faster than the two-term form below, and as exact).
                // A zero label factor means no label term, also for an infinite x (0 * inf
                // would be NaN); with a finite x the multiply-add gives exactly that by itself,
                // and the test is left out (4% of a plain call). Both paths round the same
                // multiply-add (one FMA where the tier has it), so they give the same bits.
                // Outside the fast exp's range soft can be subnormal (|x| > 87.3 / 708.4): it is
                // the loss where the label factor is 0 and below half an ulp of the label term
                // elsewhere, so it enters no arithmetic (an operation on it takes a microcode
                // assist on Intel, even one with an exact result).
                const T label_factor = x > T(0) ? ys_c : -ys;
                if constexpr (Finite) {
                    loss = vm::detail::mul_add(label_factor, x, soft);
                } else {
                    const T soft_k = vm::detail::select(soft < std::numeric_limits<T>::min(), T(0), soft);
                    loss = vm::detail::select(label_factor == T(0), soft, vm::detail::mul_add(label_factor, x, soft_k));
                }
            } else {
                loss = times_weight(ys, neg_log_p) + times_weight(ys_c, neg_log_1mp);
            }
            // (focal calls take steps 4-6 in apply_focal, alpha included)
            // step 6: one rounded product, which overflows only with w * loss
            // (float64 logits outside the fast exp's range: loss_tile multiplies, see WeightLater;
            // WideWeight: in double, see wide_weight_abs)
            if constexpr (O == Options::weighted && !Focal && !WeightLater<T, FromLogits, Finite>) {
                if constexpr (WideWeight) loss = T(times_weight(Wide<T>(w[j]), Wide<T>(loss)));
                else loss = times_weight(w[j], loss);
            }
        }
        ce[j] = loss;
        // (general focal calls keep 1 - p_t for apply_focal; z is read before it is overwritten)
        if constexpr (Focal && General)
            scratch[j] = one_minus_pt<FromLogits>(ys, ys_c, x, FromLogits ? scratch[j] : T(0));
    }
    return max_bits;
}

// Whether a TableFocal call (loss_tile) takes sigmoid(-|x|) from softplus(-|x|)
// (vm::sigmoid_by_softplus, 1.97 ulp, a sixth less time for gamma 2) or from its table (1.16
// ulp): by gamma, for the whole call, so that an element's bits never depend on its tile. The
// focal factor's error is about gamma times z's; up to gamma 2 the cheaper one keeps the loss
// well within the focal budget.
#if defined(FASTBCE_SOFTPLUS_TABLE)
inline bool sigmoid_by_softplus(const LossParams<float>& k) { return k.gamma <= 2.0f; }
#endif

// TableFocal's loop (loss_tile) for a tile whose every |x| is below the tables' end (31.5) and at
// most the focal band: steps 1-6 in one loop, from softplus(-|x|) in `soft` and sigmoid(-|x|) in
// `ce` (overwritten). The operations of loss_loop (Finite, SoftGiven) followed by apply_focal
// (Clean), so their bits, without the round trip through `ce` in between (the two loops, and a
// pass of their own for each table, took 1.3x this time). Returns the largest bit pattern of the
// labels: a tile with one outside [0, 1] (or NaN, -0) is not clean, and the caller computes it
// again by those loops.
#if defined(FASTBCE_SOFTPLUS_TABLE)
template <Options O, class Factor>
inline uint32_t focal_table_loop(const float* __restrict y, const float* __restrict pred, const float* __restrict soft,
                                 const float* __restrict w, float* __restrict ce, int64_t len,
                                 const LossParams<float>& k, Factor factor) {
    uint32_t max_bits = 0;
    for (int64_t j = 0; j < len; ++j) {  // (vectorised; AVX-512 only: unmarked)
        max_bits = range_max(max_bits, y[j]);
        const float ys = y[j], ys_c = 1.0f - y[j], x = pred[j];
        const float loss = vm::detail::mul_add(x > 0.0f ? ys_c : -ys, x, soft[j]);  // (as loss_loop)
        ce[j] = focal_element<O, true, true, false, true>(loss, ys, ys_c, x, ce[j], w[j], k, factor, [](float v) { return v; });
    }
    return max_bits;
}

// TableFocal (loss_tile): a tile whose every |x| is below the tables' end and within the focal
// band (for realistic logits, nearly every tile) takes both tables in one pass and
// focal_table_loop. Returns false for any other tile, and for one with a label outside [0, 1]
// (NaN, -0), which the caller then computes by its table block and the usual focal loops.
template <Options O>
inline bool focal_table_tile(const float* __restrict y, const float* __restrict pred, const float* __restrict w,
                             float* __restrict ce, float* __restrict scratch, int64_t len, const LossParams<float>& k) {
    const uint32_t max_abs_bits = sigmoid_by_softplus(k) ? vm::softplus_sigmoid_neg_abs_table<true>(pred, scratch, ce, len)
                                                         : vm::softplus_sigmoid_neg_abs_table(pred, scratch, ce, len);
    if (max_abs_bits >= std::bit_cast<uint32_t>(vm::softplus_table_max) || max_abs_bits > std::bit_cast<uint32_t>(k.focal_band))
        return false;
    uint32_t labels = 0;
    auto fused = [&](auto factor) { labels = focal_table_loop<O>(y, pred, scratch, w, ce, len, k, factor); };
    auto by_products = [&](auto h) { fused([](auto t) { return half_power<decltype(h)::value>(t); }); };
    if (!with_half_gamma(k.half_gamma, by_products)) fused(PowFactor{double(k.gamma)});
    return labels <= std::bit_cast<uint32_t>(1.0f);
}

// Keeps a loaded vector in its register: GCC 12 otherwise folds its one load into each
// instruction that uses it, and loaded x three times and y three times a vector in
// plain_table_loop. Inputs as NumPy allocates them are 16-byte aligned, so each such 64-byte load
// spans two cache lines: one load each took 9% less time (float labels; uint8 3%; one thread, L2,
// medians of alternated runs).
template <class V>
FASTBCE_VM_INLINE void in_register(V& v) {
    asm("" : "+v"(v));
}

// Plain float32 logits on AVX-512: the softplus table and the loss in one loop (the table's pass
// and loss_loop's, as two loops: 10% more time with float labels, one thread, L2; see
// plain_table_loop_u8 for uint8 labels). The loss is loss_loop's (Finite, SoftGiven, plain), by
// the same operations: (x > 0 ? 1 - y : -y) x + softplus(-|x|), one FMA. Every lane is computed;
// only a tile whose returned largest |x| bits are below softplus_table_max may use `ce` (loss_tile
// then goes on from `soft`, softplus(-|x|) where |x| is below it, as after the table's own pass).
// `label_bits`: the largest bit pattern of the labels (loss_loop's range check).
inline uint32_t plain_table_loop(const float* __restrict y, const float* __restrict pred, float* __restrict soft,
                                 float* __restrict ce, int64_t len, uint32_t& label_bits) {
    const vm::TablePolys softplus(vm::detail::kSoftplusTable);
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), sign = _mm512_set1_epi32(int(0x80000000u));
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    __m512i max_abs = _mm512_setzero_si512(), max_y = _mm512_setzero_si512();
    for (int64_t j = 0; j < len; j += 16) {
        __m512 x = _mm512_loadu_ps(pred + j), yv = _mm512_loadu_ps(y + j);
        in_register(x), in_register(yv);
        const __m512i a_bits = _mm512_and_si512(_mm512_castps_si512(x), abs_mask);
        max_abs = vm::max_u32(max_abs, a_bits);
        max_y = vm::max_u32(max_y, _mm512_castps_si512(yv));
        const __m512 s = vm::softplus_neg_abs(softplus, a_bits);
        _mm512_storeu_ps(soft + j, s);
        const __m512 minus_y = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(yv), sign));
        const __m512 factor = _mm512_mask_sub_ps(minus_y, _mm512_cmp_ps_mask(x, zero, _CMP_GT_OQ), one, yv);
        _mm512_storeu_ps(ce + j, _mm512_fmadd_ps(factor, x, s));
    }
    label_bits = vm::max_lane(max_y);
    return vm::max_lane(max_abs);
}

// plain_table_loop for uint8 labels as they are (process_block: no pass converting them to
// float, 64 a vector): with a label of 0 or 1 the loss is softplus(-|x|) + |x| where the label
// is on the other side of x from its logit (y = 1, x <= 0 or y = 0, x > 0), softplus(-|x|)
// elsewhere: the value, and the one rounding, of loss_loop's (x > 0 ? 1 - y : -y) x + softplus,
// whose factor is then +-1 or +-0, so the same bits in every rounding mode. |x| there is x with
// its sign flipped where y = 1, and that is <= 0 on the other lanes: max(that, 0) added. One
// thread, L2, N(0, 4^2): 6% less time than the conversion pass, the table's pass and loss_loop
// (time_kernel, medians of alternated runs; 8% with in_register).
// Returns the largest |x| bits (ce holds the losses only if they are below softplus_table_max)
// and, in `max_label`, the largest label (only 0 and 1 give these losses).
inline uint32_t plain_table_loop_u8(const uint8_t* __restrict y, const float* __restrict pred, float* __restrict ce,
                                    int64_t len, uint32_t& max_label) {
    static_assert(kPad % 64 == 0);
    const vm::TablePolys softplus(vm::detail::kSoftplusTable);
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), sign = _mm512_set1_epi32(int(0x80000000u));
    __m512i max_abs = _mm512_setzero_si512(), max_y = _mm512_setzero_si512();
    for (int64_t j = 0; j < len; j += 64) {
        const __m512i labels = _mm512_loadu_si512(y + j);
        max_y = _mm512_mask_max_epu8(max_y, ~__mmask64(0), max_y, labels);  // (masked: see max_u32)
        const __mmask64 ones = _mm512_test_epi8_mask(labels, labels);
        for (int q = 0; q < 4; ++q) {
            __m512i x_bits = _mm512_castps_si512(_mm512_loadu_ps(pred + j + 16 * q));
            in_register(x_bits);
            const __m512i a_bits = _mm512_and_si512(x_bits, abs_mask);
            max_abs = vm::max_u32(max_abs, a_bits);
            const __m512 s = vm::softplus_neg_abs(softplus, a_bits);
            const __mmask16 one_lanes = __mmask16(ones >> (16 * q));
            const __m512 t = _mm512_castsi512_ps(_mm512_mask_xor_epi32(x_bits, one_lanes, x_bits, sign));
            _mm512_storeu_ps(ce + j + 16 * q, _mm512_add_ps(s, _mm512_maskz_max_ps(__mmask16(0xffff), t, _mm512_setzero_ps())));
        }
    }
    alignas(64) uint8_t bytes[64];
    _mm512_store_si512(bytes, max_y);
    max_label = 0;
    for (uint8_t b : bytes) max_label = b > max_label ? b : max_label;
    return vm::max_lane(max_abs);
}
#endif

// Plain float32 logits with contiguous uint8 labels (process_block's plain_table_loop_u8 tiles).
template <class T, bool FromLogits, bool Focal, Options O>
#if defined(FASTBCE_SOFTPLUS_TABLE)
constexpr bool kU8Table = FromLogits && !Focal && O == Options::plain && std::is_same_v<T, float>;
#else
constexpr bool kU8Table = false;
#endif

// The elementwise loss of docs/reference.md, steps 1-6, for one tile, in stages that are
// each a plain vector loop over the tile (`scratch` holds kTile values between them). One fused
// loop was bound by its dependency chain (exp -> log1p -> loss): the out-of-order core could not
// overlap enough elements; split, the same operations ran 16% faster (docs/vecmath.md).
// Returns whether a label (or, for probabilities, a prediction) may be outside [0, 1]: NaN and -0
// say so too, and the exact check that follows finds nothing for them.
//
// Writing ce = q*y'*(-log p) + (1-y')*(-log(1-p)) with both logs computed as non-negative
// quantities keeps every term positive: no cancellation for soft labels, and for logits
//   -log p = max(-x, 0) + log1p(exp(-|x|)),   -log(1-p) = max(x, 0) + log1p(exp(-|x|)),
// which for q = 1 is softplus(-|x|) + (x > 0 ? (1-y')x : -y'x) and for q != 1 equals the
// tf.nn.weighted_cross_entropy_with_logits form (1-y')x + (1+(q-1)y') softplus(-x).
// Options (types.hpp): plain drops label smoothing, q, w and (without focal) alpha, which are
// then the identity; weighted adds w only; general computes them all (and gives the same value
// for neutral ones, up to the rounding of its float64 products).
template <class T, bool FromLogits, bool Focal, Options O>
inline bool loss_tile(const T* __restrict y, const T* __restrict pred, const T* __restrict q,
                      const T* __restrict w, T* __restrict ce, T* __restrict scratch,
                      double* __restrict wide_loss, int64_t len, const LossParams<T> k,
                      [[maybe_unused]] bool& general_exp) {
    using Bits = typename vm::detail::traits<T>::uint;
    [[maybe_unused]] bool finite = false;  // (logits) every |x| within the fast exp's range
    [[maybe_unused]] Bits max_abs_bits = 0;  // (logits) of the largest |x|
    [[maybe_unused]] Bits min_abs_bits = std::numeric_limits<Bits>::max();  // (logits) of the smallest
    // Focal calls of kSigmoidZ: the table block below also takes their loss loop (its range
    // check in table_max_bits) and leaves sigmoid(-|x|) in `scratch` for the focal step.
    constexpr bool TableFocal = Focal && kSigmoidZ<T, FromLogits, O>;
    [[maybe_unused]] Bits table_max_bits = 0;
#if defined(FASTBCE_SOFTPLUS_TABLE)
    // Plain and weighted float logits on AVX-512: softplus(-|x|) from the table (a third of the
    // instructions of exp and log1p_small), and from exp for |x| >= 31.5 (where log1p(z) rounds
    // to z), element by element: one formula per element whatever its tile. A tile with such an
    // |x| computes both; `general_exp` here says the previous tile had no |x| within the table,
    // and this one then starts with exp (and takes the table only if it has such an |x|), so that
    // runs of large logits do not pay for both (1.8x the time per element otherwise).
    if constexpr (FromLogits && O != Options::general && std::is_same_v<T, float>) {
        constexpr Bits table_max = std::bit_cast<Bits>(vm::softplus_table_max);
        if constexpr (TableFocal) {
            if (!general_exp && focal_table_tile<O>(y, pred, w, ce, scratch, len, k)) return false;
        }
        // (by bits: NaN, whose bits are larger still, takes exp too and stays NaN)
        auto beyond = [&](int64_t j) { return std::bit_cast<Bits>(std::abs(pred[j])) >= table_max; };
        min_abs_bits = 0;
        if (!general_exp) {
            if constexpr (O == Options::plain && !Focal) {
                // (the table and the loss in one loop; a tile with an |x| beyond the table goes on
                // from its softplus values below, and loss_loop computes its loss again)
                uint32_t label_bits;
                max_abs_bits = plain_table_loop(y, pred, scratch, ce, len, label_bits);
                if (max_abs_bits < table_max) return label_bits > std::bit_cast<Bits>(T(1));
            } else {
                max_abs_bits = vm::softplus_neg_abs_table(pred, scratch, len);
            }
            if (max_abs_bits >= table_max) {
                min_abs_bits = table_max;
                for (int64_t j = 0; j < len; ++j) {  // (vectorised; AVX-512 only: unmarked)
                    const T a = std::abs(pred[j]);
                    min_abs_bits = std::min(min_abs_bits, std::bit_cast<Bits>(a));
                    scratch[j] = vm::detail::select(beyond(j), vm::exp_nonpositive(-a), scratch[j]);
                }
            }
        } else {
            // the cheapest exp that gives every element's bits: that of a normal result, or none
            // at all where every exp(-|x|) is +0 (|x| >= zero_exp_min; NaN gives -|x|, as
            // exp_nonpositive does). The range of |x| is taken in the loop of the normal exp,
            // whose results a tile beyond its range replaces (a pass of its own before that loop
            // was 10% of a tile of |x| in [31.5, 87.33]), or, where the tile's first |x| is
            // beyond that exp's range (the tile likely is), alone first (two integer ops a vector).
            constexpr Bits zero_min = std::bit_cast<Bits>(vm::zero_exp_min<T>);
            const bool scan_first = std::bit_cast<Bits>(std::abs(pred[0])) > std::bit_cast<Bits>(vm::normal_exp_max<T>);
            min_abs_bits = std::numeric_limits<Bits>::max();
            if (scan_first) {
                for (int64_t j = 0; j < len; ++j) {  // (vectorised; AVX-512 only: unmarked)
                    const Bits a = std::bit_cast<Bits>(std::abs(pred[j]));
                    max_abs_bits = std::max(max_abs_bits, a);
                    min_abs_bits = std::min(min_abs_bits, a);
                }
            } else {
                for (int64_t j = 0; j < len; ++j) {  // (as above)
                    const T a = std::abs(pred[j]);
                    max_abs_bits = std::max(max_abs_bits, std::bit_cast<Bits>(a));
                    min_abs_bits = std::min(min_abs_bits, std::bit_cast<Bits>(a));
                    scratch[j] = vm::exp_nonpositive_normal(-a);
                }
            }
            if (max_abs_bits <= std::bit_cast<Bits>(vm::normal_exp_max<T>)) {
                if (scan_first)
                    for (int64_t j = 0; j < len; ++j) scratch[j] = vm::exp_nonpositive_normal(-std::abs(pred[j]));  // (as above)
            } else if (min_abs_bits >= zero_min) {
                for (int64_t j = 0; j < len; ++j) {  // (as above)
                    const T a = std::abs(pred[j]);
                    scratch[j] = vm::detail::select(a != a, -a, T(0));
                }
            } else {
                for (int64_t j = 0; j < len; ++j) scratch[j] = vm::exp_nonpositive(-std::abs(pred[j]));  // (as above)
            }
            if (min_abs_bits < table_max) {
                vm::softplus_neg_abs_table(pred, ce, len);  // (ce: free until loss_loop below)
                for (int64_t j = 0; j < len; ++j) scratch[j] = vm::detail::select(beyond(j), scratch[j], ce[j]);  // (as above)
            }
        }
        general_exp = min_abs_bits >= table_max;
        // (softplus is 0 where exp(-|x|) is, so saturate_tile applies to it as to exp; a tile of
        // finite |x| >= zero_exp_min has its zeros already)
        finite = max_abs_bits <= std::bit_cast<Bits>(vm::normal_exp_max<T>) ||
                 (min_abs_bits >= std::bit_cast<Bits>(vm::zero_exp_min<T>) && max_abs_bits < std::bit_cast<Bits>(inf<T>)) ||
                 saturate_tile(pred, scratch, len);
        // (WideWeight matters to weighted calls only; a tile beyond the fast exp's range has it)
        Bits max_bits;
        if (!finite)
            max_bits = loss_loop<T, true, Focal, O, false, true, O == Options::weighted>(y, pred, q, w, ce, scratch, wide_loss, len, k);
        else if (O == Options::weighted && !Focal && wide_weight(max_abs_bits, min_abs_bits))
            max_bits = loss_loop<T, true, false, O, true, true, O == Options::weighted>(y, pred, q, w, ce, scratch, wide_loss, len, k);
        else
            max_bits = loss_loop<T, true, Focal, O, true, true>(y, pred, q, w, ce, scratch, wide_loss, len, k);
        if constexpr (!Focal) return max_bits > std::bit_cast<Bits>(T(1));
        // (focal: softplus becomes sigmoid(-|x|) where |x| < 31.5, and stays exp(-|x|) beyond,
        // which is both; the focal step below follows)
        if (sigmoid_by_softplus(k)) vm::sigmoid_by_softplus_table(pred, scratch, len);
        else vm::sigmoid_neg_abs_table(pred, scratch, len);
        table_max_bits = max_bits;
    }
#endif
    if constexpr (FromLogits && !TableFocal) {
        // exp(-|x|) with the cheaper exp of a normal result; a tile with any |x| beyond its
        // range (or NaN, whose bits are larger still) takes the general exp_nonpositive again.
        // `general_exp` (the previous tile needed it) starts with the general one instead, so
        // that runs of such tiles do not pay twice; both give the same bits where both apply.
        // A tile whose every |x| is finite and at least zero_exp_min has exp(-|x|) = +0 throughout
        // (its zeros are put in at once, where saturate_tile's pass made such tiles 1.3x slower
        // than small logits on v3 and v2).
        if (general_exp) {
            for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
                const T a = std::abs(pred[j]);
                max_abs_bits = std::max(max_abs_bits, std::bit_cast<Bits>(a));
                min_abs_bits = std::min(min_abs_bits, std::bit_cast<Bits>(a));
                scratch[j] = vm::exp_nonpositive(-a);
            }
        } else {
            for (int64_t j = 0; j < len; ++j) {  // FASTBCE_VEC_LOOP
                const T a = std::abs(pred[j]);
                max_abs_bits = std::max(max_abs_bits, std::bit_cast<Bits>(a));
                min_abs_bits = std::min(min_abs_bits, std::bit_cast<Bits>(a));
                scratch[j] = vm::exp_nonpositive_normal(-a);
            }
        }
        const bool zeros = min_abs_bits >= std::bit_cast<Bits>(vm::zero_exp_min<T>) && max_abs_bits < std::bit_cast<Bits>(inf<T>);
        if (zeros) std::fill(scratch, scratch + len, T(0));
        finite = max_abs_bits <= std::bit_cast<Bits>(vm::normal_exp_max<T>) || zeros || saturate_tile(pred, scratch, len);
        const bool had_general = general_exp;
        general_exp = !finite;
        if (!finite && !had_general) {
            for (int64_t j = 0; j < len; ++j) scratch[j] = vm::exp_nonpositive(-std::abs(pred[j]));  // FASTBCE_VEC_LOOP
        }
    }
    Bits max_bits = table_max_bits;
    // (general calls use it only for float64, in the deep band: Deep; WideWeight: weighted float
    // logits in a tile beyond the fast exp's range or with an |x| above wide_weight_abs)
    if constexpr (TableFocal) {
        // (taken in the table block)
    } else if constexpr (FromLogits && (O != Options::general || std::is_same_v<T, double>)) {
        if (!finite)
            max_bits = loss_loop<T, FromLogits, Focal, O, false, false, O == Options::weighted>(y, pred, q, w, ce, scratch, wide_loss, len, k);
        else if (O == Options::weighted && wide_weight(max_abs_bits, min_abs_bits))
            max_bits = loss_loop<T, FromLogits, Focal, O, true, false, O == Options::weighted>(y, pred, q, w, ce, scratch, wide_loss, len, k);
        else
            max_bits = loss_loop<T, FromLogits, Focal, O, true>(y, pred, q, w, ce, scratch, wide_loss, len, k);
    } else {
        max_bits = loss_loop<T, FromLogits, Focal, O, false>(y, pred, q, w, ce, scratch, wide_loss, len, k);
    }
    if constexpr (O == Options::weighted && !Focal && WeightLater<T, FromLogits, false>) {
        if (!finite) weight_tile(ce, w, len);
    }
    const bool maybe_outside_unit = max_bits > std::bit_cast<Bits>(T(1));
    if constexpr (Focal) {
        // step 4: (1 - p_t)^gamma, by products for gamma in {1/2, 1, ..., 4} (half_power), else
        // as exp(gamma * log(1 - p_t)), which does not underflow for gamma < 1 (exp(-inf) = 0
        // where 1 - p_t = 0; gamma > 0 here); then step 6
        const bool clean = finite && !maybe_outside_unit;
        // (float logits) a tile with an |x| in the focal band: the mixed loop; the bound is
        // below the fast exp's, so a tile within it is finite, and the scan runs only beyond it
        bool mixed = false;
        if constexpr (FromLogits && O != Options::general && std::is_same_v<T, float>) {
            // (none where every |x| is at least zero_exp_min: exp(-|x|) = 0 there)
            if (max_abs_bits > std::bit_cast<Bits>(k.focal_band) && min_abs_bits < std::bit_cast<Bits>(vm::zero_exp_min<T>)) {
                int any = 0;
                for (int64_t j = 0; j < len; ++j) any |= int(FocalBand::wide(pred[j], scratch[j], k.focal_band));
                mixed = any != 0;
            }
        }
        // (double logits) a clean tile with an |x| in (scaled_band, 746), where focal_element
        // may scale: the scan runs only beyond the band
        [[maybe_unused]] bool scaled = false;
        if constexpr (FromLogits && O != Options::general && std::is_same_v<T, double>) {
            if (clean && max_abs_bits > std::bit_cast<Bits>(k.scaled_band)) {
                int any = 0;
                for (int64_t j = 0; j < len; ++j) any |= int(in_scaled_band(pred[j], k.scaled_band));
                scaled = any != 0;
            }
        }
        auto apply = [&](auto factor) {
            if constexpr (FromLogits && O != Options::general) {
                if constexpr (std::is_same_v<T, float>) {
                    if (mixed) return apply_focal<O, FromLogits, false, true>(ce, wide_loss, y, pred, scratch, w, len, k, factor);
                } else {
                    // (double: a tile beyond the fast exp's range or with an |x| beyond
                    // scaled_band takes the scaled loop, focal_element)
                    if (!clean) return apply_focal<O, FromLogits, false, false, true>(ce, wide_loss, y, pred, scratch, w, len, k, factor);
                    // (gamma outside {1/2, ..., 4}: every clean tile, since that loop measured
                    // 1.35x faster than the plain one on v4 for the same formula and bits)
                    if (scaled || std::is_same_v<decltype(factor), PowFactor>)
                        return apply_focal<O, FromLogits, true, false, true>(ce, wide_loss, y, pred, scratch, w, len, k, factor);
                }
                if (clean) return apply_focal<O, FromLogits, true>(ce, wide_loss, y, pred, scratch, w, len, k, factor);
            }
            apply_focal<O, FromLogits, false>(ce, wide_loss, y, pred, scratch, w, len, k, factor);
        };
        auto by_products = [&](auto h) {
            apply([](auto t) { return half_power<decltype(h)::value>(t); });
        };
        if (!with_half_gamma(k.half_gamma, by_products)) {
            // in float64 (for float input too): exp(gamma * log t) turns the rounding of
            // log t, up to |log t| * 2^-p, into a relative error gamma times that (computed in
            // float, up to 19 ulp at gamma = 2.5); float64 makes it < 1 float ulp
            const double g = double(k.gamma);
            apply(PowFactor{g});
        }
    }
    return maybe_outside_unit;
}

// ---------------------------------------------------------------- accumulation

// Sum of v[0, len) in float64 over 16 lanes (lane l adds v[l], v[l + 16], ...), then the lanes
// in a fixed order: lane l + 8 into lane l, then lanes 0..7 one after another. The order of
// additions is the same on every tier and thread count. The lanes are held in vectors of the
// tier's native width (GCC/Clang vector extensions: converts and adds as plain vector
// instructions; left to the auto-vectoriser they came out as scalar converts and shuffles). A
// 64-byte vector type on AVX2 or SSE was lowered through the stack and took 40% of a plain
// float32 logits call on AVX2.
#if defined(__AVX512F__)
constexpr int kSumLanes = 8;  // doubles per native vector
#elif defined(__AVX__)
constexpr int kSumLanes = 4;
#else
constexpr int kSumLanes = 2;
#endif

template <class T, int L>
struct LaneVec;  // L lanes of T as a GCC/Clang vector type
template <int L>
struct LaneVec<double, L> {
    typedef double type __attribute__((vector_size(8 * L)));
};
template <int L>
struct LaneVec<float, L> {
    typedef float type __attribute__((vector_size(4 * L)));
};

template <class T>
inline double sum_f64(const T* v, int64_t len) {
    constexpr int L = kSumLanes, K = 16 / L;  // K native vectors hold the 16 lanes
    using f64xL = typename LaneVec<double, L>::type;
    using TxL = typename LaneVec<T, L>::type;
    f64xL acc[K] = {};
    int64_t j = 0;
    for (; j + 16 <= len; j += 16) {
        for (int k = 0; k < K; ++k) {
#if defined(__AVX512F__)
            if constexpr (std::is_same_v<T, float>) {
                // (one vcvtps2pd from memory: GCC 12 splits __builtin_convertvector of 8 floats
                // into two 4-wide converts, an extract and an insert, 2.5x the instructions; the
                // masked form because the plain one trips GCC 12's -Wmaybe-uninitialized)
                acc[k] += f64xL(_mm512_maskz_cvtps_pd(__mmask8(0xff), _mm256_loadu_ps(v + j + k * L)));
                continue;
            }
#endif
            TxL a;
            std::memcpy(&a, v + j + k * L, sizeof a);
            acc[k] += __builtin_convertvector(a, f64xL);
        }
    }
    double lanes[16];
    std::memcpy(lanes, acc, sizeof lanes);
    double total = 0.0;
    for (int lane = 0; lane < 8; ++lane) total += lanes[lane] + lanes[lane + 8];
    for (; j < len; ++j) total += double(v[j]);
    return total;
}

// Under nan_policy "omit": zeroes ce and w (into w_kept) where y, p or w is NaN, and marks the
// kept elements with 1 in `kept`, so that plain sums count only them.
template <class T>
inline void mask_omitted(const T* y, const T* p, const T* w, T* ce, T* w_kept, T* kept, int64_t len) {
    for (int64_t j = 0; j < len; ++j) {
        const bool keep = y[j] == y[j] && p[j] == p[j] && w[j] == w[j];
        ce[j] = keep ? ce[j] : T(0);
        w_kept[j] = keep ? w[j] : T(0);
        kept[j] = keep ? T(1) : T(0);
    }
}

// Per-group sums (codes[j] is the group of element j), added element by element in order: the
// same additions, in the same order, on every tier and thread count. The losses come vectorised
// from the tile; this is one scalar scatter per element, with the NaN test of "omit" hoisted out
// of the plain loop. Code is int64_t, or int32_t (an Arrow dictionary's indices as read: no
// int64 copy of them per batch). Returns the first element whose code is outside
// [0, n_groups) (an untrusted dictionary's index: never written through), or -1.
template <class T, class Code>
inline int64_t accumulate_groups(const T* y, const T* p, const T* w, const T* ce, const Code* codes,
                                 int64_t len, bool omit, int64_t n_groups, Sums* groups) {
    const auto in_range = [n_groups](Code code) { return uint64_t(int64_t(code)) < uint64_t(n_groups); };
    if (!omit) {
        for (int64_t j = 0; j < len; ++j) {
            if (!in_range(codes[j])) return j;
            Sums& g = groups[codes[j]];
            g.loss += double(ce[j]);
            g.weight += double(w[j]);
            g.count += 1.0;
        }
        return -1;
    }
    for (int64_t j = 0; j < len; ++j) {
        if (!in_range(codes[j])) return j;
        if (!(y[j] == y[j] && p[j] == p[j] && w[j] == w[j])) continue;
        Sums& g = groups[codes[j]];
        g.loss += double(ce[j]);
        g.weight += double(w[j]);
        g.count += 1.0;
    }
    return -1;
}

// ---------------------------------------------------------------- one block

// Computes elements [begin, end) of the call: checks, loss, optional output, sums.
// Stops at the first failed check and reports it (kind and flat index) in `out`.
template <class T, bool FromLogits, bool Focal, Options O>
void process_block(const Call& c, int64_t begin, int64_t end, BlockOut& out) {
    TileInputs<T> in(c);
    alignas(64) T ce_buf[kTile];
    alignas(64) T w_kept_buf[kTile];
    alignas(64) T kept_buf[kTile];
    alignas(64) T scratch_buf[kTile];
    alignas(64) double wide_buf[O == Options::general && Focal ? kTile : 1];
    alignas(64) int64_t code_buf[kTile];

    const LossParams<T> k(c);
    const bool omit = c.nan_policy == NanPolicy::omit;
    const bool weights_vary = in.weights_vary;
    const double w_const = c.weight_kind == WeightKind::scalar ? double(T(c.weight_scalar)) : 1.0;

    bool general_exp = false;  // (loss_tile: the previous tile needed the general exp)
    // Plain float32 logits with contiguous uint8 labels on AVX-512 (kU8Table): a tile whose every
    // |x| is within the softplus table and every label 0 or 1 takes plain_table_loop_u8 on the
    // labels as they are, with loss_tile's bits; any other tile converts them and takes
    // loss_tile. After such a miss the next kU8Wait tiles go to loss_tile directly, so that a
    // call with large logits in most tiles does not pay for both (an element's loss is the same
    // either way). Under nan_policy "propagate" only: the other policies read the labels as T.
    constexpr int kU8Wait = 32;
    int u8_wait = 0;
    [[maybe_unused]] alignas(64) uint8_t label_pad[kU8Table<T, FromLogits, Focal, O> ? kTile : 1];
    const bool u8_table = kU8Table<T, FromLogits, Focal, O> && c.y_true.dtype == DType::u8 && c.y_true.stride == 1 &&
                          c.nan_policy == NanPolicy::propagate;
    auto u8_table_tile = [&](int64_t i0, int64_t len) {
#if defined(FASTBCE_SOFTPLUS_TABLE)
        if constexpr (kU8Table<T, FromLogits, Focal, O>) {
            const int64_t padded_len = in.load_pred(c, i0, len, T(0));
            const uint8_t* labels = static_cast<const uint8_t*>(c.y_true.data) + i0;
            if (padded_len != len) {  // (label 0 in the padding, as TileInputs::load)
                std::memcpy(label_pad, labels, size_t(len));
                std::memset(label_pad + len, 0, size_t(padded_len - len));
                labels = label_pad;
            }
            uint32_t max_label;
            const uint32_t max_abs_bits = plain_table_loop_u8(labels, in.p, ce_buf, padded_len, max_label);
            return max_abs_bits < std::bit_cast<uint32_t>(vm::softplus_table_max) && max_label <= 1;
        }
#endif
        static_cast<void>(i0), static_cast<void>(len);
        return false;
    };
    const int64_t bytes_per_element = dtype_bytes(c.y_true.dtype) + dtype_bytes(c.y_pred.dtype) +
                                      (c.weight_kind == WeightKind::per_element ? dtype_bytes(c.weight.dtype) : 0);
    const bool touch = c.n >= kTouchFrom / bytes_per_element;  // (touch_lines)
    for (int64_t i0 = begin; i0 < end; i0 += kTile) {
        const int64_t len = std::min(kTile, end - i0);
        if (touch) {
            touch_lines(c.y_true, i0, len);
            touch_lines(c.y_pred, i0, len);
            if (c.weight_kind == WeightKind::per_element) touch_lines(c.weight, i0, len);
            // the next tile of this block, while this one computes (prefetch_lines)
            const int64_t next_len = std::min(kTile, end - (i0 + kTile));
            prefetch_lines(c.y_true, i0 + kTile, next_len);
            prefetch_lines(c.y_pred, i0 + kTile, next_len);
            if (c.weight_kind == WeightKind::per_element) prefetch_lines(c.weight, i0 + kTile, next_len);
        }
        // The loss first: its loop also tells whether a label (or probability) is outside
        // [0, 1], which costs less there than a pass of its own (that pass was 11% of a plain
        // float32 logits call on v4). Nothing leaves this tile before the checks below.
        bool out_of_unit = false;
        const bool u8_try = u8_table && u8_wait == 0 && !general_exp;
        if (u8_try && u8_table_tile(i0, len)) {
            // (done; no check below reads the labels: none is outside [0, 1] or NaN)
        } else {
            if (u8_table) u8_wait = u8_try ? kU8Wait : std::max(u8_wait - 1, 0);  // (see u8_table)
            const int64_t padded_len = in.load(c, i0, len, FromLogits ? T(0) : T(0.5));
            out_of_unit = loss_tile<T, FromLogits, Focal, O>(in.y, in.p, in.q, in.w, ce_buf, scratch_buf, wide_buf,
                                                             padded_len, k, general_exp);
        }
        const T *y = in.y, *p = in.p, *w = in.w;

        // Checks. The first offending element wins; at one element labels come before
        // predictions, weights and NaN.
        int64_t first = len;
        Fault fault = Fault::none;
        auto consider = [&](int64_t j, Fault f) {
            if (j < first) first = j, fault = f;
        };
        if (c.validate && out_of_unit) {
            consider(first_outside_unit(y, len), Fault::label_range);
            if (!FromLogits) consider(first_outside_unit(p, len), Fault::pred_range);
        }
        if (weights_vary) consider(first_bad_weight(w, len), Fault::weight_range);
        if (c.nan_policy == NanPolicy::raise) consider(first_nan(y, p, w, len), Fault::nan);
        if (fault != Fault::none) {
            out.fault = fault;
            out.fault_index = i0 + first;
            return;
        }

        if (c.out != nullptr) {
            T* dst = static_cast<T*>(c.out) + i0 * c.out_stride;
            if (c.out_stride == 1)
                std::memcpy(dst, ce_buf, size_t(len) * sizeof(T));
            else
                for (int64_t j = 0; j < len; ++j) dst[j * c.out_stride] = ce_buf[j];
        }
        if (out.groups != nullptr) {
            // One row per element (the usual case): the codes as given, no copy. A copy row by
            // row was a third of a grouped call.
            int64_t bad = -1;
            if (c.row_size != 1) {
                fill_by_row(i0, len, c.row_size, code_buf, [&](int64_t r) { return c.group_at(r); });
                bad = accumulate_groups(y, p, w, ce_buf, code_buf, len, omit, c.n_groups, out.groups);
            } else if (c.groups != nullptr) {
                bad = accumulate_groups(y, p, w, ce_buf, c.groups + i0, len, omit, c.n_groups, out.groups);
            } else {
                bad = accumulate_groups(y, p, w, ce_buf, c.groups32 + i0, len, omit, c.n_groups, out.groups);
            }
            if (bad >= 0) {
                out.fault = Fault::group_code;
                out.fault_index = i0 + bad;
                return;
            }
        }
        double count = double(len);
        const T* w_sum = w;  // the weights that count
        if (omit) {
            mask_omitted(y, p, w, ce_buf, w_kept_buf, kept_buf, len);
            count = sum_f64(kept_buf, len);
            w_sum = w_kept_buf;
        }
        out.sums.loss += sum_f64(ce_buf, len);
        out.sums.weight += weights_vary ? sum_f64(w_sum, len) : (count > 0 ? w_const * count : 0.0);
        out.sums.count += count;
    }
}

// Applies one vecmath function to n contiguous values (a hook for the per-tier accuracy tests).
template <class T>
void apply_math(MathFn fn, const void* x, void* y, int64_t n) {
    const T* in = static_cast<const T*>(x);
    T* res = static_cast<T*>(y);
    switch (fn) {
        case MathFn::exp: for (int64_t i = 0; i < n; ++i) res[i] = vm::exp(in[i]); break;
        case MathFn::log: for (int64_t i = 0; i < n; ++i) res[i] = vm::log(in[i]); break;
        case MathFn::log1p: for (int64_t i = 0; i < n; ++i) res[i] = vm::log1p(in[i]); break;
        case MathFn::log1p_small: for (int64_t i = 0; i < n; ++i) res[i] = vm::log1p_small(in[i]); break;
    }
}

template <class T>
void fill_blocks(BlockFn (&table)[2][2][3]) {
    constexpr Options plain = Options::plain, weighted = Options::weighted, general = Options::general;
    table[0][0][0] = &process_block<T, false, false, plain>;
    table[0][0][1] = &process_block<T, false, false, weighted>;
    table[0][0][2] = &process_block<T, false, false, general>;
    table[0][1][0] = &process_block<T, false, true, plain>;
    table[0][1][1] = &process_block<T, false, true, weighted>;
    table[0][1][2] = &process_block<T, false, true, general>;
    table[1][0][0] = &process_block<T, true, false, plain>;
    table[1][0][1] = &process_block<T, true, false, weighted>;
    table[1][0][2] = &process_block<T, true, false, general>;
    table[1][1][0] = &process_block<T, true, true, plain>;
    table[1][1][1] = &process_block<T, true, true, weighted>;
    table[1][1][2] = &process_block<T, true, true, general>;
}

inline Kernels make_kernels() {
    Kernels k{};
    k.math[0] = &apply_math<float>;
    k.math[1] = &apply_math<double>;
    fill_blocks<float>(k.block[0]);
    fill_blocks<double>(k.block[1]);
    return k;
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
