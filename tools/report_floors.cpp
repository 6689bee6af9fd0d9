// The floors of the evaluation report's pass without groups (docs/report.md, "Cost"): what each
// part of the report costs alone, on this CPU, next to the plain mean loss, and the pass itself.
// One translation unit on the headers (no library, no pip build); AVX-512 only (tier x86-64-v4):
//   g++ -O3 -std=c++20 -march=x86-64-v4 -mprefer-vector-width=512 -ffp-contract=off -pthread
//       -DFASTBCE_TIER=tier_v4 -I cpp/include tools/report_floors.cpp -o /tmp/report_floors
//   /tmp/report_floors [n] [threads] [rounds] [parts]
// n float32 logits N(0, 1) (default 1e8, rounded down to whole tiles of 512) and uint8 labels
// (1 with probability 0.3), as benchmarks/report_cost.py makes them; threads (default 2) take
// chunks of the input as report.cpp cuts them (16 chunks of a multiple of 65536 rows). Each
// round times every variant once, in turn (so that load from other work falls on all of them);
// prints the best and the median of `rounds` (default 9) in ms and as a ratio to the mean loss;
// parts: a comma-separated list of the names below to time only those (and the loss):
//   read     the read floor: every byte once into independent vector accumulators (5 B a row)
//   loss     the kernel's own mean loss (process_block, float32 logits, uint8 labels)
//   p        p = sigmoid(x) in float64 (report_lanes.hpp's exp and reciprocal) and its sum, the
//            logits of each tile first copied into a small buffer (tile_copy; so are the other
//            parts' below, but for the fused loops and the report)
//   p-direct the same on the logits where they are
//   sums     p and the lean tile's float64 sums (rows of label 1, sum p, (p - y)^2, l, y l,
//            (1 - y) l, l^2), with l a stand-in load (the loss's float32 output, here x)
//   hist11   the AUC histogram only: bin_of at 11 mantissa bits (2^17 bins a class, as the
//            report has), one byte count a row (the report's CountedAdds, wraps included)
//   hist9    the same at 9 bits (2^15 bins a class)
//   ece      the ECE bins only: p as above, its bin, (1, p) added into 4 copies of the bins
//   ecevec   the ECE sums of p only, as ten masked vector adds (its counts not formed)
//   fused    the loss (the kernel's table loop on the uint8 labels) then one loop of p, the
//            sums, both bins' slots, and the previous block's scattered adds: the best written
//   fused0   the same loop without the loss (l: the stand-in)
//   fused-h  fused without the histogram's byte counts (what they cost inside the loop)
//   fused-e  fused without the ECE adds
//   fused-c  fused without the ECE count adds (only sum p scattered: counts from elsewhere)
//   fused-he fused without any scattered add (its vector work alone)
//   report   the report's own pass (report_chunk, lean tiles), without the final merge
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#ifndef FASTBCE_TIER
#define FASTBCE_TIER tier_v4
#endif
#include "fastbce/report.hpp"

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__)
#error "tools/report_floors.cpp times the AVX-512 tier: build it with -march=x86-64-v4"
#endif

using namespace fastbce;
using namespace fastbce::FASTBCE_TIER;

namespace {

const float* g_x = nullptr;
const uint8_t* g_y = nullptr;
int64_t g_n = 0;
constexpr int kBits = kMaxMantissaBits;

// What one thread keeps from call to call (zeroed by the variants that need it).
struct Scratch {
    std::vector<uint8_t> count = std::vector<uint8_t>(size_t(2 * hist_bins(kBits)));
    std::vector<double> overflow = std::vector<double>(size_t(2 * hist_bins(kBits)));
    bool wrapped = false;
    alignas(64) double ece[kEceCopies * kEceBins * 4] = {};
    alignas(64) int32_t hslot[kTile + 16], eslot[kTile + 16];
    alignas(64) double p[kTile + 16];
    alignas(64) float l[kTile];
    alignas(64) float x[kTile];
    double sink = 0.0;
};

inline __m512d widen8(const float* x) { return _mm512_maskz_cvtps_pd(0xff, _mm256_loadu_ps(x)); }
inline __m512d p_of(__m512d xd) {
    const __m512d a = _mm512_castsi512_pd(_mm512_and_si512(_mm512_castpd_si512(xd), _mm512_set1_epi64(INT64_MAX)));
    return __m512d(sigmoid_from_exp(F64(xd), F64(exp_neg_wide(a))));
}
// (stores, not _mm512_reduce_add_pd: GCC 12 warns that its extracts use an undefined value)
inline double hsum(__m512d v) {
    alignas(64) double lanes[8];
    _mm512_store_pd(lanes, v);
    double total = 0.0;
    for (double d : lanes) total += d;
    return total;
}

// bin_of<true>(x, m) for 16 logits, 2 bin + (1 - y) (the CountedAdds entry) for 16 labels.
template <int M>
inline __m512i hslots16(const float* x, const uint8_t* y) {
    constexpr int shift = 23 - M;
    constexpr int32_t half = int32_t(32) << M;
    const __m512i bits = _mm512_loadu_si512(x);
    const __m512i a = _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff));
    const __m512i lo = _mm512_set1_epi32(int32_t(uint32_t(127 - 16) << 23));
    const __m512i hi = _mm512_set1_epi32(int32_t((uint32_t(127 + 16) << 23) - 1));
    const __m512i idx = _mm512_maskz_srli_epi32(0xffff, _mm512_sub_epi32(_mm512_maskz_min_epu32(0xffff, _mm512_maskz_max_epu32(0xffff, a, lo), hi), lo), shift);
    const __mmask16 neg = _mm512_cmplt_epi32_mask(bits, _mm512_setzero_si512());  // (x < 0; -0 is not)
    const __mmask16 negx = neg & _mm512_cmpneq_epi32_mask(a, _mm512_setzero_si512());
    const __m512i pos_bin = _mm512_add_epi32(idx, _mm512_set1_epi32(half));
    const __m512i bin = _mm512_mask_sub_epi32(pos_bin, negx, _mm512_set1_epi32(half - 1), idx);
    const __m512i label = _mm512_maskz_cvtepu8_epi32(0xffff, _mm_loadu_si128(reinterpret_cast<const __m128i*>(y)));
    return _mm512_sub_epi32(_mm512_add_epi32(_mm512_add_epi32(bin, bin), _mm512_set1_epi32(1)), label);
}

inline void count_add(Scratch& s, int32_t slot) {
    if (++s.count[size_t(slot)] == 0) [[unlikely]] {
        s.overflow[size_t(slot)] += 256.0;
        s.wrapped = true;
    }
}

void v_read(int64_t b, int64_t e, Scratch& s) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    __m512i c = _mm512_setzero_si512();
    for (int64_t j = b; j < e; j += 64) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(g_x + j));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(g_x + j + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(g_x + j + 32));
        a3 = _mm512_add_ps(a3, _mm512_loadu_ps(g_x + j + 48));
        c = _mm512_add_epi64(c, _mm512_sad_epu8(_mm512_loadu_si512(g_y + j), _mm512_setzero_si512()));
    }
    alignas(64) float f[16];
    alignas(64) int64_t k[8];
    _mm512_store_ps(f, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    _mm512_store_si512(k, c);
    for (float v : f) s.sink += double(v);
    for (int64_t v : k) s.sink += double(v);
}

Call loss_call() {
    Call c;
    c.n = g_n;
    c.threads = 2;
    c.y_true = View{g_y, 1, DType::u8};
    c.y_pred = View{g_x, 1, DType::f32};
    c.from_logits = true;
    return c;
}

void v_loss(int64_t b, int64_t e, Scratch& s) {
    static const Call c = loss_call();
    BlockOut out;
    process_block<float, true, false, Options::plain>(c, b, e, out);
    s.sink += out.sums.loss;
}

// The logits of a tile copied into a buffer that stays in L1. A tight loop of p on the logits
// where they are took 2x the time, and a copy 16 bytes past a 64-byte boundary was as fast as an
// aligned one (so not split loads): likely, behind p's long chain of operations per vector, few
// of its loads are in flight and each waits on memory, where the copy's loads stream. The fused
// loop and the report do not gain from it (the loss's loop reads the tile before them).
inline const float* tile_copy(Scratch& s, int64_t i0) {
    std::memcpy(s.x, g_x + i0, sizeof s.x);
    return s.x;
}

template <bool Copy>
void v_p(int64_t b, int64_t e, Scratch& s) {
    __m512d acc = _mm512_setzero_pd();
    for (int64_t i0 = b; i0 < e; i0 += kTile) {
        const float* x = Copy ? tile_copy(s, i0) : g_x + i0;
        for (int64_t j = 0; j < kTile; j += 8) acc = _mm512_add_pd(acc, p_of(widen8(x + j)));
    }
    s.sink += hsum(acc);
}

// The rows of label 1 among 8 (the bytes past them load as 0).
inline __mmask8 positive8(const uint8_t* y) {
    return __mmask8(_mm_test_epi8_mask(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(y)), _mm_set1_epi8(-1)) & 0xff);
}
// The lean tile's sums of 8 rows (add_tile<..., Lean>'s addends, l given).
struct Lean {
    __m512d pos = _mm512_setzero_pd(), neg = pos, sp = pos, sq = pos, sl = pos, syl = pos, snl = pos, sl2 = pos;
    inline void add(__m512d p, __m512d l, __mmask8 positive) {
        const __m512d one = _mm512_set1_pd(1.0);
        pos = _mm512_mask_add_pd(pos, positive, pos, one);
        neg = _mm512_mask_add_pd(neg, __mmask8(~positive), neg, one);
        sp = _mm512_add_pd(sp, p);
        const __m512d d = _mm512_mask_sub_pd(p, positive, p, one);
        sq = _mm512_add_pd(sq, _mm512_mul_pd(d, d));
        sl = _mm512_add_pd(sl, l);
        syl = _mm512_mask_add_pd(syl, positive, syl, l);
        snl = _mm512_mask_add_pd(snl, __mmask8(~positive), snl, l);
        sl2 = _mm512_add_pd(sl2, _mm512_mul_pd(l, l));
    }
    double total() const { return hsum(pos) + hsum(neg) + hsum(sp) + hsum(sq) + hsum(sl) + hsum(syl) + hsum(snl) + hsum(sl2); }
};


void v_sums(int64_t b, int64_t e, Scratch& s) {
    Lean acc;
    for (int64_t i0 = b; i0 < e; i0 += kTile) {
        const float* x = tile_copy(s, i0);
        for (int64_t j = 0; j < kTile; j += 8) {
            const __m512d xd = widen8(x + j);
            acc.add(p_of(xd), widen8(x + j), positive8(g_y + i0 + j));
        }
    }
    s.sink += acc.total();
}

template <int M>
void v_hist(int64_t b, int64_t e, Scratch& s) {
    for (int64_t i0 = b; i0 < e; i0 += kTile) {
        const float* x = tile_copy(s, i0);
        for (int64_t j = 0; j < kTile; j += 16) _mm512_store_si512(s.hslot + j, hslots16<M>(x + j, g_y + i0 + j));
        for (int64_t j = 0; j < kTile; ++j) count_add(s, s.hslot[j]);
    }
}

// ece_bin<true>(p) for 8 rows, the EceCopies slot 4 bin + 2 y in copy j mod 4 (j: 8 rows apart).
inline __m256i eslots8(__m512d p, const uint8_t* y) {
    const __m256i bin = _mm256_min_epi32(_mm512_maskz_cvttpd_epi32(0xff, _mm512_maskz_max_pd(0xff, _mm512_mul_pd(p, _mm512_set1_pd(10.0)),
                                                                             _mm512_setzero_pd())),
                                         _mm256_set1_epi32(kEceBins - 1));
    const __m256i label = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(y)));
    const __m256i copy = _mm256_setr_epi32(0, 40, 80, 120, 0, 40, 80, 120);
    return _mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(bin, 2), _mm256_add_epi32(label, label)), copy);
}

inline void ece_add(Scratch& s, int64_t j) {
    double* b = s.ece + s.eslot[j];
    b[0] += 1.0;
    b[1] += s.p[j];
}

void v_ece(int64_t b, int64_t e, Scratch& s) {
    for (int64_t i0 = b; i0 < e; i0 += kTile) {
        const float* x = tile_copy(s, i0);
        for (int64_t j = 0; j < kTile; j += 8) {
            const __m512d p = p_of(widen8(x + j));
            _mm512_store_pd(s.p + j, p);
            _mm256_store_si256(reinterpret_cast<__m256i*>(s.eslot + j), eslots8(p, g_y + i0 + j));
        }
        for (int64_t j = 0; j < kTile; ++j) ece_add(s, j);
    }
}

void v_ecevec(int64_t b, int64_t e, Scratch& s) {
    __m512d acc[kEceBins];
    for (auto& a : acc) a = _mm512_setzero_pd();
    for (int64_t i0 = b; i0 < e; i0 += kTile) {
        const float* x = tile_copy(s, i0);
        for (int64_t j = 0; j < kTile; j += 8) {
            const __m512d p = p_of(widen8(x + j));
            const __m256i bin = _mm256_min_epi32(
                _mm512_maskz_cvttpd_epi32(0xff, _mm512_mul_pd(p, _mm512_set1_pd(10.0))), _mm256_set1_epi32(kEceBins - 1));
            for (int k = 0; k < kEceBins; ++k) {
                const __mmask8 in = _mm256_cmpeq_epi32_mask(bin, _mm256_set1_epi32(k));
                acc[k] = _mm512_mask_add_pd(acc[k], in, acc[k], p);
            }
        }
    }
    for (auto& a : acc) s.sink += hsum(a);
}

// One loop over a tile: p, the sums, both slots, and the previous tile's held scattered adds a
// block of 16 rows at a time (beside the vector work). WithLoss: l from the kernel's loop first.
template <bool WithLoss, bool Hist = true, bool Ece = true, bool EceCount = true>
void v_fused(int64_t b, int64_t e, Scratch& s) {
    Lean acc;
    alignas(64) int32_t held_h[kTile], held_e[kTile];
    alignas(64) double held_p[kTile];
    int64_t held = 0;
    auto add_held = [&](int64_t j) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) {
            if constexpr (Hist) count_add(s, held_h[j + i]);
            if constexpr (Ece) {
                double* bb = s.ece + held_e[j + i];
                if constexpr (EceCount) bb[0] += 1.0;
                bb[1] += held_p[j + i];
            }
        }
    };
    for (int64_t i0 = b; i0 < e; i0 += kTile) {
        const float* x = g_x + i0;
        const uint8_t* y = g_y + i0;
        const float* l = x;
        if constexpr (WithLoss) {
            uint32_t max_label = 0;
            if (!plain_table_loop_u8(y, x, s.l, kTile, max_label)) std::abort();
            l = s.l;
        }
        for (int64_t j = 0; j < kTile; j += 16) {
            if (held > 0) add_held(j);
            const __m512i hs = hslots16<kBits>(x + j, y + j);
            for (int h = 0; h < 16; h += 8) {
                const __m512d p = p_of(widen8(x + j + h));
                acc.add(p, widen8(l + j + h), positive8(y + j + h));
                _mm512_store_pd(s.p + j + h, p);
                _mm256_store_si256(reinterpret_cast<__m256i*>(s.eslot + j + h), eslots8(p, y + j + h));
            }
            _mm512_store_si512(s.hslot + j, hs);
        }
        std::memcpy(held_h, s.hslot, sizeof held_h);
        std::memcpy(held_e, s.eslot, sizeof held_e);
        std::memcpy(held_p, s.p, sizeof held_p);
        held = kTile;
    }
    for (int64_t j = 0; j < held; j += 16) add_held(j);
    s.sink += acc.total();
}

// The report's pass itself over [b, e): report_chunk with its outputs per thread (not merged).
void v_report(int64_t b, int64_t e, Scratch& s) {
    static const Call c = loss_call();
    thread_local std::vector<double> sums(rs_size), hist(size_t(2 * hist_bins(kBits)));
    ReportSpec spec;
    spec.sums = sums.data();
    spec.hist = hist.data();
    HistCountBuffer counts{s.count.data(), s.overflow.data()};
    ReportPart part;
    std::fill(sums.begin(), sums.end(), 0.0);
    part.sums = sums.data();
    part.hist = hist.data();
    part.counts = &counts;
    report_chunk<float, true, false, false>(c, spec, b, e, part);
    s.sink += sums[rs_wl];
}

// The harness's slots against the report's own bin_of and ece_bin (on the first rows).
bool slots_agree(int64_t rows) {
    alignas(64) int32_t h[16], e[8];
    for (int64_t j = 0; j + 16 <= rows; j += 16) {
        _mm512_store_si512(h, hslots16<kBits>(g_x + j, g_y + j));
        for (int i = 0; i < 16; ++i)
            if (h[i] != 2 * bin_of<true>(g_x[j + i], kBits) + 1 - g_y[j + i]) return false;
        for (int half = 0; half < 16; half += 8) {
            const __m512d p = p_of(widen8(g_x + j + half));
            alignas(64) double pv[8];
            _mm512_store_pd(pv, p);
            _mm256_store_si256(reinterpret_cast<__m256i*>(e), eslots8(p, g_y + j + half));
            for (int i = 0; i < 8; ++i)
                if (e[i] != 4 * kEceBins * (i & 3) + 4 * ece_bin<true>(pv[i]) + 2 * g_y[j + half + i]) return false;
        }
    }
    return true;
}

struct Variant {
    const char* name;
    void (*fn)(int64_t, int64_t, Scratch&);
    std::vector<double> ms;
};

}  // namespace

int main(int argc, char** argv) {
    const int64_t n = (argc > 1 ? int64_t(std::atof(argv[1])) : int64_t(100000000)) / kTile * kTile;
    const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
    const int rounds = argc > 3 ? std::atoi(argv[3]) : 9;
    std::string only;  // ",name,name,"
    if (argc > 4) only.append(",").append(argv[4]).append(",");
    std::vector<float> x(size_t(n + kTile));
    std::vector<uint8_t> y(size_t(n + kTile));
    std::mt19937_64 gen(0);
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<float> uniform;
    for (int64_t i = 0; i < n; ++i) {
        x[size_t(i)] = normal(gen);
        y[size_t(i)] = uniform(gen) < 0.3f ? 1 : 0;
    }
    g_x = x.data(), g_y = y.data(), g_n = n;
    if (!slots_agree(std::min<int64_t>(n, 1 << 20))) {
        std::fprintf(stderr, "the harness's slots differ from bin_of / ece_bin\n");
        return 1;
    }
    // chunks as report.cpp cuts a call: 16, each a multiple of 65536 rows (and here of a tile)
    const int64_t unit = int64_t(1) << 16;
    const int64_t chunk = ((n + unit - 1) / unit + 15) / 16 * unit;
    std::vector<Scratch> scratch(static_cast<size_t>(threads));

    std::vector<Variant> variants = {
        {"read", v_read, {}},
        {"loss", v_loss, {}},
        {"p", v_p<true>, {}},
        {"p-direct", v_p<false>, {}},
        {"sums", v_sums, {}},
        {"hist11", v_hist<11>, {}},
        {"hist9", v_hist<9>, {}},
        {"ece", v_ece, {}},
        {"ecevec", v_ecevec, {}},
        {"fused", v_fused<true>, {}},
        {"fused0", v_fused<false>, {}},
        {"fused-h", v_fused<true, false, true>, {}},
        {"fused-e", v_fused<true, true, false>, {}},
        {"fused-c", v_fused<true, true, true, false>, {}},
        {"fused-he", v_fused<true, false, false>, {}},
        {"report", v_report, {}},
    };
    if (!only.empty()) {  // (the loss always: the ratios are to it)
        std::erase_if(variants, [&](const Variant& v) {
            std::string name(",");
            name.append(v.name).append(",");
            return name != ",loss," && only.find(name) == std::string::npos;
        });
    }
    for (int r = 0; r <= rounds; ++r) {  // (round 0: warm-up, not counted)
        for (Variant& v : variants) {
            for (Scratch& s : scratch) {  // (the counts zeroed as CallHist leaves them)
                std::fill(s.count.begin(), s.count.end(), uint8_t(0));
                std::fill(s.overflow.begin(), s.overflow.end(), 0.0);
            }
            std::atomic<int64_t> next{0};
            auto work = [&](int t) {
                for (int64_t k; (k = next.fetch_add(1)) * chunk < n;)
                    v.fn(k * chunk, std::min(n, (k + 1) * chunk), scratch[size_t(t)]);
            };
            const auto t0 = std::chrono::steady_clock::now();
            std::vector<std::thread> pool;
            for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
            work(0);
            for (std::thread& t : pool) t.join();
            const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            if (r > 0) v.ms.push_back(ms);
        }
    }
    double loss_best = 0.0, loss_median = 0.0;
    for (Variant& v : variants) {
        std::sort(v.ms.begin(), v.ms.end());
        if (std::string(v.name) == "loss") loss_best = v.ms.front(), loss_median = v.ms[v.ms.size() / 2];
    }
    std::printf("n = %lld float32 N(0,1) logits, uint8 labels, %d threads, %d rounds (ms: best, median)\n",
                static_cast<long long>(n), threads, rounds);
    for (Variant& v : variants) {
        const double best = v.ms.front(), median = v.ms[v.ms.size() / 2];
        std::printf("%-8s %8.1f %8.1f ms  %6.2fx %6.2fx the loss\n", v.name, best, median, best / loss_best,
                    median / loss_median);
    }
    double sink = 0.0;
    for (const Scratch& s : scratch) sink += s.sink;
    std::printf("(checksum %g)\n", sink);
    return 0;
}
