// The only file that includes pybind11: turns arrays into pointers, releases the GIL, calls run().
// Every user-facing check and message lives in python/fastbce/_api.py; what is checked here is the
// private contract between _api.py and the kernel, so a violation is a bug, not a user error.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cfenv>
#include <charconv>
#include <cmath>
#include <iterator>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "fastbce/fastbce.hpp"
#include "fastbce/auc.hpp"
#include "fastbce/float_text.hpp"
#include "fastbce/keys.hpp"
#include "fastbce/parquet_bools.hpp"

namespace py = pybind11;
using namespace fastbce;

namespace {

DType dtype_of(const py::array& a, const char* name) {
    const py::dtype dt = a.dtype();
    const auto size = dt.itemsize();
    switch (dt.kind()) {
        case 'b': return DType::u8;
        case 'u':
            if (size == 1) return DType::u8;
            if (size == 2) return DType::u16;
            if (size == 4) return DType::u32;
            if (size == 8) return DType::u64;
            break;
        case 'i':
            if (size == 1) return DType::i8;
            if (size == 2) return DType::i16;
            if (size == 4) return DType::i32;
            if (size == 8) return DType::i64;
            break;
        case 'f':
            if (size == 2) return DType::f16;
            if (size == 4) return DType::f32;
            if (size == 8) return DType::f64;
            break;
        default:
            if (size == 2 && py::str(dt.attr("name")).cast<std::string>() == "bfloat16") return DType::bf16;
    }
    throw py::type_error(std::string(name) + ": unsupported dtype " + py::str(dt).cast<std::string>());
}

View view_of(const py::array& a, int64_t stride, const char* name) {
    return View{a.data(), stride, dtype_of(a, name)};
}

void require(bool ok, const char* what) {
    if (!ok) throw std::logic_error(std::string("fastbce internal: ") + what);
}

bool contiguous(const py::array& a) { return (a.flags() & py::array::c_style) != 0; }

// The inputs of a call: labels, predictions, weights and pos_weight (checked by _api.py).
void set_inputs(Call& call, const py::array& y_true, int64_t y_true_stride, const py::array& y_pred,
                int64_t y_pred_stride, const py::object& weight, int64_t weight_stride,
                const py::object& pos_weight) {
    call.y_true = view_of(y_true, y_true_stride, "y_true");
    call.y_pred = view_of(y_pred, y_pred_stride, "y_pred");
    const DType working = call.y_pred.dtype == DType::f64 ? DType::f64 : DType::f32;
    if (call.weight_kind == WeightKind::per_row || call.weight_kind == WeightKind::per_element)
        call.weight = view_of(weight.cast<py::array>(), weight_stride, "sample_weight");
    if (!pos_weight.is_none()) {
        auto q = pos_weight.cast<py::array>();
        require(dtype_of(q, "pos_weight") == working && q.size() == call.n_classes && contiguous(q),
                "pos_weight must be contiguous, working dtype, one per class");
        call.pos_weight = q.data();
    }
}

py::tuple compute(Call call, const py::array& y_true, int64_t y_true_stride, const py::array& y_pred,
                  int64_t y_pred_stride, const py::object& weight, int64_t weight_stride,
                  const py::object& pos_weight, const py::object& out, int64_t out_stride,
                  const py::object& groups, const py::object& group_sums) {
    set_inputs(call, y_true, y_true_stride, y_pred, y_pred_stride, weight, weight_stride, pos_weight);
    const DType working = call.y_pred.dtype == DType::f64 ? DType::f64 : DType::f32;
    if (!out.is_none()) {
        auto o = out.cast<py::array>();
        require(dtype_of(o, "out") == working && o.writeable(), "out must be writeable working dtype");
        call.out = o.mutable_data();
        call.out_stride = out_stride;
    }
    Sums* sums_out = nullptr;
    if (!groups.is_none()) {
        auto g = groups.cast<py::array>();
        auto s = group_sums.cast<py::array>();
        const DType code_type = dtype_of(g, "groups");
        require((code_type == DType::i64 || code_type == DType::i32) && contiguous(g) &&
                    g.size() == call.n / call.row_size,
                "groups must be contiguous int64 or int32, one code per row");
        require(dtype_of(s, "group_sums") == DType::f64 && contiguous(s) && s.writeable() &&
                    s.size() == 3 * call.n_groups,
                "group_sums must be contiguous float64, 3 per group");
        if (code_type == DType::i64)
            call.groups = static_cast<const int64_t*>(g.data());
        else
            call.groups32 = static_cast<const int32_t*>(g.data());
        sums_out = static_cast<Sums*>(s.mutable_data());
    }

    Result r;
    {
        py::gil_scoped_release release;
        r = run(call, sums_out);
    }
    return py::make_tuple(r.total.loss, r.total.weight, r.total.count, int(r.fault), r.fault_index);
}

// ---- the evaluation report (docs/report.md): outputs are float64 arrays zeroed by _report.py,
// but for the whole input's histogram, which the call adds to once it has succeeded

double* f64_out(const py::object& a, int64_t size, const char* what) {
    auto arr = a.cast<py::array>();
    require(dtype_of(arr, what) == DType::f64 && contiguous(arr) && arr.writeable() && arr.size() == size, what);
    return static_cast<double*>(arr.mutable_data());
}

// slicings: a list of (codes (int64 or int32), sums, hist or None, mantissa_bits[, hist_rows]), one
// per slicing; with hist_rows, group q adds to row hist_rows[q] of hist, which may hold sums
// already (a call of more than REPORT_HIST_AFTER_CHECK elements that faults may have added some
// of its rows).
py::tuple report(Call call, const py::array& y_true, int64_t y_true_stride, const py::array& y_pred,
                 int64_t y_pred_stride, const py::object& weight, int64_t weight_stride,
                 const py::object& pos_weight, double logit_offset, const py::object& ignore_label,
                 const py::object& sums, const py::object& hist, int mantissa_bits,
                 const std::vector<py::tuple>& slicings, int64_t top_k, const py::object& written) {
    set_inputs(call, y_true, y_true_stride, y_pred, y_pred_stride, weight, weight_stride, pos_weight);
    require(mantissa_bits >= 0 && mantissa_bits <= kMaxMantissaBits && top_k >= 0, "report sizes");
    ReportSpec spec;
    spec.logit_offset = logit_offset;
    spec.has_ignore = !ignore_label.is_none();
    spec.ignore_label = spec.has_ignore ? ignore_label.cast<double>() : 0.0;
    spec.mantissa_bits = mantissa_bits;
    spec.sums = f64_out(sums, rs_size, "report sums");
    spec.hist = f64_out(hist, 2 * hist_bins(mantissa_bits), "report histogram");
    std::vector<ReportSlicing> slices;
    for (const py::tuple& t : slicings) {
        ReportSlicing g;
        auto codes = t[0].cast<py::array>();
        const DType code_type = dtype_of(codes, "codes");
        require((code_type == DType::i64 || code_type == DType::i32) && contiguous(codes) &&
                    codes.size() == call.n / call.row_size,
                "group codes must be contiguous int64 or int32, one per row");
        if (code_type == DType::i64)
            g.codes = static_cast<const int64_t*>(codes.data());
        else
            g.codes32 = static_cast<const int32_t*>(codes.data());
        g.mantissa_bits = t[3].cast<int>();
        require(g.mantissa_bits >= 0 && g.mantissa_bits <= kMaxMantissaBits, "group mantissa bits");
        auto group_sums = t[1].cast<py::array>();  // (n_groups, rs_size or rs_ece: no ECE bins)
        require(group_sums.ndim() == 2 && (group_sums.shape(1) == rs_size || group_sums.shape(1) == rs_ece),
                "group sums must have shape (n_groups, REPORT_SUMS or REPORT_SUMS_NO_ECE)");
        g.n_groups = int64_t(group_sums.shape(0));
        g.stride = int64_t(group_sums.shape(1));
        g.sums = f64_out(t[1], g.n_groups * g.stride, "group sums");
        const int64_t values = 2 * hist_bins(g.mantissa_bits);  // (one group's histogram)
        if (t.size() > 4 && !t[4].is_none()) {  // the groups' rows in a histogram that has sums already
            auto rows = t[4].cast<py::array>();
            require(dtype_of(rows, "hist_rows") == DType::i64 && contiguous(rows) && rows.size() == g.n_groups &&
                        !t[2].is_none(),
                    "hist_rows: contiguous int64, one per group");
            auto hist_array = t[2].cast<py::array>();
            const int64_t capacity = hist_array.ndim() > 0 ? int64_t(hist_array.shape(0)) : 0;
            g.hist = f64_out(t[2], capacity * values, "group histogram");
            g.hist_rows = static_cast<const int64_t*>(rows.data());
            for (int64_t q = 0; q < g.n_groups; ++q)
                require(g.hist_rows[q] >= 0 && g.hist_rows[q] < capacity, "hist_rows: row out of range");
        } else if (!t[2].is_none()) {
            g.hist = f64_out(t[2], g.n_groups * values, "group histogram");
        }
        slices.push_back(g);
    }
    spec.slicings = slices.data();
    spec.n_slicings = int64_t(slices.size());
    top_k = std::min(top_k, call.n);  // (a call has no more rows to rank: top_losses=10**9 is no allocation)
    std::vector<TopLoss> top(static_cast<size_t>(top_k));
    spec.top_k = top_k;
    spec.top = top.data();
    Result r;
    {
        py::gil_scoped_release release;
        r = run_report(call, spec);
    }
    // (set before any Python code runs: the caller knows that histograms given with hist_rows
    // now hold this call's rows, even if an exception such as KeyboardInterrupt comes next)
    if (!written.is_none() && r.fault == Fault::none) {
        auto flag = written.cast<py::array_t<int64_t>>();
        require(flag.size() == 1 && flag.writeable(), "written: one writable int64");
        flag.mutable_data()[0] = 1;
    }
    py::array_t<double> top_values({spec.top_found, int64_t(4)});
    py::array_t<int64_t> top_index({spec.top_found, int64_t(2)});
    for (int64_t i = 0; i < spec.top_found; ++i) {
        const TopLoss& e = top[size_t(i)];
        double* v = top_values.mutable_data(i);
        v[0] = e.loss, v[1] = e.weight, v[2] = e.y_true, v[3] = e.y_pred;
        int64_t* ix = top_index.mutable_data(i);
        ix[0] = e.row, ix[1] = e.code;
    }
    return py::make_tuple(r.total.loss, r.total.weight, r.total.count, int(r.fault), r.fault_index,
                          top_values, top_index);
}

// Test support: runs the kernel once on contiguous 1-D arrays (per-element weights if given) on
// the calling thread, between clearing and reading the FE_UNDERFLOW flag (which is per thread),
// and returns (whether it was raised, the elementwise loss). An operation whose result is tiny
// raises it, on any CPU: the guard against subnormal intermediates, which cost ~100 cycles each
// on Intel cores (docs/vecmath.md). The flag comes from the compiled kernel itself, with the
// operations its optimiser kept; run() is in another translation unit, so nothing moves across
// the clear and the test.
py::tuple underflow_raised(Call call, const py::array& y_true, const py::array& y_pred, const py::object& weight) {
    auto contiguous = [](const py::array& a) { return (a.flags() & py::array::c_style) != 0; };
    require(contiguous(y_true) && contiguous(y_pred) && y_true.size() == y_pred.size(),
            "_underflow_raised needs contiguous arrays of one size");
    call.n = y_pred.size();
    call.row_size = 1;
    call.n_classes = 1;
    call.threads = 1;
    call.y_true = view_of(y_true, 1, "y_true");
    call.y_pred = view_of(y_pred, 1, "y_pred");
    if (!weight.is_none()) {
        auto w = weight.cast<py::array>();
        require(contiguous(w) && w.size() == call.n, "weight must be contiguous, one per element");
        call.weight_kind = WeightKind::per_element;
        call.weight = view_of(w, 1, "sample_weight");
    }
    const bool is_double = call.y_pred.dtype == DType::f64;
    py::array out(is_double ? py::dtype::of<double>() : py::dtype::of<float>(), call.n);
    call.out = out.mutable_data();
    Result r;
    bool raised;
    {
        py::gil_scoped_release release;
        std::feclearexcept(FE_UNDERFLOW);
        r = run(call, nullptr);
        raised = std::fetestexcept(FE_UNDERFLOW) != 0;
    }
    require(r.fault == Fault::none, "_underflow_raised: the inputs failed a check");
    return py::make_tuple(raised, out);
}

py::array apply_math_py(const std::string& name, const py::array& x) {
    MathFn fn;
    if (name == "exp") fn = MathFn::exp;
    else if (name == "log") fn = MathFn::log;
    else if (name == "log1p") fn = MathFn::log1p;
    else if (name == "log1p_small") fn = MathFn::log1p_small;
    else throw py::value_error("unknown function " + name);
    const DType dt = dtype_of(x, "x");
    if ((dt != DType::f32 && dt != DType::f64) || !(x.flags() & py::array::c_style))
        throw py::type_error("x must be a contiguous float32 or float64 array");
    py::array y(x.dtype(), std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    apply_math(fn, dt == DType::f64, x.data(), y.mutable_data(), x.size());
    return y;
}

uint64_t read_floor_py(const std::vector<py::array>& arrays, int threads) {
    std::vector<std::pair<const void*, size_t>> buffers;
    for (const auto& a : arrays) {
        if (!(a.flags() & py::array::c_style)) throw py::value_error("read_floor needs contiguous arrays");
        buffers.emplace_back(a.data(), size_t(a.nbytes()));
    }
    py::gil_scoped_release release;
    return read_floor(buffers, threads);
}

// An Arrow string array (offsets: int32, or int64 for large_string; bytes; validity bitmap or None
// from bit `bit_offset`), as NumPy views, to f(TextColumn<Offset>).
template <class F>
void with_text(const py::array& offsets, const py::array& data, const py::object& valid, int64_t bit_offset, F f) {
    require(contiguous(offsets) && contiguous(data) && data.itemsize() == 1 && offsets.ndim() == 1 &&
                offsets.size() >= 1 && bit_offset >= 0,
            "text buffers must be contiguous, n + 1 offsets");
    const int64_t n = int64_t(offsets.size()) - 1;
    const uint8_t* bits = nullptr;
    if (!valid.is_none()) {
        auto v = valid.cast<py::array>();
        require(contiguous(v) && v.itemsize() == 1 && int64_t(v.size()) * 8 >= bit_offset + n, "validity bitmap");
        bits = static_cast<const uint8_t*>(v.data());
    }
    const char* chars = static_cast<const char*>(data.data());
    const DType kind = dtype_of(offsets, "offsets");
    if (kind == DType::i32) {
        const auto* off = static_cast<const int32_t*>(offsets.data());
        require(off[n] <= int64_t(data.size()), "offsets beyond the bytes");
        f(TextColumn<int32_t>{off, chars, bits, bit_offset, n});
    } else if (kind == DType::i64) {
        const auto* off = static_cast<const int64_t*>(offsets.data());
        require(off[n] <= int64_t(data.size()), "offsets beyond the bytes");
        f(TextColumn<int64_t>{off, chars, bits, bit_offset, n});
    } else {
        throw std::invalid_argument("offsets must be int32 or int64");
    }
}

int64_t* codes_out(py::array& codes, int64_t n) {
    require(dtype_of(codes, "codes") == DType::i64 && contiguous(codes) && codes.writeable() &&
                int64_t(codes.size()) == n,
            "codes: writable contiguous int64, one per row");
    return static_cast<int64_t*>(codes.mutable_data());
}

// codes[i] = the code of row i, -1 if not seen (the GIL released: threads may look up together).
void key_lookup(const KeyCodes& table, const py::array& offsets, const py::array& data, const py::object& valid,
                int64_t bit_offset, py::array codes) {
    with_text(offsets, data, valid, bit_offset, [&](const auto& col) {
        int64_t* out = codes_out(codes, col.n);
        py::gil_scoped_release release;
        table.lookup(col, 0, col.n, out);
    });
}

void key_add_unknown(KeyCodes& table, const py::array& offsets, const py::array& data, const py::object& valid,
                     int64_t bit_offset, py::array codes) {
    with_text(offsets, data, valid, bit_offset, [&](const auto& col) {
        int64_t* out = codes_out(codes, col.n);
        table.add_unknown(col, out);
    });
}

// The keys of some codes as Python objects: str, None for the missing key.
py::list key_list(const KeyCodes& table, const py::array_t<int64_t>& codes) {
    py::list out(codes.size());
    const int64_t* c = codes.data();
    for (py::ssize_t i = 0; i < codes.size(); ++i) {
        require(c[i] >= 0 && c[i] < table.size(), "key code out of range");
        if (table.is_null(c[i])) {
            out[size_t(i)] = py::none();
        } else {
            const std::string_view k = table.key(c[i]);
            out[size_t(i)] = py::reinterpret_steal<py::object>(
                PyUnicode_DecodeUTF8(k.data(), py::ssize_t(k.size()), "surrogateescape"));
        }
    }
    return out;
}

// The codes in `into` of the keys of `from` (added if new), in from's code order: merging.
py::array_t<int64_t> key_absorb(KeyCodes& into, const KeyCodes& from) {
    py::array_t<int64_t> out(from.size());
    int64_t* o = out.mutable_data();
    for (int64_t e = 0; e < from.size(); ++e) o[e] = from.is_null(e) ? into.null_code() : into.code(from.key(e));
    return out;
}

// Integers (bool, int8..int64, uint8..uint32) to f(const T*, n).
template <class F>
void with_ints(const py::array& values, F f) {
    require(contiguous(values) && values.ndim() == 1 && values.size() > 0, "integers: 1-D, contiguous, not empty");
    const void* p = values.data();
    const int64_t n = int64_t(values.size());
    switch (dtype_of(values, "integers")) {
        case DType::u8: return f(static_cast<const uint8_t*>(p), n);
        case DType::i8: return f(static_cast<const int8_t*>(p), n);
        case DType::u16: return f(static_cast<const uint16_t*>(p), n);
        case DType::i16: return f(static_cast<const int16_t*>(p), n);
        case DType::u32: return f(static_cast<const uint32_t*>(p), n);
        case DType::i32: return f(static_cast<const int32_t*>(p), n);
        case DType::i64: return f(static_cast<const int64_t*>(p), n);
        default: throw std::invalid_argument("integers: unsupported dtype");
    }
}

// The JSON text of a block of groups, one row a group joined by ",\n": row r is pieces[0] +
// names[r] + pieces[1] + the text of columns[0][r] + pieces[2] + ... + pieces[k + 1], a float64
// as Python's repr writes it (float_text.hpp; null for NaN and infinities), an integer in
// decimal. `fastbce score --format json` of a million groups: `template % row` over each group's
// twenty strings, each number's its own, took 2.6 of its 11 s; here no string is made but the
// block's.
py::str json_rows_py(const std::vector<std::string>& pieces, const std::vector<std::string>& names,
                     const std::vector<py::array>& columns) {
    require(pieces.size() == columns.size() + 2, "json_rows takes one piece more than names and columns");
    const size_t n = names.size();
    enum class Kind { f64, i64, u64 };
    std::vector<Kind> kinds;
    for (const py::array& c : columns) {
        require(c.ndim() == 1 && size_t(c.shape(0)) == n && contiguous(c),
                "json_rows: each column is 1-D, C-contiguous, one value a name");
        // (by kind and size, as dtype_of: an unpickled array's dtype is an equal object, not
        // NumPy's own instance)
        const DType d = dtype_of(c, "json_rows column");
        if (d == DType::f64) kinds.push_back(Kind::f64);
        else if (d == DType::i64) kinds.push_back(Kind::i64);
        else if (d == DType::u64) kinds.push_back(Kind::u64);
        else throw std::invalid_argument("json_rows: columns are float64, int64 or uint64");
    }
    std::string out;
    char digits[24];
    for (size_t r = 0; r < n; ++r) {
        if (r > 0) out += ",\n";
        out += pieces[0];
        out += names[r];
        for (size_t k = 0; k < columns.size(); ++k) {
            out += pieces[k + 1];
            const void* data = columns[k].data();
            if (kinds[k] == Kind::f64) {
                const double v = static_cast<const double*>(data)[r];
                if (std::isfinite(v)) append_float_repr(out, v);
                else out += "null";
            } else if (kinds[k] == Kind::i64) {
                out.append(digits, std::to_chars(digits, std::end(digits), static_cast<const int64_t*>(data)[r]).ptr);
            } else {
                out.append(digits, std::to_chars(digits, std::end(digits), static_cast<const uint64_t*>(data)[r]).ptr);
            }
        }
        out += pieces.back();
    }
    return py::str(out);
}

// (lo, hi) of the values.
py::tuple int_range_py(const py::array& values) {
    int64_t lo = 0, hi = 0;
    with_ints(values, [&](const auto* v, int64_t n) {
        py::gil_scoped_release release;
        using Int = std::remove_cv_t<std::remove_pointer_t<decltype(v)>>;
        if constexpr (std::is_same_v<Int, int64_t>)
            int64_range(v, n, lo, hi);
        else if constexpr (std::is_same_v<Int, int32_t>)
            int32_range(v, n, lo, hi);
        else
            int_range(v, n, lo, hi);
    });
    return py::make_tuple(lo, hi);
}

// marks[v - base] = 1 for the values in [base, base + len(marks)) (stops once all are marked).
void mark_ints_py(const py::array& values, int64_t base, py::array marks) {
    require(contiguous(marks) && marks.itemsize() == 1 && marks.writeable(), "marks: writable bytes");
    auto* m = static_cast<uint8_t*>(marks.mutable_data());
    const int64_t size = int64_t(marks.size());
    with_ints(values, [&](const auto* v, int64_t n) {
        py::gil_scoped_release release;
        mark_ints(v, n, base, m, size);
    });
}

// The pages of a parquet column chunk (its stored bytes): one row of 10 fields a page.
// ValueError where a header does not parse (fastbce.io.parquet_bools reads the column with
// pyarrow then).
py::array_t<int64_t> parquet_page_headers_py(const py::array_t<uint8_t, py::array::c_style>& chunk) {
    std::vector<parquet::PageHeader> pages;
    try {
        py::gil_scoped_release release;
        pages = parquet::page_headers(chunk.data(), int64_t(chunk.size()));
    } catch (const parquet::FormatError& e) {
        throw py::value_error(e.what());
    }
    constexpr py::ssize_t kFields = 10;
    py::array_t<int64_t> out({py::ssize_t(pages.size()), kFields});
    auto rows = out.mutable_unchecked<2>();
    for (py::ssize_t i = 0; i < py::ssize_t(pages.size()); ++i) {
        const parquet::PageHeader& p = pages[size_t(i)];
        const int64_t fields[kFields] = {p.payload,    p.type,         p.compressed_size, p.uncompressed_size,
                                         p.num_values, p.encoding,     p.levels_encoding, p.levels_bytes,
                                         p.repetition_bytes, p.is_compressed};
        for (py::ssize_t k = 0; k < kFields; ++k) rows(i, k) = fields[k];
    }
    return out;
}

// One boolean data page's values (none null) into the bitmap `out` from bit `start`; returns the
// bit after them. ValueError on a null or what the reader does not take.
int64_t parquet_bool_page_py(const py::array_t<uint8_t, py::array::c_style>& page, int64_t levels,
                             int64_t num_values, int32_t encoding, py::array out, int64_t start,
                             int64_t capacity_bits) {
    require(contiguous(out) && out.itemsize() == 1 && out.writeable(), "out: writable bytes");
    require(start >= 0 && capacity_bits >= 0 && (capacity_bits + 7) / 8 <= int64_t(out.size()),
            "out: room for capacity_bits");
    auto* bits = static_cast<uint8_t*>(out.mutable_data());
    try {
        py::gil_scoped_release release;
        return parquet::bool_page_bits(page.data(), int64_t(page.size()), levels, num_values, encoding, bits,
                                       capacity_bits, start);
    } catch (const parquet::FormatError& e) {
        throw py::value_error(e.what());
    }
}

// out[i] = table[values[i] - base]; every value in the table's range (int_range said so).
void gather_codes_py(const py::array& values, int64_t base, const py::array_t<int64_t>& table, py::array out) {
    with_ints(values, [&](const auto* v, int64_t n) {
        int64_t* o = codes_out(out, n);
        require(table.ndim() == 1, "table: 1-D");
        const int64_t* t = table.data();
        py::gil_scoped_release release;
        gather_codes(v, n, base, t, o);
    });
}

// into[rows[i]] += from[i]: into (groups, ...) and from (n, ...) float64 with the same row size.
void add_rows_py(py::array into, const py::array_t<int64_t>& rows, const py::array& from) {
    require(dtype_of(into, "into") == DType::f64 && dtype_of(from, "from") == DType::f64 && contiguous(into) &&
                contiguous(from) && into.writeable() && rows.ndim() == 1 && from.ndim() >= 1 &&
                into.ndim() == from.ndim() && int64_t(from.shape(0)) == int64_t(rows.size()),
            "add_rows: into (groups, ...) and from (n, ...) contiguous float64, one row each in rows");
    int64_t width = 1;
    for (py::ssize_t d = 1; d < from.ndim(); ++d) {
        require(from.shape(d) == into.shape(d), "add_rows: rows of different sizes");
        width *= int64_t(from.shape(d));
    }
    const int64_t n = int64_t(rows.size()), groups = int64_t(into.shape(0));
    const int64_t* r = rows.data();
    for (int64_t i = 0; i < n; ++i) require(r[i] >= 0 && r[i] < groups, "add_rows: row out of range");
    double* to = static_cast<double*>(into.mutable_data());
    const double* add = static_cast<const double*>(from.data());
    py::gil_scoped_release release;
    add_rows(to, width, r, add, n);
}

// (auc, auc_bound) of the AUC histograms hist[rows[i]] (hist: (capacity, bins, 2) float64).
py::array_t<double> hist_auc_py(const py::array& hist,
                                const py::array_t<int64_t, py::array::c_style | py::array::forcecast>& rows) {
    require(dtype_of(hist, "hist") == DType::f64 && contiguous(hist) && hist.ndim() == 3 && hist.shape(2) == 2 &&
                rows.ndim() == 1,
            "hist_auc: hist (n, bins, 2) contiguous float64 and rows 1-D int64");
    const int64_t n = int64_t(rows.size()), capacity = int64_t(hist.shape(0)), bins = int64_t(hist.shape(1));
    const int64_t* r = rows.data();
    for (int64_t i = 0; i < n; ++i) require(r[i] >= 0 && r[i] < capacity, "hist_auc: row out of range");
    py::array_t<double> out({n, int64_t(2)});
    const double* h = static_cast<const double*>(hist.data());
    double* o = out.mutable_data();
    py::gil_scoped_release release;
    for (int64_t i = 0; i < n; ++i) histogram_auc(h + 2 * bins * r[i], bins, o[2 * i], o[2 * i + 1]);
    return out;
}

// binary_entropy of each float64.
py::array_t<double> entropies_py(const py::array_t<double, py::array::c_style | py::array::forcecast>& b) {
    require(b.ndim() == 1, "entropies takes a 1-D array");
    const int64_t n = int64_t(b.size());
    py::array_t<double> out(n);
    const double* v = b.data();
    double* o = out.mutable_data();
    py::gil_scoped_release release;
    for (int64_t i = 0; i < n; ++i) o[i] = binary_entropy(v[i]);
    return out;
}

// ---- derivatives for training (run_grad): the same contract as compute(), two outputs ----
py::tuple compute_grad(Call call, const py::array& y_true, int64_t y_true_stride, const py::array& logits,
                       int64_t logits_stride, const py::object& weight, int64_t weight_stride,
                       const py::object& pos_weight, py::array grad, int64_t grad_stride,
                       const py::object& hess, int64_t hess_stride, HessianMode hessian) {
    call.y_true = view_of(y_true, y_true_stride, "y_true");
    call.y_pred = view_of(logits, logits_stride, "logits");
    require(call.from_logits, "derivatives are taken from logits");
    const DType working = call.y_pred.dtype == DType::f64 ? DType::f64 : DType::f32;
    if (call.weight_kind == WeightKind::per_row || call.weight_kind == WeightKind::per_element)
        call.weight = view_of(weight.cast<py::array>(), weight_stride, "sample_weight");
    if (!pos_weight.is_none()) {
        auto q = pos_weight.cast<py::array>();
        require(dtype_of(q, "pos_weight") == working && q.size() == call.n_classes &&
                    (q.flags() & py::array::c_style) != 0,
                "pos_weight must be contiguous, working dtype, one per class");
        call.pos_weight = q.data();
    }
    GradOut g;
    g.hessian = hessian;
    require(dtype_of(grad, "grad") == working && grad.writeable() && grad.size() == call.n,
            "grad must be writeable working dtype");
    g.grad = grad.mutable_data();
    g.grad_stride = grad_stride;
    require((hessian == HessianMode::none) == hess.is_none(), "hess is None exactly for hessian='none'");
    if (!hess.is_none()) {
        auto h = hess.cast<py::array>();
        require(dtype_of(h, "hess") == working && h.writeable() && h.size() == call.n,
                "hess must be writeable working dtype");
        g.hess = h.mutable_data();
        g.hess_stride = hess_stride;
    }
    Result r;
    {
        py::gil_scoped_release release;
        r = run_grad(call, g);
    }
    return py::make_tuple(int(r.fault), r.fault_index);
}

}  // namespace

PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
    m.doc() = "fastbce's compiled kernel (private: use the fastbce package)";

    py::enum_<WeightKind>(m, "WeightKind")
        .value("none", WeightKind::none)
        .value("scalar", WeightKind::scalar)
        .value("per_row", WeightKind::per_row)
        .value("per_element", WeightKind::per_element);
    py::enum_<NanPolicy>(m, "NanPolicy")
        .value("propagate", NanPolicy::propagate)
        .value("omit", NanPolicy::omit)
        .value("raise_", NanPolicy::raise);

    py::class_<Call>(m, "Call")
        .def(py::init<>())
        .def_readwrite("n", &Call::n)
        .def_readwrite("row_size", &Call::row_size)
        .def_readwrite("n_classes", &Call::n_classes)
        .def_readwrite("weight_kind", &Call::weight_kind)
        .def_readwrite("weight_scalar", &Call::weight_scalar)
        .def_readwrite("pos_weight_scalar", &Call::pos_weight_scalar)
        .def_readwrite("n_groups", &Call::n_groups)
        .def_readwrite("from_logits", &Call::from_logits)
        .def_readwrite("epsilon", &Call::epsilon)
        .def_readwrite("label_smoothing", &Call::label_smoothing)
        .def_readwrite("gamma", &Call::gamma)
        .def_readwrite("has_alpha", &Call::has_alpha)
        .def_readwrite("alpha", &Call::alpha)
        .def_readwrite("nan_policy", &Call::nan_policy)
        .def_readwrite("validate", &Call::validate)
        .def_readwrite("threads", &Call::threads);

    m.def("compute", &compute, py::arg("call"), py::arg("y_true"), py::arg("y_true_stride"),
          py::arg("y_pred"), py::arg("y_pred_stride"), py::arg("weight"), py::arg("weight_stride"),
          py::arg("pos_weight"), py::arg("out"), py::arg("out_stride"), py::arg("groups"),
          py::arg("group_sums"),
          "Runs the kernel; returns (sum of w*ce, sum of w, count, fault kind, fault flat index).");
    m.def("report", &report, py::arg("call"), py::arg("y_true"), py::arg("y_true_stride"), py::arg("y_pred"),
          py::arg("y_pred_stride"), py::arg("weight"), py::arg("weight_stride"), py::arg("pos_weight"),
          py::arg("logit_offset"), py::arg("ignore_label"), py::arg("sums"), py::arg("hist"),
          py::arg("mantissa_bits"), py::arg("slicings"), py::arg("top_k"), py::arg("written") = py::none(),
          "The report pass: fills the sums and histograms; returns (sum of w*l, sum of w, count, fault "
          "kind, fault flat index, top (loss, weight, y_true, y_pred) rows, top (row, group code) rows).");
    m.attr("REPORT_SUMS") = int(rs_size);
    m.attr("REPORT_SUMS_NO_ECE") = int(rs_ece);
    m.attr("REPORT_HIST_AFTER_CHECK") = kHistAfterCheck;
    m.def("compiled_targets", &compiled_targets);
    m.def("supported_targets", &supported_targets);
    m.def("active_target", &active_target);
    m.def("set_target", &set_target, py::arg("name"));
    m.def("line_fetch", &line_fetch);
    m.def("set_line_fetch", &set_line_fetch, py::arg("name"));
    m.def("default_threads", &default_threads);
    m.def("threads_for", &threads_for, py::arg("n"), py::arg("requested") = 0,
          "Threads a call on n elements runs on, given threads= (0: the library default).");
    m.def("read_floor", &read_floor_py, py::arg("arrays"), py::arg("threads") = 0,
          "Reads every byte of the arrays on `threads` threads (0: the default); returns a checksum.");
    m.def("_underflow_raised", &underflow_raised, py::arg("call"), py::arg("y_true"), py::arg("y_pred"),
          py::arg("weight") = py::none(),
          "Test support: (FE_UNDERFLOW raised by one single-threaded kernel run, elementwise loss).");
    m.def("apply_math", &apply_math_py, py::arg("name"), py::arg("x"),
          "Applies the active tier's exp, log, log1p or log1p_small (for the accuracy tests).");

    m.def("hist_auc", &hist_auc_py, py::arg("hist"), py::arg("rows"),
          "(auc, auc_bound) per row of rows, of the AUC histograms hist[rows] (n, 2).");
    m.def("add_rows", &add_rows_py, py::arg("into"), py::arg("rows"), py::arg("from"),
          "into[rows[i]] += from[i] (rows distinct): a batch's per-group sums into the running ones.");
    py::class_<KeyCodes>(m, "KeyCodes", "Text keys in the order of their int64 codes (group labels), and the null key.")
        .def(py::init<uint64_t>(), py::arg("narrow_limit") = KeyCodes::kNarrowLimit,
             "narrow_limit: the key bytes past which the offsets are 8 bytes, not 4 (tests set a small one).")
        .def("lookup", &key_lookup, py::arg("offsets"), py::arg("data"), py::arg("valid"), py::arg("bit_offset"),
             py::arg("codes"), "codes[i] = the code of string i of an Arrow string array, -1 if not seen.")
        .def("add_unknown", &key_add_unknown, py::arg("offsets"), py::arg("data"), py::arg("valid"),
             py::arg("bit_offset"), py::arg("codes"), "Rows whose code is < 0 get theirs (new keys added).")
        .def("code", [](KeyCodes& t, std::string_view k) { return t.code(k); }, py::arg("key"))
        .def("find", [](const KeyCodes& t, std::string_view k) { return t.find(k); }, py::arg("key"))
        .def("null_code", &KeyCodes::null_code)
        .def("find_null", &KeyCodes::find_null)
        .def("forget", &KeyCodes::forget, py::arg("mark"), "Forgets the keys with a code >= mark.")
        .def("order",
             [](const KeyCodes& t) {
                 py::array_t<int64_t> out(t.size());  // (filled in place: no list of a million ints)
                 t.order(out.mutable_data());
                 return out;
             },
             "The codes sorted by key (the null last).")
        .def_property_readonly("nbytes", &KeyCodes::nbytes, "The bytes the table holds (its allocations).")
        .def_property_readonly("wide", &KeyCodes::wide, "Whether the key offsets are 8 bytes.")
        .def("keys", &key_list, py::arg("codes"), "The keys of the codes (str, or None).")
        .def("absorb", &key_absorb, py::arg("other"), "The codes of other's keys here (added if new).")
        .def("__len__", &KeyCodes::size)
        .def(py::pickle(
            [](const KeyCodes& t) {
                py::array_t<int64_t> starts(t.size() + 1);
                int64_t* out = starts.mutable_data();
                for (int64_t e = 0; e <= t.size(); ++e) out[e] = int64_t(t.start(e));
                const std::string_view chars = t.chars();
                return py::make_tuple(py::bytes(chars.data(), chars.size()), starts, t.find_null());
            },
            [](const py::tuple& s) {  // (starts: an int64 array, or a list as pickled before)
                require(s.size() == 3, "KeyCodes: a pickled state of 3 items");
                const auto starts = s[1].cast<py::array_t<int64_t, py::array::c_style | py::array::forcecast>>();
                KeyCodes t;
                t.restore(s[0].cast<std::string_view>(), starts.data(), int64_t(starts.size()), s[2].cast<int64_t>());
                return t;
            }));
    m.def("entropies", &entropies_py, py::arg("base_rates"),
          "-b ln b - (1 - b) ln(1 - b) of each base rate b (0 at 0 and 1, NaN outside [0, 1]).");
    m.def("json_rows", &json_rows_py, py::arg("pieces"), py::arg("names"), py::arg("columns"),
          "The JSON text of a block of groups: pieces[0] + names[r] + pieces[1] + columns[0][r] + ... a row.");
    m.def("int_range", &int_range_py, py::arg("values"), "(lo, hi) of 1-D integers.");
    m.def("mark_ints", &mark_ints_py, py::arg("values"), py::arg("base"), py::arg("marks"),
          "marks[v - base] = 1 for the values in range (stops once all are marked).");
    m.def("parquet_page_headers", &parquet_page_headers_py, py::arg("chunk"),
          "The pages of a parquet column chunk: (payload offset, type, compressed size, uncompressed "
          "size, values, encoding, levels' encoding, v2 levels' bytes, v2 repetition bytes, "
          "v2 is_compressed) a page.");
    m.def("parquet_bool_page", &parquet_bool_page_py, py::arg("page"), py::arg("levels"), py::arg("num_values"),
          py::arg("encoding"), py::arg("out"), py::arg("start"), py::arg("capacity_bits"),
          "A boolean data page's values (none null) into a bitmap from bit start; the bit after them.");
    m.def("gather_codes", &gather_codes_py, py::arg("values"), py::arg("base"), py::arg("table"), py::arg("out"),
          "out[i] = table[values[i] - base] (values in the table's range).");

    py::enum_<HessianMode>(m, "HessianMode")
        .value("exact", HessianMode::exact)
        .value("none", HessianMode::none)
        .value("clipped", HessianMode::clipped);
    m.def("compute_grad", &compute_grad, py::arg("call"), py::arg("y_true"), py::arg("y_true_stride"),
          py::arg("logits"), py::arg("logits_stride"), py::arg("weight"), py::arg("weight_stride"),
          py::arg("pos_weight"), py::arg("grad"), py::arg("grad_stride"), py::arg("hess"),
          py::arg("hess_stride"), py::arg("hessian"),
          "Writes the gradient and Hessian w.r.t. the logits; returns (fault kind, fault flat index).");

    // FASTBCE_FORCE_TARGET and FASTBCE_LINE_FETCH are checked at import, so a bad value fails
    // loudly and at once.
    try {
        (void)active_target();
    } catch (const std::invalid_argument& e) {
        throw py::import_error(std::string("FASTBCE_FORCE_TARGET: ") + e.what());
    }
    try {
        (void)line_fetch();
    } catch (const std::invalid_argument& e) {
        throw py::import_error(std::string("FASTBCE_LINE_FETCH: ") + e.what());
    }
}
