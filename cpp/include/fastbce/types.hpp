// Plain data shared by the Python binding, the dispatcher and every SIMD tier.
// No Python, no SIMD: this header is what a C++ test or fuzzer needs to drive the kernel.
#pragma once

#include <cstdint>

namespace fastbce {

// Storage type of one input array, as the kernel reads it in place.
enum class DType : int32_t {
    u8 = 0,  // also bool (numpy stores bool as one byte 0/1)
    i8,
    u16,
    i16,
    u32,
    i32,
    u64,
    i64,
    f16,   // IEEE binary16
    bf16,  // bfloat16 (ml_dtypes)
    f32,
    f64,
};

// A read-only 1-D view: `stride` is in elements and may be negative or zero.
struct View {
    const void* data = nullptr;
    int64_t stride = 1;
    DType dtype = DType::f32;
};

enum class WeightKind : int32_t { none = 0, scalar, per_row, per_element };
enum class NanPolicy : int32_t { propagate = 0, omit, raise };

// Which check failed first; values are stable (the Python layer maps them to messages).
// (group_code: a group code outside [0, n_groups), from the loss pass's groups or a report slicing)
enum class Fault : int32_t { none = 0, label_range, pred_range, weight_range, nan, group_code };

// How a large call (tile_inputs.hpp, kTouchFrom) gets its input's cache lines from memory:
// `touch`: each tile reads one byte of each of its lines before its loops and prefetches the next
// tile's (touch_lines, prefetch_lines), and the AVX-512 table loops prefetch ahead as they go;
// `hardware`: none of that, the CPU's own prefetchers alone. Only the speed differs: every
// result is the same bit for bit. Which one is faster depends on the CPU (docs/benchmarks.md).
enum class LineFetch : int32_t { touch = 0, hardware };

// Everything one call needs. The Python layer fills it once, after validating every option
// (all but line_fetch, which run() sets).
struct Call {
    // shape: n elements in C order; a "row" is one index of the first axis (row_size elements),
    // a "class" is one index of the last axis (n_classes of them). 0-d and 1-D inputs have
    // row_size 1 and n_classes n (or 1).
    int64_t n = 0;
    int64_t row_size = 1;
    int64_t n_classes = 1;

    View y_true;
    View y_pred;  // its dtype fixes the working precision: f64 -> double, else float

    WeightKind weight_kind = WeightKind::none;
    View weight;  // per_row: n / row_size values; per_element: n values
    double weight_scalar = 1.0;

    const void* pos_weight = nullptr;  // n_classes values in the working type, or null
    double pos_weight_scalar = 1.0;

    void* out = nullptr;  // elementwise loss in the working type, or null
    int64_t out_stride = 1;

    const int64_t* groups = nullptr;  // one code in [0, n_groups) per row, or null
    // or, with groups null, int32 codes (an Arrow dictionary's indices as read: no int64 copy)
    const int32_t* groups32 = nullptr;
    int64_t n_groups = 0;
    // (the per-group sums go to an array of n_groups Sums that the caller passes to run())
    bool grouped() const { return groups != nullptr || groups32 != nullptr; }
    int64_t group_at(int64_t row) const { return groups != nullptr ? groups[row] : int64_t(groups32[row]); }

    bool from_logits = false;
    double epsilon = 1e-7;
    double label_smoothing = 0.0;
    double gamma = 0.0;  // focal term only when > 0
    bool has_alpha = false;
    double alpha = 0.25;
    NanPolicy nan_policy = NanPolicy::propagate;
    bool validate = true;  // range checks of labels and probabilities
    int threads = 0;       // 0: library default
    // How a large call has its input's cache lines fetched (set by run(), from line_fetch()).
    LineFetch line_fetch = LineFetch::touch;
};

// Partial sums of one block (or of a whole call): float64 whatever the working type.
struct Sums {
    double loss = 0.0;    // sum of w * ce over counted elements
    double weight = 0.0;  // sum of w over counted elements (w = 1 without sample_weight)
    double count = 0.0;   // counted elements (all, or the non-NaN ones under nan_policy omit)
};

// A group's partial sums in a block: Sums's three values and a fourth lane, on 32 bytes of one
// cache line, so that a row adds (loss, weight, 1, 0) with one vector load, add and store
// (accumulate_groups). As three scalars 24 bytes apart a row took two loads and stores, an
// eighth of them across two lines.
struct alignas(32) GroupSums {
    double loss = 0.0, weight = 0.0, count = 0.0, unused = 0.0;
};

// What one block of the input produced; blocks are combined in index order.
struct BlockOut {
    Sums sums;
    Fault fault = Fault::none;
    int64_t fault_index = -1;
    GroupSums* groups = nullptr;  // n_groups zeroed entries owned by the dispatcher, or null
};

struct Result {
    Sums total;
    Fault fault = Fault::none;
    int64_t fault_index = -1;  // flat (C-order) index of the first offending element
};

// Which options (docs/reference.md) beyond plain cross-entropy and focal a call uses; the kernel is
// instantiated per level so that a call does no work for options it does not use.
enum class Options : int32_t {
    plain = 0,     // none (focal calls may still have alpha)
    weighted = 1,  // sample weights (other than 1), nothing else
    general = 2,   // label smoothing, pos_weight or (without focal) alpha, with any weights
};

// The entry points one SIMD tier provides (cpp/src/kernel_tier.cpp compiles one set per tier).
using BlockFn = void (*)(const Call&, int64_t begin, int64_t end, BlockOut&);
enum class MathFn : int32_t { exp = 0, log, log1p, log1p_small };
using ApplyMathFn = void (*)(MathFn, const void* x, void* y, int64_t n);
struct Kernels {
    BlockFn block[2][2][2][3];  // [double working type][from_logits][focal][Options]
    ApplyMathFn math[2];     // [double]
};

// ---- derivatives for training (grad.hpp, run_grad): the inputs are a Call (from_logits) ----
enum class HessianMode : int32_t { exact = 0, none, clipped };
// Which grad_block a call takes: Options' levels, plus the focal ones (every option, gamma > 0).
enum class GradLevel : int32_t { plain = 0, weighted, general, focal, focal_clipped };
struct GradOut {
    void* grad = nullptr;  // n values in the working type
    int64_t grad_stride = 1;
    void* hess = nullptr;  // n values in the working type, or null (hessian="none")
    int64_t hess_stride = 1;
    HessianMode hessian = HessianMode::exact;
};
using GradBlockFn = void (*)(const Call&, const GradOut&, int64_t begin, int64_t end, BlockOut&);
struct GradKernels {
    GradBlockFn block[2][5];  // [double working type][GradLevel]
};

}  // namespace fastbce
