// First and second derivatives, with respect to the logit x, of the elementwise loss of
// docs/reference.md section 1 (from logits, every option): ONE fused loop per tile computes the
// gradient and the Hessian together. Compiled once per SIMD tier with the loss kernel
// (cpp/src/kernel_tier.cpp); the loaders and checks are the loss kernel's (kernel.hpp), the
// formulas and their derivation are in docs/gradients.md. This header has the block loop (load,
// check, compute, store: grad_block); the per-tile loops are in grad_loop.hpp and, for float
// focal calls, grad_focal_float.hpp.
//
// Precision: exp(-|x|) is taken in the working type T (float for 16/32-bit input). Plain and
// weighted float calls stay in float (the speed-critical case, within 4 ulp: plain_float_loop,
// one loop from the logits to the caller's arrays); so do float focal calls with gamma in
// {1/2, ..., 4}, with an error bound per element (focal_float_loop); every other call
// continues in double and rounds once to T, so for float input exp's rounding is the only
// float-sized error (float focal calls also take log1p(z) in float, an error below z's), and
// for double input correction terms keep the plain derivatives within a few ulp and the focal
// ones are formed in double-double where they cancel (focal_parts). Where a value cancels (a
// zero of the gradient or Hessian) that rounding of exp, the same as moving x by an ulp of 1,
// is then the error left, in any implementation.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>

#include "fastbce/grad_focal_float.hpp"
#include "fastbce/grad_loop.hpp"
#include "fastbce/kernel.hpp"
#include "fastbce/types.hpp"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace fastbce {
namespace FASTBCE_TIER {

// Copies a tile of results to the caller's array. `stream`: with non-temporal stores, which
// write whole cache lines without reading them first; ordinary stores of a large output read
// every line before writing it, 1.5x the traffic of reading 8 and writing 8 bytes an element
// (measured 1.57x that floor at 1e8 float32 elements on the v4 tier). The values are the same.
template <class T>
inline void store_tile(T* dst, int64_t stride, const T* src, int64_t len, bool stream) {
    if (stride != 1) {
        for (int64_t j = 0; j < len; ++j) dst[j * stride] = src[j];
        return;
    }
#if defined(__SSE2__)
    if (stream) {
#if defined(__AVX512F__)
        using Vec = __m512i;
#elif defined(__AVX__)
        using Vec = __m256i;
#else
        using Vec = __m128i;
#endif
        constexpr int64_t lanes = int64_t(sizeof(Vec) / sizeof(T));
        int64_t j = 0;
        for (; j < len && reinterpret_cast<uintptr_t>(dst + j) % sizeof(Vec) != 0; ++j) dst[j] = src[j];
        for (; j + lanes <= len; j += lanes) {
            Vec v;
            std::memcpy(&v, src + j, sizeof v);
#if defined(__AVX512F__)
            _mm512_stream_si512(reinterpret_cast<Vec*>(dst + j), v);
#elif defined(__AVX__)
            _mm256_stream_si256(reinterpret_cast<Vec*>(dst + j), v);
#else
            _mm_stream_si128(reinterpret_cast<Vec*>(dst + j), v);
#endif
        }
        for (; j < len; ++j) dst[j] = src[j];
        return;
    }
#else
    (void)stream;
#endif
    std::memcpy(dst, src, size_t(len) * sizeof(T));
}

// Outputs at least this large (elements) are written with non-temporal stores: they do not fit
// in the caches anyway (a smaller one stays cached for the caller, e.g. a boosting library).
constexpr int64_t kStreamMin = int64_t(1) << 22;

// Elements of an array from `p` to its next cache-line (64-byte) boundary (0: p is on one).
template <class T>
inline int64_t to_line_end(const T* p) {
    return int64_t((64 - reinterpret_cast<uintptr_t>(p) % 64) % 64 / sizeof(T));
}

// The streamed plain and weighted float derivatives go out in chunks of this many elements (4
// cache lines of each output): computed into a buffer, then streamed, a chunk at a time. Whole
// tiles (2 KiB of each output) in one burst left the loads waiting behind the stores (1e8
// float32 elements, 2 threads, v4, line-aligned outputs, CPU time: 1.40x the memory floor with
// tiles, 1.15x with chunks of 64; 32 and 128 no better), in the same run.
constexpr int64_t kStreamChunk = 64;

// plain_float for a tile written to the caller's g and h (h null: no Hessian) with non-temporal
// stores, kStreamChunk elements at a time from g's first cache-line boundary on; g and h at the
// same offset in a cache line, so that every chunk but a block's first and last fills whole
// lines of both (a line partly written by ordinary stores and partly streamed is read and
// written again: outputs 16 bytes off a line, as NumPy's large arrays are, took 1.76x the
// floor with per-tile stores and 3x with unaligned chunks). Returns the labels' largest bits.
template <Options O>
inline uint32_t plain_float_streamed(const float* y, const float* x, const float* w, float* g, float* h,
                                     int64_t len, float* g_buf, float* h_buf) {
    uint32_t label_bits = 0;
    auto chunk = [&](int64_t s0, int64_t part) {
        label_bits = std::max(label_bits, plain_float<O>(y + s0, x + s0, w + s0, g_buf, h_buf, part));
        store_tile(g + s0, 1, g_buf, part, true);
        if (h != nullptr) store_tile(h + s0, 1, h_buf, part, true);
    };
    int64_t s0 = std::min(len, to_line_end(g));
    if (s0 > 0) chunk(0, s0);
    for (; s0 + kStreamChunk <= len; s0 += kStreamChunk) chunk(s0, kStreamChunk);  // (a constant length)
    if (s0 < len) chunk(s0, len - s0);
    return label_bits;
}

// Asks for the bytes of elements [begin, begin + len) of a float view ahead of their use, one
// request per cache line: the derivatives do little work per byte, so without it the loads of
// a tile wait for memory after the previous tile's arithmetic instead of during it.
inline void prefetch_view(const View& v, int64_t begin, int64_t len) {
#if defined(__SSE2__)
    if (v.stride != 1 || (v.dtype != DType::f32 && v.dtype != DType::f64)) return;
    const int64_t size = v.dtype == DType::f32 ? 4 : 8;
    const char* p = static_cast<const char*>(v.data) + begin * size;
    for (int64_t b = 0; b < len * size; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
#else
    (void)v, (void)begin, (void)len;
#endif
}

// Tiles between a tile's prefetch and its use.
constexpr int64_t kPrefetchTiles = 3;

// Elements [begin, end) of a derivatives call: load, check (as the loss: labels in [0, 1] when
// validating, weights, NaN under "raise"; the first offending element wins), compute, store
// (plain and weighted float: compute, then check; on a fault the caller's arrays hold partial
// results, as the loss's `out`). NaN in y, x or w gives NaN derivatives under "propagate" and
// "omit" alike.
template <class T, Options O, bool Focal, bool Clip>
void grad_block(const Call& c, const GradOut& go, int64_t begin, int64_t end, BlockOut& out) {
    TileInputs<T> in(c);  // (p: the logits x)
    alignas(64) T z_buf[kTile];
    alignas(64) T g_buf[kTile];
    alignas(64) T h_buf[kTile];
    alignas(64) double f_buf[Focal ? kTile : 1];
    constexpr bool redo_focal = Focal && !std::is_same_v<T, float>;
    std::unique_ptr<FocalRedo> redo;  // (float64 focal only)
    if constexpr (redo_focal) redo = std::make_unique<FocalRedo>();

    const GradParams k = GradParams::of<T>(c);
    // float focal with gamma in {1/2, 1, ..., 4}: in float, a few elements through grad_loop
    std::unique_ptr<FocalFloatRedo> float_redo;
    // (not with tiny smoothing: its s/2 is not a normal float, the double path takes it exactly)
    if constexpr (Focal && std::is_same_v<T, float>)
        if (k.half_gamma != 0 && !LossParams<float>::tiny_smoothing(c))
            float_redo = std::make_unique<FocalFloatRedo>();
    const T* const q = in.q;
    T* const grad = static_cast<T*>(go.grad);
    T* const hess = static_cast<T*>(go.hess);
    const bool stream = c.n >= kStreamMin;

    // plain and weighted float: computed first (one loop, the labels' range checked by their
    // largest bits there), straight into the caller's arrays unless strided or streamed; without
    // the prefetches, which the hardware's own do better for that loop (1e8 float32 elements,
    // 2 threads, v4: 1.35x the memory floor without them, 1.65x with, in the same run)
    constexpr bool fused = std::is_same_v<T, float> && !Focal && O != Options::general;
    // (so is the float focal path, focal_float)
    const bool computed_first = fused || float_redo != nullptr;
    // fused and streamed (plain_float_streamed): tiles end on grad's cache lines (the first one
    // is shorter), where hess has the same offset in a line (else as the other paths: per tile)
    bool streamed = false;
    if constexpr (fused)
        streamed = stream && go.grad_stride == 1 &&
                   (hess == nullptr || (go.hess_stride == 1 && to_line_end(hess) == to_line_end(grad)));
    const int64_t skew = streamed ? (kTile - to_line_end(grad + begin)) % (64 / int64_t(sizeof(T))) : 0;
    for (int64_t i0 = begin, len = 0; i0 < end; i0 += len) {
        len = std::min(i0 == begin ? kTile - skew : kTile, end - i0);
        const int64_t ahead = i0 + kPrefetchTiles * kTile;
        if (!computed_first && ahead < end) {
            prefetch_view(c.y_true, ahead, std::min(kTile, end - ahead));
            prefetch_view(c.y_pred, ahead, std::min(kTile, end - ahead));
        }
        in.load_unpadded(c, i0, len);
        const T *y = in.y, *x = in.p, *w = in.w;

        const bool direct =
            computed_first && !stream && go.grad_stride == 1 && (hess == nullptr || go.hess_stride == 1);
        T* const g_out = direct ? grad + i0 : g_buf;
        T* const h_out = direct && hess != nullptr ? hess + i0 : h_buf;
        uint32_t label_bits = 0;
        if constexpr (fused) {
            T* const h_at = hess != nullptr ? hess + i0 : nullptr;
            if (streamed)
                label_bits = plain_float_streamed<O>(y, x, w, grad + i0, h_at, len, g_buf, h_buf);
            else
                label_bits = plain_float<O>(y, x, w, g_out, h_out, len);
        }
        if constexpr (Focal && std::is_same_v<T, float>)
            if (float_redo) {  // (z_buf holds the marks)
                const bool defer = direct && hess != nullptr;
                const FocalFloatOut dst = defer ? FocalFloatOut{grad, hess, i0, true}
                                                : FocalFloatOut{g_out, h_out, 0, false};
                label_bits = focal_float<Clip>(y, x, w, q, g_out, h_out, z_buf, len, k, *float_redo, dst);
            }

        int64_t first = len;
        Fault fault = Fault::none;
        auto consider = [&](int64_t j, Fault f) {
            if (j < first) first = j, fault = f;
        };
        // (a label in [+0, 1] has bits <= those of 1; -0 and NaN, no range errors, take the
        // exact check)
        if (c.validate && (!computed_first || label_bits > std::bit_cast<uint32_t>(1.0f)))
            consider(first_outside_unit(y, len), Fault::label_range);
        if (in.weights_vary) consider(first_bad_weight(w, len), Fault::weight_range);
        if (c.nan_policy == NanPolicy::raise) consider(first_nan(y, x, w, len), Fault::nan);
        if (fault != Fault::none) {
            out.fault = fault;
            out.fault_index = i0 + first;
            break;  // (the deferred redo and the fence below still run for the tiles written)
        }

        if (!computed_first) {  // (fused calls computed first too)
            exp_neg_abs(x, z_buf, len);
            if constexpr (Focal) focal_factor<T>(y, x, z_buf, f_buf, len, k);
            grad_loop<T, O, Focal, Clip>(y, x, z_buf, w, q, f_buf, g_buf, h_buf, len, k, redo.get());
            if constexpr (redo_focal) focal_cancelling<T, Clip>(y, x, z_buf, q, f_buf, g_buf, h_buf, len, k, *redo);
        }
        if (!direct && !streamed) {
            store_tile(grad + i0 * go.grad_stride, go.grad_stride, g_buf, len, stream);
            if (hess != nullptr) store_tile(hess + i0 * go.hess_stride, go.hess_stride, h_buf, len, stream);
        }
    }
    if constexpr (Focal && std::is_same_v<T, float>)
        if (float_redo) focal_float_redo<Clip>(k, *float_redo, grad, hess);  // (the deferred ones)
#if defined(__SSE2__)
    if (stream) _mm_sfence();  // the streamed lines are visible before the block is reported done
#endif
}

template <class T>
void fill_grad_blocks(GradBlockFn (&table)[5]) {
    table[int(GradLevel::plain)] = &grad_block<T, Options::plain, false, false>;
    table[int(GradLevel::weighted)] = &grad_block<T, Options::weighted, false, false>;
    table[int(GradLevel::general)] = &grad_block<T, Options::general, false, false>;
    table[int(GradLevel::focal)] = &grad_block<T, Options::general, true, false>;
    table[int(GradLevel::focal_clipped)] = &grad_block<T, Options::general, true, true>;
}

inline GradKernels make_grad_kernels() {
    GradKernels k{};
    fill_grad_blocks<float>(k.block[0]);
    fill_grad_blocks<double>(k.block[1]);
    return k;
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
