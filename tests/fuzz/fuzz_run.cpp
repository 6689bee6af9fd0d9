// Fuzz harness for the kernel entry point fastbce::run(const Call&, Sums*), without Python.
//
// Each input is decoded into one Call that respects the documented contract (types.hpp, and what
// python/fastbce/_api.py guarantees before it calls the kernel): valid pointers to exactly as much
// memory as the call may touch, sizes that describe a C-order shape, valid enum values, options in
// their documented ranges, scalar weights finite in the working type. Everything else is free: the
// element values (any bit pattern: NaN, infinities, subnormals, out-of-range labels), the dtypes,
// strides (negative and zero), sizes around the tile and block boundaries, and now and then inputs
// big enough for several threads. Buffers are allocated to their exact extent, so AddressSanitizer
// reports any read or write outside them.
//
// Invariants checked for every input (a failure aborts with a message):
//   1. inputs are not modified; `out` is written at its n strided positions and nowhere else;
//   2. the first failed check (kind and flat index) is the one an independent scalar scan finds;
//   3. the same call on contiguous copies of the inputs gives bit-identical results (strides and
//      in-place reads change nothing), and so does a different thread count;
//   4. the sums agree with the elementwise output and the per-group sums with the total;
//   5. valid input (labels and probabilities in [0, 1], no NaN, valid weights) never gives NaN.
//
// Build: see docs/hardening.md (cmake -DFASTBCE_FUZZ=ON with clang for libFuzzer; with
// FASTBCE_FUZZ_STANDALONE the same file builds with any compiler into a replay/random driver).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "fastbce/fastbce.hpp"

namespace {

using namespace fastbce;

void dump_call(const Call& c);
const Call* g_current = nullptr;  // the call being checked, printed when an invariant fails

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
    std::fprintf(stderr, "fastbce fuzz invariant failed: %s %s\n", what, detail.c_str());
    if (g_current != nullptr) dump_call(*g_current);
    std::fflush(stderr);
    std::abort();
}

#define CHECK(cond, detail)                 \
    do {                                    \
        if (!(cond)) fail(#cond, (detail)); \
    } while (0)

// ------------------------------------------------------------------ reading the fuzz input

// Reads the input front to back; once it is exhausted every read returns zero bits.
class Bytes {
public:
    Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    uint64_t bits(int n_bytes) {
        uint64_t v = 0;
        for (int i = 0; i < n_bytes; ++i) v = (v << 8) | (pos_ < size_ ? data_[pos_++] : 0u);
        return v;
    }
    uint8_t byte() { return uint8_t(bits(1)); }
    bool flag() { return byte() & 1u; }
    // An integer in [lo, hi].
    int64_t range(int64_t lo, int64_t hi) {
        const uint64_t span = uint64_t(hi - lo) + 1;
        const uint64_t v = span <= 256 ? bits(1) : span <= 65536 ? bits(2) : bits(4);
        return lo + int64_t(v % span);
    }
    // A double in [0, 1].
    double unit() { return double(bits(2)) / 65535.0; }
    template <class T, size_t N>
    T pick(const T (&options)[N]) {
        return options[size_t(byte()) % N];
    }

private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

// A small deterministic generator for filling large buffers from a few fuzz bytes.
struct SplitMix {
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
};

// ------------------------------------------------------------------ dtypes, written independently of the kernel

size_t item_size(DType t) {
    switch (t) {
        case DType::u8: case DType::i8: return 1;
        case DType::u16: case DType::i16: case DType::f16: case DType::bf16: return 2;
        case DType::u32: case DType::i32: case DType::f32: return 4;
        case DType::u64: case DType::i64: case DType::f64: return 8;
    }
    fail("bad dtype");
}

bool is_float(DType t) { return t == DType::f16 || t == DType::bf16 || t == DType::f32 || t == DType::f64; }

// double -> float with overflow to +-infinity spelled out (the plain cast is undefined out of range).
float to_float(double x) {
    constexpr double max = std::numeric_limits<float>::max();
    if (x > max) return std::numeric_limits<float>::infinity();
    if (x < -max) return -std::numeric_limits<float>::infinity();
    return float(x);
}

template <class T>
T to_working(double x) {
    if constexpr (std::is_same_v<T, float>) return to_float(x);
    else return x;
}

// binary16 -> double by the definition (sign, 5-bit exponent, 10-bit fraction).
double half_value(uint16_t h) {
    const double sign = (h & 0x8000u) ? -1.0 : 1.0;
    const int e = (h >> 10) & 31, m = h & 1023;
    if (e == 31) return m ? std::numeric_limits<double>::quiet_NaN() : sign * HUGE_VAL;
    if (e == 0) return sign * std::ldexp(double(m), -24);
    return sign * std::ldexp(double(m + 1024), e - 25);
}

// double -> nearest binary16 (ties to even), by bisection over the ordered positive encodings.
uint16_t to_half(double x) {
    if (std::isnan(x)) return 0x7e00;
    const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    const double a = std::fabs(x);
    if (a >= 65520.0) return sign | 0x7c00;  // rounds to infinity
    uint16_t lo = 0, hi = 0x7bff;            // half_value is increasing on [lo, hi]
    while (hi - lo > 1) {
        const uint16_t mid = uint16_t((lo + hi) / 2);
        (half_value(mid) <= a ? lo : hi) = mid;
    }
    const double dlo = a - half_value(lo), dhi = half_value(hi) - a;
    const uint16_t best = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) ? hi : lo);
    return sign | best;
}

double bf16_value(uint16_t h) { return double(std::bit_cast<float>(uint32_t(h) << 16)); }
uint16_t to_bf16(double x) {  // truncation: every bf16 value is reachable, which is all we need
    return uint16_t(std::bit_cast<uint32_t>(to_float(x)) >> 16);
}

template <class I>
I saturate(double x) {
    if (std::isnan(x)) return 0;
    if (x <= double(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
    if (x >= double(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
    return I(x);
}

// Stores x (converted) as element `i` of a dtype-typed buffer.
void store(void* base, DType t, int64_t i, double x) {
    auto put = [&](auto v) { std::memcpy(static_cast<char*>(base) + i * int64_t(sizeof v), &v, sizeof v); };
    switch (t) {
        case DType::u8: put(saturate<uint8_t>(x)); break;
        case DType::i8: put(saturate<int8_t>(x)); break;
        case DType::u16: put(saturate<uint16_t>(x)); break;
        case DType::i16: put(saturate<int16_t>(x)); break;
        case DType::u32: put(saturate<uint32_t>(x)); break;
        case DType::i32: put(saturate<int32_t>(x)); break;
        case DType::u64: put(saturate<uint64_t>(x)); break;
        case DType::i64: put(saturate<int64_t>(x)); break;
        case DType::f16: put(to_half(x)); break;
        case DType::bf16: put(to_bf16(x)); break;
        case DType::f32: put(to_float(x)); break;
        case DType::f64: put(x); break;
    }
}

// Element `i` (counted from the view's data pointer) as the kernel's working type T.
template <class T>
T value_at(const View& v, int64_t i) {
    const char* p = static_cast<const char*>(v.data) + i * v.stride * int64_t(item_size(v.dtype));
    auto get = [&](auto tag) {
        decltype(tag) x;
        std::memcpy(&x, p, sizeof x);
        return x;
    };
    switch (v.dtype) {
        case DType::u8: return T(get(uint8_t{}));
        case DType::i8: return T(get(int8_t{}));
        case DType::u16: return T(get(uint16_t{}));
        case DType::i16: return T(get(int16_t{}));
        case DType::u32: return T(get(uint32_t{}));
        case DType::i32: return T(get(int32_t{}));
        case DType::u64: return T(get(uint64_t{}));
        case DType::i64: return T(get(int64_t{}));
        case DType::f16: return T(half_value(get(uint16_t{})));
        case DType::bf16: return T(bf16_value(get(uint16_t{})));
        case DType::f32: return T(get(float{}));
        case DType::f64: return to_working<T>(get(double{}));
    }
    fail("bad dtype");
}

// ------------------------------------------------------------------ buffers

// One exactly-sized allocation holding `n` elements at `stride`; data() is the first element.
struct Buffer {
    std::vector<unsigned char> bytes;  // exactly the extent (ASan sees any access past it)
    DType dtype = DType::f32;
    int64_t n = 0, stride = 1;

    Buffer(DType t, int64_t count, int64_t step) : dtype(t), n(count), stride(step) {
        const int64_t span = count == 0 ? 0 : (count - 1) * (step < 0 ? -step : step) + 1;
        bytes.resize(size_t(span) * item_size(t));
    }
    int64_t first_offset() const { return stride < 0 && n > 0 ? (n - 1) * -stride : 0; }  // elements
    void* base() { return bytes.empty() ? nullptr : bytes.data(); }
    const void* data() const {
        return bytes.empty() ? static_cast<const void*>(this) : bytes.data() + first_offset() * int64_t(item_size(dtype));
    }
    View view() const { return View{data(), stride, dtype}; }
    void set(int64_t i, double x) { store(bytes.data(), dtype, first_offset() + i * stride, x); }
    void set_bits(int64_t i, uint64_t bits) {
        std::memcpy(bytes.data() + (first_offset() + i * stride) * int64_t(item_size(dtype)), &bits, item_size(dtype));
    }
};

uint64_t hash_bytes(const void* p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    const auto* c = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

// What each array holds: a palette of values chosen by the fuzz input, spread by a seeded PRNG.
enum class Role { label, pred, weight };

double palette_value(Bytes& in, Role role, bool from_logits, bool valid) {
    constexpr double inf = HUGE_VAL, nan = std::numeric_limits<double>::quiet_NaN();
    if (valid) {
        if (role == Role::label) {
            static const double v[] = {0.0, 1.0, 0.5, 1e-7, 1.0 - 1e-7, 5e-324, 1e-40, -0.0};
            return in.flag() ? in.unit() : in.pick(v);
        }
        if (role == Role::pred && !from_logits) {
            static const double v[] = {0.0, 1.0, 0.5, 1e-7, 1.0 - 1e-7, 5e-324, 1e-40, 1e-300, 1.0 - 1e-16};
            return in.flag() ? in.unit() : in.pick(v);
        }
        if (role == Role::pred) {
            static const double v[] = {0.0, inf, -inf, 1e30, -1e30, 88.0, -88.0, 710.0, -746.0, 3e38, -3e38, 1e300, -1e300, 5e-324};
            return in.flag() ? (in.unit() - 0.5) * double(in.range(1, 200)) : in.pick(v);
        }
        static const double v[] = {0.0, 1.0, 0.5, 1e-45, 5e-324, 1e30, 3e38, 1e300, 2.0, 1e-300};
        return in.flag() ? in.unit() * double(in.range(1, 100)) : in.pick(v);
    }
    static const double v[] = {0.0, 1.0, -1.0, 2.0, 0.5, nan, inf, -inf, 1e-45, 5e-324, 1e300, -1e300,
                               3.5e38, 65520.0, 255.0, -128.0, 1e19, -1e19, -0.0, 1.0 + 1e-7};
    return in.flag() ? (in.unit() - 0.25) * 2.0 : in.pick(v);
}

// Fills `buf` (n elements) from a palette of up to 64 values; some entries are raw bit patterns.
void fill(Bytes& in, Buffer& buf, Role role, bool from_logits, bool valid) {
    if (buf.n == 0) return;
    const int n_palette = int(in.range(1, 64));
    std::vector<double> palette;
    std::vector<uint64_t> raw;  // raw bit patterns (invalid mode only)
    for (int k = 0; k < n_palette; ++k) {
        if (!valid && in.byte() % 8 == 0)
            raw.push_back(in.bits(8));
        else
            palette.push_back(palette_value(in, role, from_logits, valid));
    }
    if (palette.empty()) palette.push_back(0.0);
    // For integer dtypes `valid` values must be 0 or 1 (labels) or non-negative (weights).
    if (valid && !is_float(buf.dtype))
        for (double& x : palette) x = role == Role::label ? double(x >= 0.5) : std::floor(std::fabs(x));
    SplitMix rng{in.bits(8)};
    const bool sparse_raw = !raw.empty();
    for (int64_t i = 0; i < buf.n; ++i) {
        const uint64_t r = rng.next();
        if (sparse_raw && (r & 15) == 0)
            buf.set_bits(i, raw[(r >> 8) % raw.size()]);
        else
            buf.set(i, palette[(r >> 8) % palette.size()]);
    }
}

// ------------------------------------------------------------------ the oracle

// Every element's label, prediction and sample weight in working type T, read independently.
template <class T>
struct Values {
    std::vector<T> y, p, w;
    explicit Values(const Call& c) : y(size_t(c.n)), p(size_t(c.n)), w(size_t(c.n), T(1)) {
        for (int64_t i = 0; i < c.n; ++i) {
            y[size_t(i)] = value_at<T>(c.y_true, i);
            p[size_t(i)] = value_at<T>(c.y_pred, i);
            if (c.weight_kind == WeightKind::scalar) w[size_t(i)] = to_working<T>(c.weight_scalar);
            if (c.weight_kind == WeightKind::per_element) w[size_t(i)] = value_at<T>(c.weight, i);
            if (c.weight_kind == WeightKind::per_row) w[size_t(i)] = value_at<T>(c.weight, i / c.row_size);
        }
    }
};

// The first failed check as the kernel must report it, by a plain scalar scan in working type T.
template <class T>
std::pair<Fault, int64_t> expected_fault(const Call& c, const Values<T>& v) {
    const bool weight_checked = c.weight_kind == WeightKind::per_row || c.weight_kind == WeightKind::per_element;
    for (int64_t i = 0; i < c.n; ++i) {
        const T y = v.y[size_t(i)], p = v.p[size_t(i)], w = v.w[size_t(i)];
        if (c.validate && (y < T(0) || y > T(1))) return {Fault::label_range, i};
        if (c.validate && !c.from_logits && (p < T(0) || p > T(1))) return {Fault::pred_range, i};
        if (weight_checked && (w < T(0) || std::isinf(w))) return {Fault::weight_range, i};
        if (c.nan_policy == NanPolicy::raise && (std::isnan(y) || std::isnan(p) || std::isnan(w)))
            return {Fault::nan, i};
    }
    return {Fault::none, -1};
}

// True when every value is one the loss is defined for (shared/SPEC.md: never NaN then).
template <class T>
bool inputs_valid(const Call& c, const Values<T>& v) {
    auto ok_weight = [](T w) { return std::isfinite(w) && w >= T(0); };
    if (c.weight_kind == WeightKind::scalar && !ok_weight(to_working<T>(c.weight_scalar))) return false;
    if (c.pos_weight == nullptr && !ok_weight(to_working<T>(c.pos_weight_scalar))) return false;
    if (c.pos_weight != nullptr)
        for (int64_t k = 0; k < c.n_classes; ++k)
            if (!ok_weight(static_cast<const T*>(c.pos_weight)[k])) return false;
    for (int64_t i = 0; i < c.n; ++i) {
        const T y = v.y[size_t(i)], p = v.p[size_t(i)];
        if (!(y >= T(0) && y <= T(1))) return false;
        if (std::isnan(p) || (!c.from_logits && !(p >= T(0) && p <= T(1)))) return false;
        if (!ok_weight(v.w[size_t(i)])) return false;
    }
    return true;
}

void dump_call(const Call& c) {
    const bool dbl = c.y_pred.dtype == DType::f64;
    std::fprintf(stderr,
                 "call: n %lld row_size %lld n_classes %lld from_logits %d epsilon %.17g smoothing %.17g "
                 "gamma %.17g alpha %s%.17g nan_policy %d validate %d threads %d\n"
                 "      dtypes y %d p %d w %d, strides y %lld p %lld w %lld out %lld, weight kind %d scalar "
                 "%.17g, pos_weight %s scalar %.17g, groups %lld\n",
                 (long long)c.n, (long long)c.row_size, (long long)c.n_classes, c.from_logits, c.epsilon,
                 c.label_smoothing, c.gamma, c.has_alpha ? "" : "(off) ", c.alpha, int(c.nan_policy), c.validate,
                 c.threads, int(c.y_true.dtype), int(c.y_pred.dtype), int(c.weight.dtype), (long long)c.y_true.stride,
                 (long long)c.y_pred.stride, (long long)c.weight.stride, (long long)c.out_stride, int(c.weight_kind),
                 c.weight_scalar, c.pos_weight ? "per class" : "scalar", c.pos_weight_scalar,
                 (long long)(c.groups ? c.n_groups : 0));
    for (int64_t i = 0; i < std::min<int64_t>(c.n, 12); ++i) {
        const double y = dbl ? value_at<double>(c.y_true, i) : value_at<float>(c.y_true, i);
        const double p = dbl ? value_at<double>(c.y_pred, i) : value_at<float>(c.y_pred, i);
        std::fprintf(stderr, "  [%lld] y %.9g p %.9g\n", (long long)i, y, p);
    }
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0 || (std::isnan(a) && std::isnan(b)); }
bool same_sums(const Sums& a, const Sums& b) {
    return same_bits(a.loss, b.loss) && same_bits(a.weight, b.weight) && same_bits(a.count, b.count);
}
std::string describe(const Sums& s) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "{loss %.17g, weight %.17g, count %.17g}", s.loss, s.weight, s.count);
    return buf;
}

// a ~ b for float64 sums of the same terms added in different orders.
bool close_sum(double a, double b, double magnitude, double rtol) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    if (std::isinf(a) || std::isinf(b)) return a == b || !std::isfinite(magnitude);
    return std::fabs(a - b) <= rtol * magnitude + 1e-300;
}

struct Outcome {
    Result result;
    std::vector<Sums> groups;
    std::vector<unsigned char> out;  // the out buffer after the call (whole extent)
};

Outcome run_call(const Call& c, const Buffer* out_template) {
    Outcome o;
    Call call = c;
    Buffer out = out_template ? *out_template : Buffer(DType::f32, 0, 1);
    if (out_template) call.out = const_cast<void*>(out.data());
    o.groups.assign(size_t(c.groups ? c.n_groups : 0), Sums{-1.0, -1.0, -1.0});
    o.result = run(call, o.groups.empty() ? nullptr : o.groups.data());
    o.out = out.bytes;
    return o;
}

template <class T>
void check_call(const Call& c, const Buffer* out_tmpl, const std::vector<const Buffer*>& inputs,
                const std::vector<std::pair<const void*, size_t>>& extra_inputs, bool may_thread) {
    std::vector<uint64_t> before;
    for (const Buffer* b : inputs) before.push_back(hash_bytes(b->bytes.data(), b->bytes.size()));
    for (const auto& [p, n] : extra_inputs) before.push_back(hash_bytes(p, n));

    g_current = &c;
    const Outcome a = run_call(c, out_tmpl);
    const Result& r = a.result;

    // 1. inputs untouched; out written at its n positions only
    size_t k = 0;
    for (const Buffer* b : inputs) CHECK(hash_bytes(b->bytes.data(), b->bytes.size()) == before[k++], "input modified");
    for (const auto& [p, n] : extra_inputs) CHECK(hash_bytes(p, n) == before[k++], "input modified");
    if (out_tmpl != nullptr && r.fault == Fault::none) {
        std::vector<bool> written(out_tmpl->bytes.size() / sizeof(T), false);
        for (int64_t i = 0; i < c.n; ++i) written[size_t(out_tmpl->first_offset() + i * c.out_stride)] = true;
        for (size_t i = 0; i < written.size(); ++i)
            if (!written[i])
                CHECK(std::memcmp(a.out.data() + i * sizeof(T), out_tmpl->bytes.data() + i * sizeof(T), sizeof(T)) == 0,
                      "out written outside its elements at " + std::to_string(i));
    }

    // 2. the first failed check
    const Values<T> values(c);
    const auto [want_fault, want_index] = expected_fault<T>(c, values);
    CHECK(r.fault == want_fault && r.fault_index == want_index,
          "fault " + std::to_string(int(r.fault)) + "@" + std::to_string(r.fault_index) + ", expected " +
              std::to_string(int(want_fault)) + "@" + std::to_string(want_index));
    if (r.fault != Fault::none) return;

    // 3a. another thread count: bit-identical
    if (may_thread) {
        Call other = c;
        other.threads = c.threads == 1 ? 3 : 1;
        const Outcome b = run_call(other, out_tmpl);
        CHECK(same_sums(r.total, b.result.total), describe(r.total) + " vs " + describe(b.result.total));
        CHECK(a.out == b.out, "out depends on the thread count");
        for (size_t g = 0; g < a.groups.size(); ++g) CHECK(same_sums(a.groups[g], b.groups[g]), "group sums depend on threads");
    }

    // 4. sums against the elementwise values and the groups
    std::vector<T> ce;
    if (out_tmpl != nullptr) {
        ce.resize(size_t(c.n));
        for (int64_t i = 0; i < c.n; ++i)
            std::memcpy(&ce[size_t(i)], a.out.data() + (out_tmpl->first_offset() + i * c.out_stride) * int64_t(sizeof(T)), sizeof(T));
    }
    // float64 sums of the same n terms in different orders differ by at most ~n ulp of the magnitude
    const double rtol = 2.3e-16 * double(c.n + 64);
    double count = 0, weight = 0, loss = 0, magnitude = 0, weight_mag = 0;
    for (int64_t i = 0; i < c.n; ++i) {
        const T y = values.y[size_t(i)], p = values.p[size_t(i)], w = values.w[size_t(i)];
        if (c.nan_policy == NanPolicy::omit && (std::isnan(y) || std::isnan(p) || std::isnan(w))) continue;
        count += 1;
        weight += double(w);
        weight_mag += std::fabs(double(w));
        if (!ce.empty()) {
            loss += double(ce[size_t(i)]);
            magnitude += std::fabs(double(ce[size_t(i)]));
        }
    }
    CHECK(r.total.count == count, describe(r.total) + " counted " + std::to_string(count));
    CHECK(close_sum(r.total.weight, weight, weight_mag, rtol), describe(r.total) + " weights " + std::to_string(weight));
    if (!ce.empty()) CHECK(close_sum(r.total.loss, loss, magnitude, rtol), describe(r.total) + " vs out " + std::to_string(loss));
    if (!a.groups.empty()) {
        Sums g{};
        double gmag = 0;
        for (const Sums& s : a.groups) {
            g.loss += s.loss, g.weight += s.weight, g.count += s.count;
            gmag += std::fabs(s.loss);
        }
        CHECK(g.count == r.total.count, "group counts " + describe(g) + " vs " + describe(r.total));
        // the scale of the rounding errors is the sum of |ce|: known from `out`, else only when
        // every loss is >= 0 (valid input); invalid labels can give terms that cancel
        if (!ce.empty() || inputs_valid<T>(c, values))
            CHECK(close_sum(g.loss, r.total.loss, ce.empty() ? gmag : magnitude, rtol),
                  "group loss " + describe(g) + " vs " + describe(r.total));
    }

    // 5. valid input: never NaN
    if (inputs_valid<T>(c, values)) {
        CHECK(!std::isnan(r.total.loss), "NaN sum for valid input " + describe(r.total));
        for (size_t i = 0; i < ce.size(); ++i) CHECK(!std::isnan(ce[i]), "NaN loss for valid input at " + std::to_string(i));
        for (const Sums& s : a.groups) CHECK(!std::isnan(s.loss), "NaN group sum for valid input");
    }
}

// A contiguous stride-1 copy of a view's n elements, same dtype.
Buffer contiguous_copy(const Buffer& b) {
    Buffer c(b.dtype, b.n, 1);
    const size_t size = item_size(b.dtype);
    for (int64_t i = 0; i < b.n; ++i)
        std::memcpy(c.bytes.data() + i * int64_t(size), b.bytes.data() + (b.first_offset() + i * b.stride) * int64_t(size), size);
    return c;
}

// Inputs of several blocks take ~0.1 s under ASan, big enough for several threads ~0.5 s.
// libFuzzer keeps such an input once it found one (new coverage) and then mutates it over and
// over, so there only one run in 16 (in 128 for threads) may take those sizes; the others return
// at once, checking nothing. The replay and random drivers always run them, so a crash found by
// libFuzzer replays the same.
bool allow_size(int64_t n) {
#ifdef FASTBCE_FUZZ_STANDALONE
    (void)n;
    return true;
#else
    static int64_t blocks = 0, threads = 0;
    if (n >= (int64_t(1) << 19)) return threads++ % 128 == 0;
    if (n > 8192) return blocks++ % 16 == 0;
    return true;
#endif
}

const DType kAllTypes[] = {DType::u8,  DType::i8,  DType::u16, DType::i16, DType::u32,  DType::i32,
                           DType::u64, DType::i64, DType::f16, DType::bf16, DType::f32, DType::f64};
const DType kPredTypes[] = {DType::f16, DType::bf16, DType::f32, DType::f64};
const int64_t kStrides[] = {1, 1, 1, -1, 2, 0, -3, 5, 1, 3};

template <class T>
void fuzz_one(Bytes& in, Call c, DType pred_type) {
    // Shape: 0-d, or 1 to 3 axes; sizes mostly small, sometimes around tile / block boundaries.
    const int ndim = int(in.range(0, 3));
    std::vector<int64_t> shape;
    const uint8_t size_kind = in.byte();
    for (int d = 0; d < ndim; ++d) {
        int64_t s = in.range(0, 9);
        if (d == 0 && size_kind % 4 == 0) s = 512 * in.range(0, 4) + in.range(-1, 1);           // tiles
        if (d == 0 && size_kind % 16 == 1) s = 65536 * in.range(1, 3) + in.range(-1, 1);         // blocks
        if (d == 0 && size_kind == 255) s = (int64_t(1) << 19) + 65536 * in.range(0, 4) + in.range(-1, 1);  // threads
        shape.push_back(std::max<int64_t>(0, s));
    }
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    if (n > (int64_t(1) << 21)) return;  // keep each run quick
    c.n = n;
    c.row_size = 1;
    c.n_classes = 1;
    if (n > 0 && ndim >= 1) {
        c.row_size = n / shape[0];
        c.n_classes = shape.back();
    }
    const bool big = n >= (int64_t(1) << 19);
    if (!allow_size(n)) return;

    const bool valid = in.byte() % 3 != 0;  // mostly valid values, so that the NaN check bites
    const DType label_type = in.pick(kAllTypes);
    Buffer y(label_type, n, big ? 1 : in.pick(kStrides));
    Buffer p(pred_type, n, big ? 1 : in.pick(kStrides));
    fill(in, y, Role::label, c.from_logits, valid);
    fill(in, p, Role::pred, c.from_logits, valid);

    std::vector<const Buffer*> inputs = {&y, &p};
    Buffer w(in.pick(kAllTypes), 0, 1);
    const uint8_t weight_kind = in.byte() % 4;
    c.weight_kind = WeightKind::none;
    if (weight_kind == 1) {
        static const double scalars[] = {0.0, 1.0, 0.5, 2.0, 1e-45, 1e30, 3e38, 1e300, 5e-324,
                                         std::numeric_limits<double>::quiet_NaN()};
        c.weight_kind = WeightKind::scalar;
        c.weight_scalar = in.flag() ? in.unit() * 10 : in.pick(scalars);
        // the Python layer passes a scalar weight that is NaN or finite in the working type
        if (std::isinf(to_working<T>(c.weight_scalar))) c.weight_scalar = 1.0;
    } else if (weight_kind == 2 || (weight_kind == 3 && ndim >= 1 && n > 0)) {
        const bool per_row = weight_kind == 3;
        c.weight_kind = per_row ? WeightKind::per_row : WeightKind::per_element;
        w = Buffer(w.dtype, per_row ? n / c.row_size : n, big ? 1 : in.pick(kStrides));
        fill(in, w, Role::weight, c.from_logits, valid);
        c.weight = w.view();
        inputs.push_back(&w);
    }

    std::vector<T> pos_weight;
    if (ndim >= 1 && n > 0 && in.flag()) {
        for (int64_t k = 0; k < c.n_classes; ++k) {
            static const T values[] = {T(0), T(1), T(0.5), T(3), std::numeric_limits<T>::max(),
                                       std::numeric_limits<T>::denorm_min(), T(1e-30)};
            pos_weight.push_back(in.flag() ? T(in.unit() * 5) : in.pick(values));
        }
        c.pos_weight = pos_weight.data();
    } else {
        static const double scalars[] = {1.0, 0.0, 0.5, 2.0, 1e-45, 1e30, 3e38, 1e300};
        c.pos_weight_scalar = in.flag() ? 1.0 : in.pick(scalars);
        if (!std::isfinite(to_working<T>(c.pos_weight_scalar))) c.pos_weight_scalar = 1.0;
    }

    std::vector<int64_t> codes;
    if (n > 0 && in.byte() % 4 == 0) {
        c.n_groups = in.range(1, 40);
        SplitMix rng{in.bits(4)};
        for (int64_t r = 0; r < n / c.row_size; ++r) codes.push_back(int64_t(rng.next() % uint64_t(c.n_groups)));
        c.groups = codes.data();
    }

    c.y_true = y.view();
    c.y_pred = p.view();

    // out: none, or n working-type values at a non-zero stride, pre-filled with a sentinel
    const DType working = std::is_same_v<T, double> ? DType::f64 : DType::f32;
    static const int64_t kOutStrides[] = {1, 1, -1, 2, -3};
    const bool with_out = in.byte() % 3 != 0;
    Buffer out(working, n, big ? 1 : in.pick(kOutStrides));
    std::fill(out.bytes.begin(), out.bytes.end(), 0xA5);
    if (with_out) c.out_stride = out.stride;

    std::vector<std::pair<const void*, size_t>> extra;
    if (!pos_weight.empty()) extra.emplace_back(pos_weight.data(), pos_weight.size() * sizeof(T));
    if (!codes.empty()) extra.emplace_back(codes.data(), codes.size() * sizeof(int64_t));

    static const bool verbose = std::getenv("FASTBCE_FUZZ_VERBOSE") != nullptr;
    if (verbose) dump_call(c);
    check_call<T>(c, with_out ? &out : nullptr, inputs, extra, big);

    // 3b. the same data through contiguous copies, one thread: bit-identical results
    if (!big) {
        Buffer y2 = contiguous_copy(y), p2 = contiguous_copy(p), w2 = contiguous_copy(w);
        Buffer out2(working, n, 1);
        std::fill(out2.bytes.begin(), out2.bytes.end(), 0xA5);
        Call c2 = c;
        c2.y_true = y2.view();
        c2.y_pred = p2.view();
        if (c.weight_kind == WeightKind::per_row || c.weight_kind == WeightKind::per_element) c2.weight = w2.view();
        c2.out_stride = 1;
        const Outcome a = run_call(c, with_out ? &out : nullptr);
        const Outcome b = run_call(c2, with_out ? &out2 : nullptr);
        CHECK(a.result.fault == b.result.fault && a.result.fault_index == b.result.fault_index, "fault depends on layout");
        CHECK(same_sums(a.result.total, b.result.total),
              "layout changes the sums: " + describe(a.result.total) + " vs " + describe(b.result.total));
        for (size_t g = 0; g < a.groups.size(); ++g) CHECK(same_sums(a.groups[g], b.groups[g]), "layout changes group sums");
        if (with_out && a.result.fault == Fault::none)
            for (int64_t i = 0; i < n; ++i) {
                T u, v;
                std::memcpy(&u, a.out.data() + (out.first_offset() + i * out.stride) * int64_t(sizeof(T)), sizeof(T));
                std::memcpy(&v, b.out.data() + i * int64_t(sizeof(T)), sizeof(T));
                CHECK(std::memcmp(&u, &v, sizeof(T)) == 0 || (std::isnan(u) && std::isnan(v)),
                      "layout changes out at " + std::to_string(i));
            }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Bytes in(data, size);
    static const std::vector<std::string> targets = supported_targets();
    set_target(targets[size_t(in.byte()) % targets.size()]);

    Call c;
    const DType pred_type = in.pick(kPredTypes);
    c.from_logits = in.flag();
    static const double eps[] = {1e-7, 1e-300, 5e-324, 0.4999999, 0.1, 1e-45, 2.220446049250313e-16};
    c.epsilon = in.flag() ? 1e-7 : (in.flag() ? in.pick(eps) : 1e-9 + in.unit() * 0.49);
    static const double smoothing[] = {0.0, 1.0, 0.1, 1e-300, 0.5};
    c.label_smoothing = in.flag() ? 0.0 : (in.flag() ? in.pick(smoothing) : in.unit());
    static const double gammas[] = {0.0, 2.0, 0.5, 1e-300, 1e300, 1e39, 3.5e38, 1e-46, 1.0, 50.0};
    c.gamma = in.flag() ? 0.0 : (in.flag() ? in.pick(gammas) : in.unit() * 8);
    c.has_alpha = in.flag();
    static const double alphas[] = {0.0, 1.0, 0.25, 1e-5, 1.0 - 1e-9};
    c.alpha = in.flag() ? in.pick(alphas) : in.unit();
    static const NanPolicy policies[] = {NanPolicy::propagate, NanPolicy::omit, NanPolicy::raise};
    c.nan_policy = in.pick(policies);
    c.validate = in.byte() % 4 != 0;
    c.threads = int(in.range(0, 4));

    if (pred_type == DType::f64)
        fuzz_one<double>(in, c, pred_type);
    else
        fuzz_one<float>(in, c, pred_type);
    return 0;
}

#ifdef FASTBCE_FUZZ_STANDALONE
// Without libFuzzer: `fuzz_run FILE...` replays inputs (a crash reproducer, a corpus);
// `fuzz_run --random N [SEED]` runs N random inputs (no coverage guidance, but any compiler).
#include <fstream>
#include <iterator>
int main(int argc, char** argv) {
    if (argc >= 3 && std::string(argv[1]) == "--random") {
        const long long runs = std::atoll(argv[2]);
        SplitMix rng{argc >= 4 ? std::strtoull(argv[3], nullptr, 10) : 1};
        std::vector<uint8_t> buf;
        for (long long i = 0; i < runs; ++i) {
            buf.resize(size_t(rng.next() % 4096));
            for (auto& b : buf) b = uint8_t(rng.next());
            LLVMFuzzerTestOneInput(buf.data(), buf.size());
            if ((i + 1) % 10000 == 0) std::fprintf(stderr, "%lld runs\n", i + 1);
        }
        std::fprintf(stderr, "done: %lld random inputs\n", runs);
        return 0;
    }
    for (int i = 1; i < argc; ++i) {
        std::ifstream f(argv[i], std::ios::binary);
        std::vector<uint8_t> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        LLVMFuzzerTestOneInput(buf.data(), buf.size());
        std::fprintf(stderr, "ok: %s\n", argv[i]);
    }
    return 0;
}
#endif
