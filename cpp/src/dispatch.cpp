// Picks the SIMD tier once (CPU features, or FASTBCE_FORCE_TARGET) and splits a call over
// threads. Compiled for the baseline architecture: nothing here may use a newer instruction.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>
#include <stdexcept>
#include <thread>

#include "fastbce/fastbce.hpp"
#include "parallel.hpp"

#if defined(__linux__)
#include <sched.h>
#endif
#if FASTBCE_X86_TIERS
#include <cpuid.h>
#endif

#define FASTBCE_DECLARE_TIER(ns)          \
    namespace fastbce::ns {               \
    const Kernels& kernels();             \
    const ReportKernels& report_kernels(); \
    const GradKernels& grad_kernels();    \
    }
FASTBCE_DECLARE_TIER(tier_baseline)
#if FASTBCE_X86_TIERS
FASTBCE_DECLARE_TIER(tier_v2)
FASTBCE_DECLARE_TIER(tier_v3)
FASTBCE_DECLARE_TIER(tier_v4)
#endif

namespace fastbce {
namespace {

constexpr int64_t kBlock = 1 << 16;              // the most elements per block
constexpr int64_t kFineBlock = 1 << 14;          // the most per block of a mid-size call
constexpr int64_t kMostFineBlocks = 16;          // (block_size)
constexpr int64_t kBlockAlign = 1 << 12;         // sizes of 3 blocks or more are multiples of it
constexpr int64_t kHalfAlign = 1 << 9;           // of 2 blocks, multiples of it (the tile, kTile)
// From this many elements a call is split in two blocks (or more), which two threads can share.
constexpr int64_t kSplitFrom = 1 << 13;
// With a thread count asked for, at least this many elements a thread.
constexpr int64_t kMinPerThread = kSplitFrom / 2;
// Without a thread count asked for, a call takes the pool's threads from this many elements on:
// from the first split. A pool thread watching for work (parallel.hpp) starts its block ~0.2-0.35
// µs after the call and the caller sees it done ~0.3 µs after it ends, against ~1.6 µs of kernel
// for each 4096-element half (2-vCPU KVM guest, Xeon, v4). When no CPU is free the caller runs
// both blocks itself, for ~0.1 µs more than one thread.
constexpr int64_t kDefaultParallelFrom = kSplitFrom;
// Below this many elements, an unasked call takes only pool threads watching for work, never
// waking one that sleeps (in a loop of calls it has one woken after its work, to watch for the
// next): on that guest a sleeping thread ran 40-50 µs after its wake-up, when the caller had done
// most of the work (1e5 elements: 51 µs on one thread, 96 on two; 3e5: 169, 128).
constexpr int64_t kWakeFrom = 1 << 18;

// Elements per block of an n-element call: n in ceil(n / kBlock) blocks of (about) equal size, at
// least two from kSplitFrom on, and below 2^20 elements an even number of blocks of at most 2^14
// (up to 16 blocks). Equal blocks keep the threads equally busy: 1e5 elements as 2^16 + 34464
// took as long as 2^16 on two threads. The smaller blocks of a mid-size call let a thread that
// runs faster take more of them (parallel_for: the caller's from the front, the pool's from the
// back): a 1e5 call in 2 blocks took 32.8 µs where one vCPU of the guest ran 1.5x slower than
// the other, in 8 blocks 23.1 (22.4 and 23.6 with both at full speed). It depends on n alone,
// never on the threads, so the sums (added block by block) do not either.
int64_t block_size(int64_t n) {
    const int64_t fine = std::min(2 * ((n + kFineBlock * 2 - 1) / (kFineBlock * 2)), kMostFineBlocks);  // (even, >= 2)
    const int64_t n_blocks = n < kSplitFrom ? 1 : std::max((n + kBlock - 1) / kBlock, fine);
    const int64_t align = n_blocks > kMostFineBlocks ? kBlockAlign : kHalfAlign;
    const int64_t per_block = (n + n_blocks - 1) / n_blocks;
    return std::max<int64_t>(align, (per_block + align - 1) / align * align);
}
// blocks x groups partial sums kept at once (8 MiB; 2^20 took a --loss-only score of 200000
// groups to 302 MB)
constexpr int64_t kGroupPartialsBudget = 1 << 18;

struct Tier {
    const char* name;
    bool (*supported)();
    const Kernels& (*kernels)();
    const ReportKernels& (*report_kernels)();
    const GradKernels& (*grad_kernels)();
};

bool always() { return true; }

#if FASTBCE_X86_TIERS
// CPUID bit `bit` of register ecx for `leaf`. Clang before 16 has no __builtin_cpu_supports names
// for f16c, lzcnt and movbe, so those three are read here (the OS-support half of the AVX checks
// stays with __builtin_cpu_supports("avx"), which tests XSAVE state as well).
bool cpuid_ecx(unsigned leaf, unsigned bit) {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(leaf, &eax, &ebx, &ecx, &edx) != 0 && ((ecx >> bit) & 1u) != 0;
}

// The feature sets of the x86-64 micro-architecture levels (x86-64 psABI), which is what
// -march=x86-64-vN lets the compiler use.
bool cpu_v2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse3") && __builtin_cpu_supports("ssse3") &&
           __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("sse4.2") &&
           __builtin_cpu_supports("popcnt");
}
bool cpu_v3() {
    return cpu_v2() && __builtin_cpu_supports("avx") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
           cpuid_ecx(1, 29) /* f16c */ && __builtin_cpu_supports("fma") &&
           cpuid_ecx(0x80000001u, 5) /* lzcnt */ && cpuid_ecx(1, 22) /* movbe */;
}
bool cpu_v4() {
    return cpu_v3() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
}
#endif

const Tier kTiers[] = {
#if FASTBCE_X86_TIERS
    {"x86-64-v4", cpu_v4, tier_v4::kernels, tier_v4::report_kernels, tier_v4::grad_kernels},
    {"x86-64-v3", cpu_v3, tier_v3::kernels, tier_v3::report_kernels, tier_v3::grad_kernels},
    {"x86-64-v2", cpu_v2, tier_v2::kernels, tier_v2::report_kernels, tier_v2::grad_kernels},
#endif
    {"baseline", always, tier_baseline::kernels, tier_baseline::report_kernels, tier_baseline::grad_kernels},
};

const Tier* find_tier(const std::string& name) {
    for (const Tier& t : kTiers)
        if (name == t.name) return &t;
    return nullptr;
}

const Tier* best_tier() {
    for (const Tier& t : kTiers)
        if (t.supported()) return &t;
    return &kTiers[std::size(kTiers) - 1];
}

std::string join(const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
    return s;
}

const Tier* checked_tier(const std::string& name) {
    const Tier* t = find_tier(name);
    if (t == nullptr)
        throw std::invalid_argument("unknown SIMD target '" + name + "' (compiled: " +
                                    join(compiled_targets()) + ")");
    if (!t->supported())
        throw std::invalid_argument("SIMD target '" + name + "' is not supported by this CPU (supported: " +
                                    join(supported_targets()) + ")");
    return t;
}

std::atomic<const Tier*>& active() {
    // FASTBCE_FORCE_TARGET is read once, at the first call (the module import).
    static std::atomic<const Tier*> tier{[] {
        const char* forced = std::getenv("FASTBCE_FORCE_TARGET");
        return forced != nullptr && *forced != '\0' ? checked_tier(forced) : best_tier();
    }()};
    return tier;
}

// LineFetch's names, in the enum's order.
const char* const kLineFetchNames[] = {"touch", "hardware"};

LineFetch checked_line_fetch(const std::string& name) {
    std::string known;
    for (int i = 0; i < int(std::size(kLineFetchNames)); ++i) {
        if (name == kLineFetchNames[i]) return LineFetch(i);
        known += (known.empty() ? "" : ", ") + std::string(kLineFetchNames[i]);
    }
    throw std::invalid_argument("unknown line fetch '" + name + "' (known: " + known + ")");
}

// Whether the CPU's vendor string (CPUID leaf 0) is AMD's.
bool cpu_is_amd() {
#if FASTBCE_X86_TIERS
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return false;
    char vendor[12];
    std::memcpy(vendor, &ebx, 4), std::memcpy(vendor + 4, &edx, 4), std::memcpy(vendor + 8, &ecx, 4);
    return std::memcmp(vendor, "AuthenticAMD", 12) == 0;
#else
    return false;
#endif
}

// The touches and prefetches of a tile (LineFetch::touch) made one thread read 1e8 float32 logits
// in 0.55x the time on a Sapphire Rapids VM, where the hardware prefetcher alone fell behind
// (tile_inputs.hpp). On a Zen 3 VM calls took 0.82-0.99x the time without them (medians of
// paired ratios, benchmarks/line_fetch.py: 1e7 and 1e8 elements, one thread and two, logits,
// focal, uint8 labels, weights, probabilities; docs/benchmarks.md): its prefetchers keep ahead
// by themselves, and a tile's touches only hold the core up. No CPU-independent signal tells the
// two apart, hence the vendor (Zen 4/5 and Intel's AVX2-only CPUs unmeasured), and the variable
// to override it.
std::atomic<LineFetch>& active_line_fetch() {
    static std::atomic<LineFetch> fetch{[] {
        const char* named = std::getenv("FASTBCE_LINE_FETCH");
        if (named != nullptr && *named != '\0') return checked_line_fetch(named);
        return cpu_is_amd() ? LineFetch::hardware : LineFetch::touch;
    }()};
    return fetch;
}

void add(Sums& into, const Sums& s) {
    into.loss += s.loss;
    into.weight += s.weight;
    into.count += s.count;
}

// Whether a call has the focal term. Options take the working precision first (as Keras casts
// them to the tensor's dtype): a gamma that rounds to 0 in float32 is no focal term there.
bool focal_of(const Call& c, bool is_double) { return is_double ? c.gamma > 0.0 : float(c.gamma) > 0.0f; }

// Options level of a call (types.hpp). Values are taken in the working precision first, as the
// kernel uses them: a label smoothing of 1e-50 is none in float32.
Options options_of(const Call& c, bool is_double, bool focal) {
    auto in_working = [is_double](double v) { return is_double ? v : double(float(v)); };
    if (in_working(c.label_smoothing) != 0.0 || c.pos_weight != nullptr || in_working(c.pos_weight_scalar) != 1.0 ||
        (c.has_alpha && !focal))
        return Options::general;
    const bool weighted = c.weight_kind == WeightKind::per_row || c.weight_kind == WeightKind::per_element ||
                          (c.weight_kind == WeightKind::scalar && in_working(c.weight_scalar) != 1.0);
    return weighted ? Options::weighted : Options::plain;
}

// Runs fill(begin, end, parts[b]) for each block b of `block` elements of [0, c.n) on the call's
// threads (threads_for). Once a block reports a fault, blocks that start past the first faulting element seen
// so far are skipped (whatever they find comes after it). Returns the first fault in element
// order (Fault::none: there was none); the sums are the caller's to add.
template <class Fill>
Result run_blocks(std::vector<BlockOut>& parts, const Call& c, int64_t block, Fill&& fill) {
    const int64_t n = c.n;
    std::atomic<int64_t> fault_at{std::numeric_limits<int64_t>::max()};
    parallel_for(int64_t(parts.size()), threads_for(n, c.threads), [&](int64_t b) {
        const int64_t begin = b * block;
        if (begin > fault_at.load(std::memory_order_relaxed)) return;
        BlockOut& part = parts[size_t(b)];
        fill(begin, std::min(n, begin + block), part);
        if (part.fault != Fault::none) {
            int64_t seen = fault_at.load(std::memory_order_relaxed);
            while (part.fault_index < seen && !fault_at.compare_exchange_weak(seen, part.fault_index)) {
            }
        }
    }, c.threads > 0 || n >= kWakeFrom);
    Result result;
    for (const BlockOut& part : parts) {
        if (part.fault != Fault::none) {
            result.fault = part.fault;
            result.fault_index = part.fault_index;
            break;
        }
    }
    return result;
}

}  // namespace

std::vector<std::string> compiled_targets() {
    std::vector<std::string> names;
    for (const Tier& t : kTiers) names.emplace_back(t.name);
    return names;
}

std::vector<std::string> supported_targets() {
    std::vector<std::string> names;
    for (const Tier& t : kTiers)
        if (t.supported()) names.emplace_back(t.name);
    return names;
}

const ReportKernels& active_report_kernels() { return active().load()->report_kernels(); }

std::string active_target() { return active().load()->name; }

void set_target(const std::string& name) { active().store(checked_tier(name)); }

std::string line_fetch() { return kLineFetchNames[int(active_line_fetch().load())]; }

void set_line_fetch(const std::string& name) { active_line_fetch().store(checked_line_fetch(name)); }

int default_threads() {
    // Read again at most every kRecount: the system call takes ~0.3 µs on a KVM guest (a tenth
    // of a 1e4-element call), and a changed mask only changes how fast calls run, not results.
    constexpr auto kRecount = std::chrono::milliseconds(50);
    static std::atomic<int> cached{0};
    static std::atomic<int64_t> counted_at{0};
    const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
    const int known = cached.load(std::memory_order_relaxed);
    if (known > 0 && now - counted_at.load(std::memory_order_relaxed) <
                         std::chrono::duration_cast<std::chrono::steady_clock::duration>(kRecount).count())
        return known;
    int count = 0;
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) count = std::max(1, CPU_COUNT(&set));
#endif
    if (count == 0) count = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    cached.store(count, std::memory_order_relaxed);
    counted_at.store(now, std::memory_order_relaxed);
    return count;
}

int threads_for(int64_t n, int requested) {
    const int64_t wanted = requested > 0 ? requested : (n >= kDefaultParallelFrom ? default_threads() : 1);
    const int64_t block = block_size(n);
    const int64_t n_blocks = std::max<int64_t>(1, (n + block - 1) / block);
    return int(std::clamp<int64_t>(std::min(wanted, n / kMinPerThread), 1, n_blocks));
}

void apply_math(MathFn fn, bool is_double, const void* x, void* y, int64_t n) {
    active().load()->kernels().math[is_double](fn, x, y, n);
}

Result run(const Call& c, Sums* group_sums) {
    const Kernels& kernels = active().load()->kernels();
    const bool is_double = c.y_pred.dtype == DType::f64;
    const bool focal = focal_of(c, is_double);
    const BlockFn block_fn = kernels.block[is_double][c.from_logits][focal][int(options_of(c, is_double, focal))];
    const int64_t n = c.n;
    const int64_t n_groups = c.grouped() ? c.n_groups : 0;

    // Block size depends on n and the number of groups only, never on the threads. (Grouped
    // calls keep whole kBlock blocks: their per-block partials are n_groups sums each.)
    int64_t block = n_groups > 0 ? kBlock : block_size(n);
    if (n_groups > 0) {
        const int64_t max_blocks = std::max<int64_t>(1, kGroupPartialsBudget / n_groups);
        const int64_t needed = (n + max_blocks - 1) / max_blocks;
        block = std::max(block, (needed + kBlock - 1) / kBlock * kBlock);
    }
    const int64_t n_blocks = (n + block - 1) / block;

    std::vector<BlockOut> parts(static_cast<size_t>(n_blocks));
    std::vector<GroupSums> group_parts(static_cast<size_t>(n_blocks * n_groups));
    for (int64_t b = 0; b < n_blocks; ++b)
        if (n_groups > 0) parts[size_t(b)].groups = &group_parts[size_t(b * n_groups)];

    Call fetched = c;  // (the process's line fetch: a field for the tiers' block functions)
    fetched.line_fetch = active_line_fetch().load(std::memory_order_relaxed);
    const auto fill = [&](int64_t begin, int64_t end, BlockOut& part) { block_fn(fetched, begin, end, part); };
    Result result = run_blocks(parts, fetched, block, fill);
    if (result.fault != Fault::none) return result;
    for (const BlockOut& part : parts) add(result.total, part.sums);
    if (n_groups > 0) {
        std::fill_n(group_sums, n_groups, Sums{});
        for (int64_t b = 0; b < n_blocks; ++b)
            for (int64_t g = 0; g < n_groups; ++g) {
                const GroupSums& part = group_parts[size_t(b * n_groups + g)];
                add(group_sums[g], Sums{part.loss, part.weight, part.count});
            }
    }
    return result;
}

uint64_t read_floor(const std::vector<std::pair<const void*, size_t>>& buffers, int threads) {
    // Chunks of 1 MiB from every buffer; each thread XORs 64-bit words (cheap enough that the
    // loop runs at the speed memory delivers them). The checksum keeps the reads from being elided.
    constexpr size_t kChunk = size_t(1) << 20;
    struct Chunk {
        const unsigned char* data;
        size_t bytes;
    };
    std::vector<Chunk> chunks;
    for (const auto& [data, bytes] : buffers)
        for (size_t off = 0; off < bytes; off += kChunk)
            chunks.push_back({static_cast<const unsigned char*>(data) + off, std::min(kChunk, bytes - off)});
    std::vector<uint64_t> sums(chunks.size());
    const int64_t n = int64_t(chunks.size());
    parallel_for(n, threads > 0 ? threads : default_threads(), [&](int64_t i) {
        const Chunk& ch = chunks[size_t(i)];
        uint64_t lanes[8] = {};
        size_t j = 0;
        for (; j + 64 <= ch.bytes; j += 64)
            for (int l = 0; l < 8; ++l) {
                uint64_t word;
                std::memcpy(&word, ch.data + j + 8 * l, 8);
                lanes[l] ^= word;
            }
        uint64_t s = 0;
        for (uint64_t lane : lanes) s ^= lane;
        for (; j < ch.bytes; ++j) s ^= ch.data[j];
        sums[size_t(i)] = s;
    });
    uint64_t total = 0;
    for (uint64_t s : sums) total ^= s;
    return total;
}

}  // namespace fastbce

// ---- derivatives for training (grad.hpp): the same tiers, blocks and threads as run() ----

namespace fastbce {

static_assert(int(GradLevel::plain) == int(Options::plain) && int(GradLevel::weighted) == int(Options::weighted) &&
              int(GradLevel::general) == int(Options::general));

Result run_grad(const Call& c, const GradOut& g) {
    const GradKernels& kernels = active().load()->grad_kernels();
    const bool is_double = c.y_pred.dtype == DType::f64;
    const bool focal = focal_of(c, is_double);
    GradLevel level = GradLevel(int(options_of(c, is_double, focal)));
    if (focal) level = g.hessian == HessianMode::clipped ? GradLevel::focal_clipped : GradLevel::focal;
    const GradBlockFn block_fn = kernels.block[is_double][int(level)];

    const int64_t n = c.n;
    const int64_t block = block_size(n);
    std::vector<BlockOut> parts(static_cast<size_t>((n + block - 1) / block));
    const auto fill = [&](int64_t begin, int64_t end, BlockOut& part) { block_fn(c, g, begin, end, part); };
    return run_blocks(parts, c, block, fill);
}

}  // namespace fastbce
