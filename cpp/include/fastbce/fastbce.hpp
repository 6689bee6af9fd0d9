// fastbce's C++ entry points: what the Python binding, a C++ test or a fuzzer calls.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "fastbce/report_types.hpp"
#include "fastbce/types.hpp"

namespace fastbce {

// Computes one call over all its elements on the active SIMD tier. The input is cut into
// fixed-size blocks whose float64 partial sums are combined in block order, so the result is the
// same bit for bit whatever the number of threads. `group_sums` receives c.n_groups entries when
// c.groups or c.groups32 is set (it is overwritten), and is ignored otherwise. Never throws.
Result run(const Call& c, Sums* group_sums);

// The evaluation report of one call (docs/report.md) on the active SIMD tier: fills spec's outputs
// (zeroed by the caller, except spec.hist: the call adds to it, only if it succeeds) and
// spec.top_found. The input is cut into at most 16 chunks, fixed by n
// and the histogram sizes, whose partial sums are merged in chunk order: the report is the same
// bit for bit whatever the number of threads. Returns the first failed check, if any; never throws
// (except std::bad_alloc).
Result run_report(const Call& c, ReportSpec& spec);
const ReportKernels& active_report_kernels();

// SIMD tiers, best first: those compiled into this build, and those this CPU can run.
std::vector<std::string> compiled_targets();
std::vector<std::string> supported_targets();
std::string active_target();
// Makes `name` the active tier; throws std::invalid_argument if it is unknown or unsupported.
void set_target(const std::string& name);

// How large calls fetch their input's cache lines (types.hpp, LineFetch): "touch" or "hardware".
// The default is the one measured faster on the CPU's vendor, "hardware" on AMD and "touch"
// elsewhere (dispatch.cpp has the figures), unless the environment variable FASTBCE_LINE_FETCH
// names one (read once, at the first call).
std::string line_fetch();
// Makes `name` the line fetch of later calls; throws std::invalid_argument if it is neither.
void set_line_fetch(const std::string& name);

// Threads a call uses by default: the CPUs this process may run on (its affinity mask).
int default_threads();

// Threads a call on n elements runs on, given threads= (0: the library default). Small inputs
// run on the calling thread alone: a thread of the pool takes whole blocks (at most 2^16
// elements), and a call is one block below 2^13 elements.
int threads_for(int64_t n, int requested);

// Reads every byte of the buffers with the same threads a call would use and returns a checksum:
// the time this takes is the floor for any loss over the same inputs (the benchmark shows it).
uint64_t read_floor(const std::vector<std::pair<const void*, size_t>>& buffers, int threads);

// Applies a vector-math function of the active tier to n contiguous floats or doubles.
void apply_math(MathFn fn, bool is_double, const void* x, void* y, int64_t n);

// Gradient and Hessian with respect to the logit of the elementwise loss of the call (which
// must have from_logits set) into g's arrays, on the active tier and the threads run() uses.
// Only the fault fields of the Result are set. Never throws.
Result run_grad(const Call& c, const GradOut& g);

}  // namespace fastbce
