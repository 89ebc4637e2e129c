// Every op of backend.h, forward and backward, on every registered backend variant, against the plain
// double-precision references of backend_ops_reference.h (in the spirit of ggml's test-backend-ops).
//
// For each variant × op × shape:
//   - fresh seeded random inputs, never zero, in the variant's activation dtype (the reference reads the same
//     rounded values, so only the backend's own arithmetic is measured);
//   - outputs poisoned with NaN bytes first, so an output element the op fails to write reads as NaN (in-place
//     ops and accumulating outputs start from their random inputs instead);
//   - the op runs through the public Backend API only (alloc, copy_from_cpu, download), so a device backend
//     runs exactly this code;
//   - the result is compared by NMSE = Σ(out − ref)² / Σref² against the bound of kTolerances, and one line is
//     printed per case, with a table of the worst NMSE per op and variant at the end.
// Ops a variant does not support (supports() false) are printed as skipped, not run; a variant that supports
// no op at all fails, and F32 variants must support every op. Gradient mode checks the F32 backward ops
// against central finite differences of the reference forward; the error cases check that bad arguments
// throw an omni::Error naming the op.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"
#include "backends/backend_ops_reference.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_isa.h"
#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/grad_check_util.h"
#include "core/half.h"
#include "support/error_of.h"
#ifdef OMNI_HAVE_CUDA
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_runtime_info.h"
#endif

namespace omni {
namespace {

using ref::Vec;

// ---------------------------------------------------------------------------------------------------------
// The variants under test. A variant is a backend with one activation dtype, plus a hook that runs before each
// of its tests (the CPU ones pick a SIMD path; the fixture puts the default path back afterwards). A new
// backend plugs in with one line here.
struct Variant {
  std::string name;
  std::function<std::unique_ptr<Backend>()> make;
  std::function<void()> setup;  // may be empty
  // Why the variant cannot run on this machine (no GPU), or empty; its tests then report a skip.
  std::function<std::string()> unavailable;
};

std::vector<Variant> registered_variants() {
  std::vector<Variant> v;
  for (CpuIsa isa : compiled_cpu_isas())  // cpu-f32-scalar, cpu-f32-avx2, cpu-f32-avx512 as compiled here
    v.push_back({"cpu-f32-" + std::string(cpu_isa_name(isa)),
                 [] { return std::make_unique<CpuBackend>(DType::F32); }, [isa] { set_active_cpu_isa(isa); }, nullptr});
  // A16 runs: 16-bit activations on the default (fastest) SIMD path.
  v.push_back({"cpu-bf16", [] { return std::make_unique<CpuBackend>(DType::BF16); }, nullptr, nullptr});
  v.push_back({"cpu-f16", [] { return std::make_unique<CpuBackend>(DType::F16); }, nullptr, nullptr});
#ifdef OMNI_HAVE_CUDA
  // The CUDA backend on device 0, one line per activation dtype (tests/backends/* link omni_cuda in a CUDA build).
  const auto no_gpu = [] { return cuda::device_count() == 0 ? std::string("no CUDA device on this machine") : ""; };
  const std::pair<const char*, DType> dtypes[] = {{"cuda-f32", DType::F32}, {"cuda-bf16", DType::BF16},
                                                 {"cuda-f16", DType::F16}};
  for (const auto& [name, dt] : dtypes)
    v.push_back({name, [dt = dt] { return std::make_unique<cuda::CudaBackend>(0, dt); }, nullptr, no_gpu});
#endif
  return v;
}

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

// ---------------------------------------------------------------------------------------------------------
// NMSE bounds, per check and activation dtype. Where the numbers come from:
//   - Exact ops (embedding, copy, copy_rows) move bits: any difference is a bug, the bound is 0.
//   - F32: unit roundoff u = 2^-24, u² ≈ 3.6e-15. Elementwise ops round a few times per output (exp, sin,
//     the final store): NMSE ≈ u² (measured ≤ 2e-14); bound 1e-12. Reductions of length n in f32 (dot
//     products, the attention sums, rms_norm_backward's row dot) err by ~√n·u relative to their terms, more
//     after cancellation: NMSE ~ n·u²·(cancellation)², ~1e-12 for n of a few hundred (measured ≤ 1e-13);
//     bound 1e-10.
//   - W4A16 is compared with the weight dequantized in f64: codes and f16 scales are exact, so only the f32
//     accumulation remains (and the kernel's zero-point correction Σx·code − zero·Σx, which cancels); bound
//     1e-10 as for the other f32 reductions.
//   - BF16 activations: inputs are bf16 already (the reference reads them), the op computes in f32 and rounds
//     its output once to bf16: 8 significant bits, relative error ≤ 2^-8, so NMSE ≤ 2^-16 ≈ 1.5e-5 even for
//     a single element, ≈ 2.5e-6 on average over many (measured ≤ 7e-6); bound 3e-5. (A second rounding
//     inside the op, e.g. a bf16 intermediate, would roughly double the average and may pass: this bound
//     catches wrong arithmetic, not double rounding.)
//   - F16 activations: 11 significant bits, relative error ≤ 2^-11: NMSE ≤ 2.4e-7 for one element, ≈ 4e-8 on
//     average (measured ≤ 1.1e-7); bound 1e-6.
//   - Gradient mode (the F32 backward against central differences of the f64 reference, h = 1e-6): the
//     differences err by ~h² ≈ 1e-12 relative (truncation) plus ~1e-16·|L|/h ≈ 1e-9 absolute (rounding),
//     NMSE ~1e-18, far below the f32 rounding of the backward itself; bound 1e-10 as for f32 reductions.
// Training ops are F32 by contract (CpuBackend supports none of them with 16-bit activations); their 16-bit
// columns only matter for a backend that claims one.
struct Tolerance {
  const char* check;        // the label printed for a case
  Op op;                    // the family supports() must accept for the variant's activation dtype
  std::optional<Op> also;   // a second family the case needs (the saving forms belong to training)
  double f32, bf16, f16;
};

constexpr double kExact = 0.0, kElementwise = 1e-12, kReduction = 1e-10, kBf16 = 3e-5, kF16 = 1e-6;
// The CPU W4A16 kernels for small batches round f32 activations to 16-bit integers, one scale max|x|/32767 per 128
// inputs (w4a16_matmul.h): uniform rounding error of variance s²/12, so NMSE ≈ (max|x|/rms x)² / (12·32767²),
// 2.3e-10 for uniform inputs (max/rms = √3) and ~1e-9 for max/rms up to 4 (measured ≤ 2.8e-10 on these cases); bound 1e-8.
constexpr double kInt16Activations = 1e-8;

const Tolerance kTolerances[] = {
    {"linear", Op::Linear, {}, kReduction, kBf16, kF16},
    {"linear[w4a16]", Op::Linear, {}, kInt16Activations, kBf16, kF16},
    {"linear_dense", Op::LinearDense, {}, kReduction, kBf16, kF16},
    {"embedding", Op::Embedding, {}, kExact, kExact, kExact},
    {"rms_norm", Op::RmsNorm, {}, kElementwise, kBf16, kF16},
    {"rms_norm[rstd]", Op::RmsNorm, Op::RmsNormBackward, kElementwise, kBf16, kF16},
    {"rope", Op::Rope, {}, kElementwise, kBf16, kF16},
    // The fused inference ops, supported where their parts are: the composition's rounding, so the same bounds.
    {"add_rms_norm", Op::Add, Op::RmsNorm, kElementwise, kBf16, kF16},
    {"rms_norm_rope", Op::RmsNorm, Op::Rope, kElementwise, kBf16, kF16},
    {"rms_norm_rope[rows]", Op::RmsNorm, Op::Rope, kElementwise, kBf16, kF16},
    {"attention[kv]", Op::Attention, {}, kReduction, kBf16, kF16},
    {"attention[seq]", Op::Attention, {}, kReduction, kBf16, kF16},
    {"attention[seq+lse]", Op::Attention, Op::AttentionBackward, kReduction, kBf16, kF16},
    {"silu_mul", Op::SiluMul, {}, kElementwise, kBf16, kF16},
    {"add", Op::Add, {}, kElementwise, kBf16, kF16},
    {"copy", Op::Copy, {}, kExact, kExact, kExact},
    // Between float dtypes: one round-to-nearest-even from the source value, as the reference rounds it.
    {"copy[convert]", Op::Copy, {}, kExact, kExact, kExact},
    {"copy_rows", Op::CopyRows, {}, kExact, kExact, kExact},
    {"softmax", Op::Softmax, {}, kElementwise, kBf16, kF16},
    {"layer_norm", Op::LayerNorm, {}, kReduction, kBf16, kF16},
    {"gelu_tanh", Op::GeluTanh, {}, kElementwise, kBf16, kF16},
    {"modulate", Op::Modulate, {}, kElementwise, kBf16, kF16},
    {"attention[full]", Op::Attention, {}, kReduction, kBf16, kF16},
    {"linear_backward", Op::LinearBackward, {}, kReduction, kBf16, kF16},
    {"rms_norm_backward", Op::RmsNormBackward, {}, kReduction, kBf16, kF16},
    {"rope_backward", Op::RopeBackward, {}, kElementwise, kBf16, kF16},
    {"attention_backward", Op::AttentionBackward, {}, kReduction, kBf16, kF16},
    {"silu_mul_backward", Op::SiluMulBackward, {}, kElementwise, kBf16, kF16},
    {"masked_mse_loss", Op::MaskedMseLoss, {}, kElementwise, kBf16, kF16},
    {"grad:linear", Op::LinearBackward, {}, kReduction, kBf16, kF16},
    {"grad:rms_norm", Op::RmsNormBackward, {}, kReduction, kBf16, kF16},
    {"grad:rope", Op::RopeBackward, {}, kReduction, kBf16, kF16},
    {"grad:attention", Op::AttentionBackward, {}, kReduction, kBf16, kF16},
    {"grad:silu_mul", Op::SiluMulBackward, {}, kReduction, kBf16, kF16},
    {"grad:masked_mse_loss", Op::MaskedMseLoss, {}, kReduction, kBf16, kF16},
    // The diffusion transformers' backward ops (F32 only; FLUX blocks), against finite differences as above.
    {"grad:layer_norm", Op::LayerNormBackward, {}, kReduction, kBf16, kF16},
    {"grad:gelu_tanh", Op::GeluTanhBackward, {}, kReduction, kBf16, kF16},
    {"grad:modulate", Op::ModulateBackward, {}, kReduction, kBf16, kF16},
    {"grad:gated_add", Op::GatedAddBackward, {}, kReduction, kBf16, kF16},
    {"grad:rope_interleaved", Op::RopeInterleavedBackward, {}, kReduction, kBf16, kF16},
    // AutoRound parameter ops: the shared QDQ formula (backends/qdq_formula.h) makes them exact on every backend.
    {"fake_quant", Op::FakeQuant, {}, kExact, kExact, kExact},
    {"fake_quant_backward", Op::FakeQuantBackward, {}, kExact, kExact, kExact},
    {"clamp", Op::Clamp, {}, kExact, kExact, kExact},
    {"sign_step", Op::SignStep, {}, kExact, kExact, kExact},
    {"fill", Op::Fill, {}, kExact, kExact, kExact},
    // The diffusion-transformer, text-encoder and VAE ops. Elementwise ones as above; attention_with_bias and
    // group_norm are reductions (f32 sums). conv2d is a reduction too; on the CUDA backend with 16-bit
    // activations its weights are also rounded to the activation dtype for the tensor cores (the CPU multiplies
    // the f32 weights): relative error ≤ 2^-9 (BF16) per weight, ~uniform, so NMSE ≈ 2^-18 / 3 ≈ 1.3e-6 from the
    // weights plus ≈ 2.5e-6 from the output's rounding, well inside kBf16 (F16: 2^-24 / 3 ≈ 2e-8 beside 4e-8,
    // inside kF16); measured on the H200: 7.6e-6 (BF16) and 1.2e-7 (F16) against the CPU's 3.8e-6 and 6.3e-8.
    // upsample and transpose move bits.
    {"silu", Op::Silu, {}, kElementwise, kBf16, kF16},
    {"quick_gelu", Op::QuickGelu, {}, kElementwise, kBf16, kF16},
    {"mul", Op::Mul, {}, kElementwise, kBf16, kF16},
    {"gated_add", Op::GatedAdd, {}, kElementwise, kBf16, kF16},
    {"rope_interleaved", Op::RopeInterleaved, {}, kElementwise, kBf16, kF16},
    {"attention_with_bias", Op::AttentionWithBias, {}, kReduction, kBf16, kF16},
    {"conv2d", Op::Conv2d, {}, kReduction, kBf16, kF16},
    {"conv2d[bands]", Op::Conv2d, {}, kReduction, kBf16, kF16},
    {"group_norm", Op::GroupNorm, {}, kReduction, kBf16, kF16},
    {"upsample_nearest2x", Op::UpsampleNearest2x, {}, kExact, kExact, kExact},
    {"transpose", Op::Transpose, {}, kExact, kExact, kExact},
};

// (string_view by value: a reference parameter bound to a temporary makes g++ 13 warn -Wdangling-reference.)
const Tolerance& tolerance_of(std::string_view check) {
  for (const Tolerance& t : kTolerances)
    if (check == t.check) return t;
  throw std::logic_error("backend_ops_test: no tolerance for check " + std::string(check));
}

double bound_for(const Tolerance& t, DType dt) {
  return dt == DType::F32 ? t.f32 : dt == DType::BF16 ? t.bf16 : t.f16;
}

constexpr Op kAllOps[] = {
    Op::Linear,    Op::LinearDense,       Op::LinearBackward,  Op::Embedding,       Op::RmsNorm,
    Op::RmsNormBackward, Op::Rope,        Op::RopeBackward,    Op::Attention,       Op::AttentionBackward,
    Op::SiluMul,   Op::SiluMulBackward,   Op::Add,             Op::Copy,            Op::CopyRows,
    Op::Softmax,   Op::MaskedMseLoss,     Op::FakeQuant,       Op::FakeQuantBackward, Op::Clamp,
    Op::SignStep,  Op::Fill,              Op::LayerNorm,       Op::GeluTanh,        Op::Modulate,
    Op::Silu,      Op::GatedAdd,          Op::RopeInterleaved, Op::Conv2d,          Op::GroupNorm,
    Op::UpsampleNearest2x, Op::Transpose, Op::QuickGelu,       Op::Mul,             Op::AttentionWithBias,
};

// ---------------------------------------------------------------------------------------------------------
// The summary: worst NMSE per (variant, check), printed when the program ends.
struct Stat {
  double worst = 0.0;
  int ran = 0, skipped = 0, failed = 0;
};

struct Summary {
  std::vector<std::string> variants, checks;  // in first-seen order
  std::map<std::string, std::map<std::string, Stat>> stats;
  Stat& at(const std::string& variant, const std::string& check) {
    if (std::find(variants.begin(), variants.end(), variant) == variants.end()) variants.push_back(variant);
    if (std::find(checks.begin(), checks.end(), check) == checks.end()) checks.push_back(check);
    return stats[variant][check];
  }
};

Summary& summary() {
  static Summary s;
  return s;
}

class SummaryPrinter : public ::testing::Environment {
 public:
  void TearDown() override {
    Summary& s = summary();
    if (s.variants.empty()) return;
    std::printf("\nbackend_ops summary: worst NMSE per op (cases run; '-' = skipped, '!' = failed)\n%-22s",
                "check");
    for (const auto& v : s.variants) std::printf(" %17s", v.c_str());
    std::printf("\n");
    for (const auto& c : s.checks) {
      std::printf("%-22s", c.c_str());
      for (const auto& v : s.variants) {
        const Stat& st = s.stats[v][c];
        char cell[64];
        if (st.ran == 0)
          std::snprintf(cell, sizeof cell, "-");
        else
          std::snprintf(cell, sizeof cell, "%s%.1e (%d)", st.failed ? "!" : "", st.worst, st.ran);
        std::printf(" %17s", cell);
      }
      std::printf("\n");
    }
    std::fflush(stdout);
  }
};

[[maybe_unused]] ::testing::Environment* const kSummaryEnv =
    ::testing::AddGlobalTestEnvironment(new SummaryPrinter);

// ---------------------------------------------------------------------------------------------------------
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// One (variant, check, shape) case: collects the NMSE of each output, prints one line, records a failure.
class Case {
 public:
  Case(std::string variant, const Tolerance& tol, DType dt, std::string shape)
      : variant_(std::move(variant)), tol_(tol), shape_(std::move(shape)), bound_(bound_for(tol, dt)) {}

  void compare(const char* output, const Vec& got, const Vec& want) {
    double e = 0.0;
    if (got.size() != want.size()) {
      fail(std::string(output) + ": " + std::to_string(got.size()) + " values, expected " +
           std::to_string(want.size()));
      return;
    }
    e = ref::nmse(got, want);
    detail_ += std::string(" ") + output + " " + fmt(e);
    if (!(e <= bound_)) {  // NaN (an unwritten poisoned value) fails too
      ok_ = false;
      ADD_FAILURE() << variant_ << " " << tol_.check << " " << shape_ << ": " << output << " NMSE " << e
                    << " exceeds " << bound_ << worst_elements(got, want);
    }
    worst_ = std::isnan(e) || std::isnan(worst_) ? kNaN : std::max(worst_, e);
  }
  void compare_scalar(const char* output, double got, double want) { compare(output, Vec{got}, Vec{want}); }

  void fail(const std::string& why) {
    ok_ = false;
    detail_ += " FAILED: " + why;
    worst_ = kNaN;
    ADD_FAILURE() << variant_ << " " << tol_.check << " " << shape_ << ": " << why;
  }

  void skip(const std::string& why) {
    std::printf("  [%-15s] %-20s %-46s skipped (%s)\n", variant_.c_str(), tol_.check, shape_.c_str(), why.c_str());
    summary().at(variant_, tol_.check).skipped++;
  }

  void finish() {
    char bound[32];
    std::snprintf(bound, sizeof bound, "%.0e", bound_);
    std::printf("  [%-15s] %-20s %-46s NMSE%s  (max %s)  %s\n", variant_.c_str(), tol_.check, shape_.c_str(),
                detail_.c_str(), bound_ == 0 ? "0, exact" : bound, ok_ ? "OK" : "FAIL");
    Stat& st = summary().at(variant_, tol_.check);
    st.ran++;
    if (!ok_) st.failed++;
    st.worst = std::isnan(worst_) || std::isnan(st.worst) ? kNaN : std::max(st.worst, worst_);
  }

 private:
  static std::string fmt(double e) {
    if (std::isnan(e)) return "NaN";
    char b[32];
    std::snprintf(b, sizeof b, "%.2e", e);
    return b;
  }
  // Where it went wrong, for the failure message: the first NaN, and the element that differs most.
  static std::string worst_elements(const Vec& got, const Vec& want) {
    std::string s;
    for (size_t i = 0; i < got.size(); ++i)
      if (std::isnan(got[i])) {
        s += " (first NaN at element " + std::to_string(i) + ")";
        break;
      }
    size_t worst = 0;
    for (size_t i = 1; i < got.size(); ++i)
      if (!(std::fabs(got[i] - want[i]) <= std::fabs(got[worst] - want[worst]))) worst = i;
    if (!got.empty())
      s += " (largest difference at element " + std::to_string(worst) + ": " + std::to_string(got[worst]) +
           " vs " + std::to_string(want[worst]) + ")";
    return s;
  }

  std::string variant_;
  const Tolerance& tol_;
  std::string shape_;
  double bound_;
  double worst_ = 0.0;
  bool ok_ = true;
  std::string detail_;
};

// A random tensor as handed to the backend (in its dtype) and its values as the reference reads them.
struct Input {
  Tensor host;  // CPU, in the dtype
  Tensor dev;   // on the backend (a copy: in-place ops never touch `host`)
  Vec val;      // the rounded values in double
};

Vec values_of(const Tensor& host) {
  const Tensor f = host.dtype() == DType::F32 ? host : host.to(DType::F32);
  return Vec(f.data<float>(), f.data<float>() + f.numel());
}

double round_to(DType dt, double v) {
  const float f = static_cast<float>(v);
  return dt == DType::BF16 ? round_to_bf16(f) : dt == DType::F16 ? round_to_f16(f) : f;
}

Vec rounded(Vec v, DType dt) {
  for (double& x : v) x = round_to(dt, x);
  return v;
}

Vec plus(const Vec& a, const Vec& b) { return ref::add(a, b); }

std::string dims(const Shape& s) { return shape_str(s); }

// ---------------------------------------------------------------------------------------------------------
class BackendOps : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    saved_isa_ = active_cpu_isa();
    if (GetParam().unavailable) {
      const std::string why = GetParam().unavailable();
      if (!why.empty()) GTEST_SKIP() << GetParam().name << ": " << why;
    }
    if (GetParam().setup) GetParam().setup();
    backend_ = GetParam().make();
    seed_ = 1;  // every variant sees the same data
  }
  void TearDown() override {
    backend_.reset();
    set_active_cpu_isa(saved_isa_);
  }

  Backend& be() { return *backend_; }
  DType adt() const { return backend_->activation_dtype(); }
  const std::string& variant() const { return GetParam().name; }

  // Runs one case unless the variant does not support its op families, in which case it is printed as skipped.
  void run_case(const char* check, const std::string& shape, const std::function<void(Case&)>& body) {
    const Tolerance& tol = tolerance_of(check);
    Case c(variant(), tol, adt(), shape);
    for (std::optional<Op> op : {std::optional<Op>(tol.op), tol.also}) {
      if (op && !be().supports(*op, adt())) {
        c.skip(std::string(op_name(*op)) + " not supported with " + std::string(dtype_name(adt())));
        return;
      }
    }
    try {
      body(c);
    } catch (const std::exception& e) {
      c.fail(std::string("threw: ") + e.what());
    }
    c.finish();
  }

  // dst (on the backend) = a copy of a host tensor.
  Tensor to_dev(const Tensor& host) {
    Tensor t = be().alloc(host.shape(), host.dtype());
    be().copy_from_cpu(t, host);
    return t;
  }
  // An output buffer filled with NaN bytes (0xFF..: a NaN in f32, bf16 and f16 alike).
  Tensor poisoned(const Shape& shape, DType dt) {
    Tensor host = Tensor::empty(shape, dt);
    std::memset(host.raw(), 0xFF, host.nbytes());
    return to_dev(host);
  }
  Tensor ints(const std::vector<int32_t>& v) {
    return to_dev(Tensor::from_i32(v, {static_cast<int64_t>(v.size())}));
  }
  Tensor bytes(const std::vector<uint8_t>& v) {
    Tensor host = Tensor::empty({static_cast<int64_t>(v.size())}, DType::U8);
    std::memcpy(host.raw(), v.data(), v.size());
    return to_dev(host);
  }
  // Uniform in ±[scale/64, scale] (never zero), rounded to dt.
  Input input(const Shape& shape, DType dt, float scale = 1.0f) {
    Input in;
    const auto f = test::random_floats(static_cast<size_t>(shape_numel(shape)), seed_++, scale);
    in.host = Tensor::from_f32(f, shape).to(dt);
    in.dev = to_dev(in.host);
    in.val = values_of(in.host);
    return in;
  }
  // The backend's tensor as doubles.
  Vec fetch(const Tensor& t) {
    const Tensor h = be().download(t);
    return Vec(h.data<float>(), h.data<float>() + h.numel());
  }

  CpuIsa saved_isa_ = CpuIsa::Scalar;
  std::unique_ptr<Backend> backend_;
  uint32_t seed_ = 1;
};

std::string variant_test_name(const ::testing::TestParamInfo<Variant>& info) {
  std::string s = info.param.name;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

// ---------------------------------------------------------------------------------------------------------
// What each variant supports.

TEST_P(BackendOps, SupportsSomeOpAndF32SupportsAll) {
  std::string unsupported;
  int supported = 0;
  for (Op op : kAllOps) {
    const bool s = be().supports(op, adt());
    if (s)
      ++supported;
    else
      unsupported += std::string(unsupported.empty() ? "" : " ") + op_name(op);
    if (adt() == DType::F32) {
      EXPECT_TRUE(s) << variant() << " must support " << op_name(op) << " with F32";
    }
  }
  std::printf("  [%-15s] %s activations: supports %d/%zu ops; not: %s\n", variant().c_str(),
              std::string(dtype_name(adt())).c_str(), supported, std::size(kAllOps),
              unsupported.empty() ? "-" : unsupported.c_str());
  EXPECT_GT(supported, 0) << variant() << " supports no op at all with " << dtype_name(adt());
}

// ---------------------------------------------------------------------------------------------------------
// Forward ops.

TEST_P(BackendOps, Linear) {
  struct Shp {
    Shape x;
    int64_t N;
    DType w;
    std::optional<DType> bias;
  };
  const Shp shapes[] = {
      {{5, 67}, 33, DType::F32, DType::F32},
      {{1, 64}, 17, DType::BF16, {}},
      {{2, 3, 40}, 65, DType::F16, DType::BF16},
      {{4, 256}, 48, DType::BF16, DType::F16},
      {{130, 96}, 70, DType::F32, {}},
  };
  for (const Shp& s : shapes) {
    const std::string label = "x=" + dims(s.x) + " N=" + std::to_string(s.N) + " w=" + std::string(dtype_name(s.w)) +
                              " bias=" + (s.bias ? std::string(dtype_name(*s.bias)) : "none");
    run_case("linear", label, [&](Case& c) {
      const int64_t K = s.x.back(), M = shape_numel(s.x) / K;
      const Input x = input(s.x, adt());
      const Input w = input({s.N, K}, s.w);
      LinearWeight lw;
      lw.dense = w.host;
      Vec bias;
      if (s.bias) {
        const Input b = input({s.N}, *s.bias);
        lw.bias = b.host;
        bias = b.val;
      }
      const auto prepared = be().prepare_linear(lw);
      Shape ys = s.x;
      ys.back() = s.N;
      Tensor y = poisoned(ys, adt());
      be().linear(y, x.dev, *prepared);
      c.compare("y", fetch(y), ref::linear(x.val, w.val, bias, M, K, s.N));
    });
  }
}

// A 4-bit grouped weight (GPTQ packing of linear_weight.h) with random codes, f16 scales (negative ones
// included) and zero points, and its dequantized dense form by the reference.
struct Int4Weight {
  GroupedIntWeight w;
  Vec dense;  // [N, K]
};

Int4Weight make_int4(int64_t K, int64_t N, int64_t group, bool random_zeros, bool act_order, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> code(0, 15);
  Int4Weight q;
  q.w.bits = 4;
  q.w.in_features = K;
  q.w.out_features = N;
  q.w.group_size = group;
  const int64_t G = q.w.num_groups();
  q.w.qweight = Tensor::zeros({K / 8, N}, DType::I32);
  uint32_t* words = q.w.qweight.data<uint32_t>();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n)
      words[(k / 8) * N + n] |= static_cast<uint32_t>(code(rng)) << (4 * (k % 8));
  q.w.scales = Tensor::from_f32(test::random_floats(static_cast<size_t>(G * N), seed + 1, 0.05f), {G, N})
                   .to(DType::F16);
  q.w.zeros = Tensor::empty({G, N}, DType::U8);
  for (int64_t i = 0; i < G * N; ++i) q.w.zeros.data<uint8_t>()[i] = static_cast<uint8_t>(random_zeros ? code(rng) : 8);
  std::vector<int32_t> g_idx;
  if (act_order) {  // every group keeps `group` inputs, scattered over K
    for (int64_t k = 0; k < K; ++k) g_idx.push_back(static_cast<int32_t>(k / group));
    std::shuffle(g_idx.begin(), g_idx.end(), rng);
    q.w.g_idx = Tensor::from_i32(g_idx, {K});
  }
  q.dense = ref::dequantize_int4(words, values_of(q.w.scales), q.w.zeros.data<uint8_t>(),
                                 act_order ? g_idx.data() : nullptr, K, N, group);
  return q;
}

TEST_P(BackendOps, LinearW4A16) {
  struct Shp {
    int64_t M, K, N, group;
    bool random_zeros, act_order, bias;
  };
  // The first five have shapes some GPU kernel tiles do not take (the backend must fall back, not fail); the
  // rest are shapes the CUDA W4A16 kernels take, which a CUDA variant with 16-bit activations must run on them
  // (M past each small-M tile, one large-M case, act-order, per-channel, asymmetric).
  const Shp shapes[] = {
      {5, 128, 33, 32, true, false, true},    // odd N, in-order groups
      {1, 96, 70, 96, false, false, false},   // one row (decode), per-channel group, symmetric zeros
      {3, 64, 20, 16, true, true, true},      // act-order g_idx
      {7, 256, 130, 64, true, false, false},  // three output tiles of 64, the last one partial
      {1, 128, 150, 64, true, false, true},   // decode over an odd number of tiles (AVX-512 pairs them)
      {1, 256, 128, 128, false, false, false},  // kernel: decode, symmetric
      {17, 512, 192, 64, true, false, true},    // kernel: asymmetric, bias, M past the first tile
      {65, 256, 64, 256, true, false, false},   // kernel: per-channel, the large-M tile
      {33, 384, 128, 128, true, true, true},    // kernel: act-order
      {257, 128, 256, 32, false, false, true},  // kernel: group 32, M = 257
  };
  constexpr size_t kFirstKernelShape = 5;
  for (const Shp& s : shapes) {
    const std::string label = "M=" + std::to_string(s.M) + " K=" + std::to_string(s.K) + " N=" + std::to_string(s.N) +
                              " g=" + std::to_string(s.group) + (s.random_zeros ? " zeros=rand" : " zeros=8") +
                              (s.act_order ? " act-order" : "") + (s.bias ? " bias" : "");
    run_case("linear[w4a16]", label, [&](Case& c) {
      const Input x = input({s.M, s.K}, adt());
      const Int4Weight q = make_int4(s.K, s.N, s.group, s.random_zeros, s.act_order, seed_++);
      LinearWeight lw;
      lw.quantized = q.w;
      lw.is_quantized = true;
      Vec bias;
      if (s.bias) {
        const Input b = input({s.N}, DType::F16);
        lw.bias = b.host;
        bias = b.val;
      }
      const auto prepared = be().prepare_linear(lw);
      const bool kernel_shape = &s - shapes >= static_cast<long>(kFirstKernelShape);
      if (variant().rfind("cuda", 0) == 0 && adt() != DType::F32 && kernel_shape) {
        EXPECT_EQ(prepared->layout(), "w4a16") << variant() << " " << label << ": the W4A16 kernel should take it";
      }
      Tensor y = poisoned({s.M, s.N}, adt());
      be().linear(y, x.dev, *prepared);
      c.compare("y", fetch(y), ref::linear(x.val, q.dense, bias, s.M, s.K, s.N));
    });
  }
}

TEST_P(BackendOps, LinearDense) {
  struct Shp {
    Shape x;
    int64_t N;
    bool bias;
  };
  const Shp shapes[] = {
      {{5, 67}, 33, true}, {{1, 16}, 7, false}, {{2, 3, 40}, 65, true}, {{130, 96}, 70, false},
      {{3, 300}, 20, true},   // K over one gemm panel (KC = 256)
      {{2, 8}, 1030, false},  // N over one gemm block (NC = 1024)
  };
  for (const Shp& s : shapes) {
    run_case("linear_dense", "x=" + dims(s.x) + " N=" + std::to_string(s.N) + (s.bias ? " bias" : ""), [&](Case& c) {
      const int64_t K = s.x.back(), M = shape_numel(s.x) / K;
      const Input x = input(s.x, adt()), w = input({s.N, K}, adt());
      std::optional<Input> b;
      if (s.bias) b = input({s.N}, adt());
      Shape ys = s.x;
      ys.back() = s.N;
      Tensor y = poisoned(ys, adt());
      be().linear_dense(y, x.dev, w.dev, b ? &b->dev : nullptr);
      c.compare("y", fetch(y), ref::linear(x.val, w.val, b ? b->val : Vec{}, M, K, s.N));
    });
  }
}

TEST_P(BackendOps, Embedding) {
  struct Shp {
    int64_t V, D;
    DType table;
    std::vector<int32_t> ids;
  };
  const Shp shapes[] = {
      {50, 33, DType::F32, {7, 0, 49, 7, 12}},
      {50, 33, DType::BF16, {3, 49, 0, 25, 1}},
      {50, 33, DType::F16, {49}},
      {1000, 64, DType::BF16, {999, 500, 0, 1, 2, 998, 31}},
  };
  for (const Shp& s : shapes) {
    const std::string label = "table=[" + std::to_string(s.V) + ", " + std::to_string(s.D) + "] " +
                              std::string(dtype_name(s.table)) + " T=" + std::to_string(s.ids.size());
    run_case("embedding", label, [&](Case& c) {
      const Input table = input({s.V, s.D}, s.table);
      Tensor y = poisoned({static_cast<int64_t>(s.ids.size()), s.D}, adt());
      be().embedding(y, ints(s.ids), table.dev);
      c.compare("y", fetch(y), rounded(ref::embedding(table.val, s.ids, s.D), adt()));
    });
  }
}

TEST_P(BackendOps, RmsNorm) {
  struct Shp {
    Shape x;
    DType w;
    bool in_place;
  };
  const Shp shapes[] = {
      {{5, 67}, DType::F32, false},
      {{1, 128}, DType::BF16, false},
      {{2, 3, 4, 10}, DType::F32, false},  // the per-head q/k norm layout
      {{3, 33}, DType::BF16, true},
  };
  const float eps = 1e-6f;
  for (const Shp& s : shapes) {
    const std::string label =
        "x=" + dims(s.x) + " w=" + std::string(dtype_name(s.w)) + (s.in_place ? " y=x" : "");
    run_case("rms_norm", label, [&](Case& c) {
      const int64_t D = s.x.back(), rows = shape_numel(s.x) / D;
      Input x = input(s.x, adt(), 2.0f);
      const Input w = input({D}, s.w);
      Tensor y = s.in_place ? x.dev : poisoned(s.x, adt());
      be().rms_norm(y, x.dev, w.dev, eps);
      c.compare("y", fetch(y), ref::rms_norm(x.val, w.val, rows, D, eps));
    });
  }
  // The training form saves rstd.
  const Shape rstd_shapes[] = {{5, 67}, {2, 3, 4, 10}, {1, 6}};
  for (const Shape& xs : rstd_shapes) {
    run_case("rms_norm[rstd]", "x=" + dims(xs) + " w=F32", [&](Case& c) {
      const int64_t D = xs.back(), rows = shape_numel(xs) / D;
      const Input x = input(xs, adt(), 2.0f), w = input({D}, adt());
      Tensor y = poisoned(xs, adt()), rstd = poisoned({rows}, DType::F32);
      be().rms_norm(y, x.dev, w.dev, eps, &rstd);
      Vec rstd_ref;
      const Vec y_ref = ref::rms_norm(x.val, w.val, rows, D, eps, &rstd_ref);
      c.compare("y", fetch(y), y_ref);
      c.compare("rstd", fetch(rstd), rstd_ref);
    });
  }
}

struct RopeShape {
  Shape x;  // [..., N, H, hd]
  std::vector<int32_t> pos;
  float theta;
};

// Scattered positions (one angle per row), a single row far out, and a training batch whose rows repeat
// positions 0..T−1 (the backend may use a table then).
const std::vector<RopeShape>& rope_shapes() {
  static const std::vector<RopeShape> s = {
      {{5, 3, 10}, {0, 17, 3, 1000, 5}, 10000.f},
      {{1, 2, 6}, {4095}, 1e6f},
      {{2, 6, 2, 16}, {0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5}, 10000.f},
      {{4, 1, 64}, {7, 2, 100, 31}, 1e6f},
  };
  return s;
}

std::string rope_label(const RopeShape& s) {
  std::string p;
  for (size_t i = 0; i < s.pos.size() && i < 6; ++i) {
    if (i) p += ',';
    p += std::to_string(s.pos[i]);
  }
  if (s.pos.size() > 6) p += ",..";
  char theta[32];
  std::snprintf(theta, sizeof theta, "%g", static_cast<double>(s.theta));
  return "x=" + dims(s.x) + " pos=" + p + " theta=" + theta;
}

TEST_P(BackendOps, Rope) {
  for (const RopeShape& s : rope_shapes()) {
    run_case("rope", rope_label(s), [&](Case& c) {
      const int64_t hd = s.x.back(), H = s.x[s.x.size() - 2], N = shape_numel(s.x) / (H * hd);
      Input x = input(s.x, adt());
      be().rope(x.dev, ints(s.pos), RopeParams{s.theta});  // in place
      c.compare("x", fetch(x.dev), ref::rope(x.val, s.pos, N, H, hd, s.theta, false));
    });
  }
}

TEST_P(BackendOps, AddRmsNorm) {
  struct Shp {
    Shape x;
    DType w;
    int alias;  // sum aliases: 0 nothing, 1 a, 2 b
  };
  const Shp shapes[] = {{{5, 67}, DType::F32, 0}, {{1, 4096}, DType::BF16, 1}, {{3, 33}, DType::BF16, 2},
                        {{2, 3, 130}, DType::F32, 1}};
  const float eps = 1e-6f;
  for (const Shp& s : shapes) {
    const std::string label = "x=" + dims(s.x) + " w=" + std::string(dtype_name(s.w)) +
                              (s.alias == 1 ? " sum=a" : s.alias == 2 ? " sum=b" : "");
    run_case("add_rms_norm", label, [&](Case& c) {
      const int64_t D = s.x.back(), rows = shape_numel(s.x) / D;
      const Input a = input(s.x, adt(), 2.0f), b = input(s.x, adt(), 1.5f), w = input({D}, s.w);
      Tensor sum = s.alias == 1 ? a.dev : s.alias == 2 ? b.dev : poisoned(s.x, adt());
      Tensor y = poisoned(s.x, adt());
      be().add_rms_norm(sum, y, a.dev, b.dev, w.dev, eps);
      const Vec sum_ref = rounded(plus(a.val, b.val), adt());  // the norm reads the stored (rounded) sum
      c.compare("sum", fetch(sum), sum_ref);
      c.compare("y", fetch(y), ref::rms_norm(sum_ref, w.val, rows, D, eps));
    });
  }
}

TEST_P(BackendOps, RmsNormRope) {
  struct Shp {
    Shape x;  // [.., N, H, hd]
    std::vector<int32_t> pos;
    DType w;
    bool in_place;
  };
  const Shp shapes[] = {
      {{5, 3, 10}, {0, 17, 3, 1000, 5}, DType::F32, false},
      {{1, 32, 128}, {4095}, DType::BF16, false},  // a Qwen3-8B decode step's q
      {{2, 2, 2, 64}, {0, 1, 2, 3}, DType::BF16, true},
      {{3, 1, 6}, {7, 2, 100}, DType::F32, true},
  };
  const float eps = 1e-6f, theta = 1e6f;
  for (const Shp& s : shapes) {
    const int64_t hd = s.x.back(), H = s.x[s.x.size() - 2], N = shape_numel(s.x) / (H * hd);
    const std::string label = "x=" + dims(s.x) + " w=" + std::string(dtype_name(s.w)) + (s.in_place ? " y=x" : "");
    run_case("rms_norm_rope", label, [&](Case& c) {
      Input x = input(s.x, adt(), 2.0f);
      const Input w = input({hd}, s.w);
      Tensor y = s.in_place ? x.dev : poisoned(s.x, adt());
      be().rms_norm_rope(y, x.dev, w.dev, eps, ints(s.pos), RopeParams{theta});
      const Vec normed = rounded(ref::rms_norm(x.val, w.val, N * H, hd, eps), adt());
      c.compare("y", fetch(y), ref::rope(normed, s.pos, N, H, hd, theta, false));
    });
  }
  // Keys written straight into cache rows: dst [R, H, hd], the rows not named keep their values.
  struct RowsShp {
    int64_t R, H, hd;
    std::vector<int32_t> pos, index;
  };
  const RowsShp row_shapes[] = {{24, 2, 16, {3, 0, 9}, {17, 0, 23}}, {200, 8, 128, {150}, {150}},
                                {10, 1, 6, {4, 5}, {9, 2}}};
  for (const RowsShp& s : row_shapes) {
    const int64_t N = static_cast<int64_t>(s.index.size()), W = s.H * s.hd;
    run_case("rms_norm_rope[rows]", "x=[" + std::to_string(N) + ", " + std::to_string(s.H) + ", " +
                                        std::to_string(s.hd) + "] into " + std::to_string(s.R) + " rows",
             [&](Case& c) {
               const Input x = input({N, s.H, s.hd}, adt(), 2.0f), w = input({s.hd}, DType::BF16);
               Input dst = input({s.R, s.H, s.hd}, adt());
               const Tensor index = ints(s.index);
               be().rms_norm_rope(dst.dev, x.dev, w.dev, eps, ints(s.pos), RopeParams{theta}, &index);
               const Vec normed = rounded(ref::rms_norm(x.val, w.val, N * s.H, s.hd, eps), adt());
               const Vec rows = rounded(ref::rope(normed, s.pos, N, s.H, s.hd, theta, false), adt());
               c.compare("dst", fetch(dst.dev), ref::copy_rows(dst.val, rows, s.index, W));
             });
  }
}

// Attention geometry of a case: the KV-cache layout (rows at arbitrary slots / positions) or whole sequences.
struct AttnCase {
  int64_t S, C, Hq, Hkv, hd;
  std::vector<int32_t> slot, pos;  // empty: whole sequences (slot = i / C, position = i % C)
  bool whole() const { return slot.empty(); }
  int64_t N() const { return whole() ? S * C : static_cast<int64_t>(slot.size()); }
  std::string label() const {
    std::string s = "S=" + std::to_string(S) + " C=" + std::to_string(C) + " Hq=" + std::to_string(Hq) +
                    " Hkv=" + std::to_string(Hkv) + " hd=" + std::to_string(hd);
    if (!whole()) {
      s += " rows(slot:pos)=";
      for (size_t i = 0; i < slot.size() && i < 5; ++i) {
        if (i) s += ',';
        s += std::to_string(slot[i]);
        s += ':';
        s += std::to_string(pos[i]);
      }
      if (slot.size() > 5) s += ",..";
    }
    return s;
  }
};

const std::vector<AttnCase>& kv_cases() {
  static const std::vector<AttnCase> c = {
      {3, 16, 4, 2, 10, {2, 0, 1, 0, 2}, {15, 0, 7, 3, 9}},           // scattered rows, GQA 2
      {1, 8, 3, 3, 6, {0}, {5}},                                       // one decode row, GQA 1
      {2, 12, 4, 2, 6, {1, 1, 1, 1, 1, 1}, {4, 5, 6, 7, 8, 9}},        // a prefill chunk after 4 cached tokens
      {4, 5, 2, 2, 16, {3, 3, 0, 1, 2, 3, 0}, {4, 0, 4, 2, 1, 3, 0}},  // every slot, same positions in several
      // Long caches, few rows: a GPU spreads the keys of a row over several blocks (split and combined).
      {1, 200, 32, 8, 128, {0}, {150}},                  // a Qwen3-8B decode step (GQA 4), empty splits at the end
      {2, 300, 12, 1, 64, {1, 0, 1}, {299, 37, 0}},      // GQA 12 (more query heads than one block takes)
      {1, 64, 4, 4, 256, {0}, {63}},                     // the largest head dim
  };
  return c;
}

const std::vector<AttnCase>& seq_cases() {
  static const std::vector<AttnCase> c = {
      {2, 5, 4, 2, 6, {}, {}},
      {1, 100, 2, 1, 10, {}, {}},  // more queries than one 96-row tile
      {3, 7, 3, 3, 8, {}, {}},
  };
  return c;
}

// Shapes that reach the CUDA backend's tensor-core kernel (BF16/F16, head dims 64 and 128, whole sequences or a
// single-slot prefill of at least 64 rows): lengths that are no multiple of its 64- and 128-row tiles, tiles that
// span two or more sequences, GQA. Forward only (the backward keeps seq_cases: these would be slow there).
const std::vector<AttnCase>& flash_seq_cases() {
  static const std::vector<AttnCase> c = {
      {2, 77, 4, 2, 64, {}, {}},    // two sequences meeting inside a tile
      {1, 300, 4, 1, 128, {}, {}},  // GQA 4, a partial last tile
      {2, 150, 2, 2, 128, {}, {}},
      {3, 40, 4, 4, 64, {}, {}},  // sequences shorter than a tile: one tile spans all three
  };
  return c;
}

// Single-slot prefills (rows of slot 0) as the KV-cache layout: after cached tokens, from the start, and with the
// rows' positions out of order.
const std::vector<AttnCase>& flash_kv_cases() {
  static const std::vector<AttnCase> c = [] {
    const auto rows = [](int64_t n, auto pos_of) {
      std::pair<std::vector<int32_t>, std::vector<int32_t>> r;
      for (int64_t i = 0; i < n; ++i) {
        r.first.push_back(0);
        r.second.push_back(static_cast<int32_t>(pos_of(i)));
      }
      return r;
    };
    const auto after = rows(200, [](int64_t i) { return 100 + i; });  // keys 0..299 of 320 (the rest NaN)
    const auto fresh = rows(96, [](int64_t i) { return i; });
    const auto shuffled = rows(130, [](int64_t i) { return (i * 37) % 130; });
    return std::vector<AttnCase>{
        {1, 320, 8, 2, 128, after.first, after.second},
        {1, 200, 4, 4, 64, fresh.first, fresh.second},
        {1, 130, 2, 1, 64, shuffled.first, shuffled.second},
    };
  }();
  return c;
}

struct AttnData {
  Input q, k, v;
  std::vector<int32_t> slot, pos;
  ref::AttentionShape d;
  AttentionRows rows;
};

TEST_P(BackendOps, Attention) {
  // q [N, Hq, hd] (whole sequences: [S, C, Hq, hd]); k, v [S, C, Hkv, hd].
  auto make = [&](const AttnCase& a) {
    AttnData t;
    t.d = ref::AttentionShape{a.N(), a.Hq, a.Hkv, a.hd, a.S, a.C};
    if (a.whole()) {
      for (int64_t i = 0; i < a.S * a.C; ++i) {
        t.slot.push_back(static_cast<int32_t>(i / a.C));
        t.pos.push_back(static_cast<int32_t>(i % a.C));
      }
    } else {
      t.slot = a.slot;
      t.pos = a.pos;
    }
    t.q = input(a.whole() ? Shape{a.S, a.C, a.Hq, a.hd} : Shape{a.N(), a.Hq, a.hd}, adt());
    t.k = input({a.S, a.C, a.Hkv, a.hd}, adt());
    t.v = input({a.S, a.C, a.Hkv, a.hd}, adt());
    if (!a.whole()) {
      // Cache cells past every row's position hold NaN: keys a row may not see must not reach its output.
      std::vector<int32_t> filled(static_cast<size_t>(a.S), -1);
      for (size_t i = 0; i < t.slot.size(); ++i)
        filled[static_cast<size_t>(t.slot[i])] = std::max(filled[static_cast<size_t>(t.slot[i])], t.pos[i]);
      for (Input* kv : {&t.k, &t.v}) {
        Tensor h = kv->host.clone();
        const size_t cell = static_cast<size_t>(a.Hkv * a.hd) * dtype_size(h.dtype());
        for (int64_t s = 0; s < a.S; ++s)
          for (int64_t j = filled[static_cast<size_t>(s)] + 1; j < a.C; ++j)
            std::memset(static_cast<char*>(h.raw()) + static_cast<size_t>(s * a.C + j) * cell, 0xFF, cell);
        be().copy_from_cpu(kv->dev, h);
      }
    }
    t.rows.slot = ints(t.slot);
    t.rows.position = ints(t.pos);
    t.rows.whole_sequences = a.whole();
    return t;
  };
  for (const AttnCase& a : kv_cases())
    run_case("attention[kv]", a.label(), [&](Case& c) {
      const AttnData t = make(a);
      Tensor out = poisoned(t.q.host.shape(), adt());
      be().attention(out, t.q.dev, t.k.dev, t.v.dev, t.rows);
      c.compare("out", fetch(out), ref::attention(t.q.val, t.k.val, t.v.val, t.d, t.slot, t.pos));
    });
  for (const AttnCase& a : flash_kv_cases())
    run_case("attention[kv]", a.label(), [&](Case& c) {
      const AttnData t = make(a);
      Tensor out = poisoned(t.q.host.shape(), adt());
      be().attention(out, t.q.dev, t.k.dev, t.v.dev, t.rows);
      c.compare("out", fetch(out), ref::attention(t.q.val, t.k.val, t.v.val, t.d, t.slot, t.pos));
    });
  std::vector<AttnCase> seqs = seq_cases();
  seqs.insert(seqs.end(), flash_seq_cases().begin(), flash_seq_cases().end());
  for (const AttnCase& a : seqs)
    run_case("attention[seq]", a.label(), [&](Case& c) {
      const AttnData t = make(a);
      Tensor out = poisoned(t.q.host.shape(), adt());
      be().attention(out, t.q.dev, t.k.dev, t.v.dev, t.rows);
      c.compare("out", fetch(out), ref::attention(t.q.val, t.k.val, t.v.val, t.d, t.slot, t.pos));
    });
  for (const AttnCase& a : seq_cases())
    run_case("attention[seq+lse]", a.label(), [&](Case& c) {
      const AttnData t = make(a);
      Tensor out = poisoned(t.q.host.shape(), adt()), lse = poisoned({a.S, a.C, a.Hq}, DType::F32);
      be().attention(out, t.q.dev, t.k.dev, t.v.dev, t.rows, &lse);
      Vec lse_ref;
      const Vec out_ref = ref::attention(t.q.val, t.k.val, t.v.val, t.d, t.slot, t.pos, &lse_ref);
      c.compare("out", fetch(out), out_ref);
      c.compare("lse", fetch(lse), lse_ref);
    });
  // The full (non-causal) mask of a diffusion transformer's joint sequence: every row sees its slot's C keys.
  for (const AttnCase& a : seqs)
    run_case("attention[full]", a.label(), [&](Case& c) {
      AttnData t = make(a);
      t.rows.mask = AttentionMask::Full;
      Tensor out = poisoned(t.q.host.shape(), adt());
      be().attention(out, t.q.dev, t.k.dev, t.v.dev, t.rows);
      c.compare("out", fetch(out), ref::attention(t.q.val, t.k.val, t.v.val, t.d, t.slot, t.pos, nullptr, false));
    });
  // Heads wider than the per-row kernels take (FLUX's VAE mid-block: one head of 512 channels), full mask.
  for (const AttnCase& a : {AttnCase{2, 40, 1, 1, 512, {}, {}}, AttnCase{1, 70, 2, 2, 320, {}, {}}})
    run_case("attention[full]", a.label(), [&](Case& c) {
      AttnData t = make(a);
      t.rows.mask = AttentionMask::Full;
      Tensor out = poisoned(t.q.host.shape(), adt());
      be().attention(out, t.q.dev, t.k.dev, t.v.dev, t.rows);
      c.compare("out", fetch(out), ref::attention(t.q.val, t.k.val, t.v.val, t.d, t.slot, t.pos, nullptr, false));
    });
}

// Elementwise shapes: odd, a single element, leading dims; `alias` says which input the output overwrites.
struct EwShape {
  Shape x;
  int alias;  // 0 none, 1 first input, 2 second input
};
const EwShape kEwShapes[] = {{{5, 67}, 0}, {{1}, 0}, {{3, 4, 33}, 1}, {{2, 50}, 2}};

std::string ew_label(const EwShape& s, const char* first, const char* second, const char* out) {
  return "x=" + dims(s.x) + (s.alias == 1 ? std::string(" ") + out + "=" + first
                             : s.alias == 2 ? std::string(" ") + out + "=" + second
                                            : std::string());
}

TEST_P(BackendOps, SiluMul) {
  for (const EwShape& s : kEwShapes)
    run_case("silu_mul", ew_label(s, "gate", "up", "y"), [&](Case& c) {
      const Input g = input(s.x, adt(), 6.0f), u = input(s.x, adt());
      Tensor y = s.alias == 1 ? g.dev : s.alias == 2 ? u.dev : poisoned(s.x, adt());
      be().silu_mul(y, g.dev, u.dev);
      c.compare("y", fetch(y), ref::silu_mul(g.val, u.val));
    });
}

TEST_P(BackendOps, GeluTanh) {
  for (const EwShape& s : kEwShapes)
    run_case("gelu_tanh", ew_label(s, "x", "x", "y"), [&](Case& c) {
      const Input x = input(s.x, adt(), 5.0f);
      Tensor y = s.alias != 0 ? x.dev : poisoned(s.x, adt());
      be().gelu_tanh(y, x.dev);
      c.compare("y", fetch(y), ref::gelu_tanh(x.val));
    });
}

TEST_P(BackendOps, Modulate) {
  struct Shp {
    int64_t B, T, D;
    bool alias;
  };
  for (const Shp& s : {Shp{2, 5, 33, false}, Shp{1, 7, 64, true}, Shp{3, 1, 130, false}})
    run_case("modulate", "x=[" + std::to_string(s.B) + ", " + std::to_string(s.T) + ", " + std::to_string(s.D) + "]" +
                             (s.alias ? " y=x" : ""),
             [&](Case& c) {
               const Input x = input({s.B, s.T, s.D}, adt(), 3.0f);
               const Input sc = input({s.B, s.D}, adt(), 0.9f), sh = input({s.B, s.D}, adt(), 2.0f);
               Tensor y = s.alias ? x.dev : poisoned({s.B, s.T, s.D}, adt());
               be().modulate(y, x.dev, sc.dev, sh.dev);
               c.compare("y", fetch(y), ref::modulate(x.val, sc.val, sh.val, s.B, s.T, s.D));
             });
}

TEST_P(BackendOps, LayerNorm) {
  struct Shp {
    Shape x;
    std::optional<DType> affine;  // none: no weight and bias
    bool alias;
  };
  const Shp shapes[] = {{{3, 67}, std::nullopt, false}, {{5, 128}, DType::F32, false},
                        {{2, 3, 33}, DType::BF16, true}, {{1, 3072}, std::nullopt, true}};
  for (const Shp& s : shapes) {
    const std::string label = "x=" + shape_str(s.x) + (s.affine ? " affine " + std::string(dtype_name(*s.affine)) : "") +
                              (s.alias ? " y=x" : "");
    run_case("layer_norm", label, [&](Case& c) {
      const int64_t D = s.x.back(), rows = shape_numel(s.x) / D;
      // Rows with a mean far from 0, so the centring matters (a kernel that skipped it would be off by ~100 %).
      Input x = input(s.x, adt(), 2.0f);
      {
        Tensor shifted = x.host.to(DType::F32);
        for (int64_t i = 0; i < shifted.numel(); ++i) shifted.data<float>()[i] += 3.0f + static_cast<float>(i % 5);
        x.host = shifted.to(adt());
        x.val = values_of(x.host);
        be().copy_from_cpu(x.dev, x.host);
      }
      const Vec xv = x.val;
      Tensor y = s.alias ? x.dev : poisoned(s.x, adt());
      if (s.affine) {
        const Input w = input({D}, *s.affine, 1.5f), b = input({D}, *s.affine, 0.5f);
        be().layer_norm(y, x.dev, 1e-6f, &w.dev, &b.dev);
        c.compare("y", fetch(y), ref::layer_norm(xv, w.val, b.val, rows, D, 1e-6));
      } else {
        be().layer_norm(y, x.dev, 1e-6f);
        c.compare("y", fetch(y), ref::layer_norm(xv, {}, {}, rows, D, 1e-6));
      }
    });
  }
}

TEST_P(BackendOps, Add) {
  for (const EwShape& s : kEwShapes)
    run_case("add", ew_label(s, "a", "b", "y"), [&](Case& c) {
      const Input a = input(s.x, adt()), b = input(s.x, adt());
      Tensor y = s.alias == 1 ? a.dev : s.alias == 2 ? b.dev : poisoned(s.x, adt());
      be().add(y, a.dev, b.dev);
      c.compare("y", fetch(y), ref::add(a.val, b.val));
    });
}

TEST_P(BackendOps, Copy) {
  const std::pair<Shape, Shape> shapes[] = {{{5, 67}, {67, 5}}, {{1}, {1}}, {{2, 3, 4, 10}, {240}}};
  for (const auto& [src_shape, dst_shape] : shapes)
    run_case("copy", "src=" + dims(src_shape) + " dst=" + dims(dst_shape), [&](Case& c) {
      const Input src = input(src_shape, adt());
      Tensor dst = poisoned(dst_shape, adt());
      be().copy(dst, src.dev);
      c.compare("dst", fetch(dst), src.val);
    });
}

TEST_P(BackendOps, CopyConvert) {
  const std::pair<Shape, Shape> shapes[] = {{{5, 67}, {67, 5}}, {{1, 8192}, {1, 8192}}};
  for (const DType to : {DType::F32, DType::BF16, DType::F16}) {
    if (to == adt()) continue;
    for (const auto& [src_shape, dst_shape] : shapes) {
      // adt into `to` (a step's logits into F32), and `to` into adt.
      for (const bool from_adt : {true, false}) {
        const DType from = from_adt ? adt() : to, into = from_adt ? to : adt();
        run_case("copy[convert]",
                 std::string(dtype_name(from)) + " " + dims(src_shape) + " -> " + std::string(dtype_name(into)),
                 [&](Case& c) {
                   const Input src = input(src_shape, from, 3.0f);
                   Tensor dst = poisoned(dst_shape, into);
                   be().copy(dst, src.dev);
                   c.compare("dst", fetch(dst), rounded(src.val, into));
                 });
      }
    }
  }
}

TEST_P(BackendOps, CopyRows) {
  struct Shp {
    Shape dst, src;
    std::vector<int32_t> index;
  };
  const Shp shapes[] = {
      {{3 * 8, 2 * 6}, {5, 2 * 6}, {17, 0, 8, 23, 5}},  // new keys into a KV cache [slots·capacity, Hkv·hd]
      {{10, 7}, {1, 7}, {9}},
      {{4, 6, 33}, {2, 3, 33}, {0, 23, 5, 11, 12, 7}},  // leading dims on both sides
  };
  for (const Shp& s : shapes)
    run_case("copy_rows", "dst=" + dims(s.dst) + " src=" + dims(s.src), [&](Case& c) {
      Input dst = input(s.dst, adt());  // rows not written keep their values
      const Input src = input(s.src, adt());
      be().copy_rows(dst.dev, src.dev, ints(s.index));
      c.compare("dst", fetch(dst.dev), ref::copy_rows(dst.val, src.val, s.index, s.dst.back()));
    });
}

TEST_P(BackendOps, Softmax) {
  const std::pair<Shape, float> shapes[] = {{{5, 67}, 4.f}, {{1, 1}, 1.f}, {{3, 4, 33}, 8.f}, {{2, 1000}, 10.f}};
  for (const auto& [xs, scale] : shapes)
    run_case("softmax", "x=" + dims(xs) + " |x|<=" + std::to_string(static_cast<int>(scale)), [&](Case& c) {
      Input x = input(xs, adt(), scale);
      be().softmax(x.dev);  // in place
      c.compare("x", fetch(x.dev), ref::softmax(x.val, xs.back()));
    });
}

// ---------------------------------------------------------------------------------------------------------
// AutoRound parameter ops. The reference applies the shared per-group formula element by element in its own
// loop (grouping, indexing, clamping of alpha/beta), so any backend must agree with it exactly; quant/'s own
// host implementation is checked against the CPU backend in tests/quant/fake_quant_ops_test.cpp.

struct QdqShape {
  int64_t N, K;
  QuantScheme scheme;
};
const QdqShape kQdqShapes[] = {
    {5, 96, {4, 32, true}}, {3, 67, {4, 32, false}}, {4, 128, {3, 64, true}}, {2, 40, {8, -1, false}},
    {6, 64, {2, 16, true}},
};

std::string qdq_label(const QdqShape& s) {
  return "w=[" + std::to_string(s.N) + ", " + std::to_string(s.K) + "] W" + std::to_string(s.scheme.bits) + " g" +
         std::to_string(s.scheme.group_size) + (s.scheme.sym ? " sym" : " asym");
}

TEST_P(BackendOps, FakeQuant) {
  for (const QdqShape& s : kQdqShapes)
    run_case("fake_quant", qdq_label(s), [&](Case& c) {
      const int64_t G = s.scheme.num_groups_for(s.K), g = s.scheme.group_size_for(s.K);
      const Input w = input({s.N, s.K}, DType::F32, 0.05f), v = input({s.N, s.K}, DType::F32, 0.5f);
      Input a = input({s.N, G}, DType::F32, 0.45f), b = input({s.N, G}, DType::F32, 0.45f);
      for (Input* in : {&a, &b}) {  // shift to ±[0.4, 1.3]: some above 1 and some negative, which the formula clamps
        for (int64_t i = 0; i < in->host.numel(); ++i) in->host.data<float>()[i] += 0.85f;
        in->dev = to_dev(in->host);
      }
      Tensor w_hat = poisoned({s.N, s.K}, DType::F32);
      be().fake_quant(w_hat, w.dev, v.dev, a.dev, b.dev, s.scheme);
      Vec want(static_cast<size_t>(s.N * s.K));
      const float *wp = w.host.data<float>(), *vp = v.host.data<float>();
      for (int64_t r = 0; r < s.N; ++r)
        for (int64_t gi = 0; gi < G; ++gi) {
          const int64_t k0 = gi * g, n = std::min(g, s.K - k0);
          float lo, hi;
          group_min_max(wp + r * s.K + k0, n, &lo, &hi);
          const GroupScale gs = compute_group_scale(lo, hi, a.host.data<float>()[r * G + gi],
                                                    b.host.data<float>()[r * G + gi], s.scheme);
          for (int64_t j = 0; j < n; ++j) {
            bool inside = false;
            const int64_t at = r * s.K + k0 + j;
            want[static_cast<size_t>(at)] = dequantize_code(qdq_code(wp[at], vp[at], gs, s.scheme, &inside), gs);
          }
        }
      c.compare("w_hat", fetch(w_hat), want);
    });
}

TEST_P(BackendOps, FakeQuantBackward) {
  for (const QdqShape& s : kQdqShapes)
    run_case("fake_quant_backward", qdq_label(s), [&](Case& c) {
      const int64_t G = s.scheme.num_groups_for(s.K), g = s.scheme.group_size_for(s.K);
      const Input w = input({s.N, s.K}, DType::F32, 0.05f), v = input({s.N, s.K}, DType::F32, 0.5f);
      const Input a = input({s.N, G}, DType::F32, 1.0f), b = input({s.N, G}, DType::F32, 1.0f);
      const Input gw = input({s.N, s.K}, DType::F32);
      // Gradients accumulate: start from random values.
      Input gv = input({s.N, s.K}, DType::F32), ga = input({s.N, G}, DType::F32), gb = input({s.N, G}, DType::F32);
      Vec want_v = gv.val, want_a = ga.val, want_b = gb.val;
      be().fake_quant_backward(gv.dev, ga.dev, gb.dev, gw.dev, w.dev, v.dev, a.dev, b.dev, s.scheme);
      std::vector<float> dv(static_cast<size_t>(s.K));
      for (int64_t r = 0; r < s.N; ++r)
        for (int64_t gi = 0; gi < G; ++gi) {
          const int64_t k0 = gi * g, n = std::min(g, s.K - k0), at = r * s.K + k0, gix = r * G + gi;
          for (int64_t j = 0; j < n; ++j) dv[static_cast<size_t>(j)] = gv.host.data<float>()[at + j];
          float da = 0.f, db = 0.f;
          qdq_group_backward(w.host.data<float>() + at, v.host.data<float>() + at, gw.host.data<float>() + at, n,
                             a.host.data<float>()[gix], b.host.data<float>()[gix], s.scheme, dv.data(), &da, &db);
          for (int64_t j = 0; j < n; ++j) want_v[static_cast<size_t>(at + j)] = dv[static_cast<size_t>(j)];
          want_a[static_cast<size_t>(gix)] = static_cast<float>(ga.host.data<float>()[gix] + da);
          want_b[static_cast<size_t>(gix)] = static_cast<float>(gb.host.data<float>()[gix] + db);
        }
      c.compare("grad_v", fetch(gv.dev), want_v);
      c.compare("grad_alpha", fetch(ga.dev), want_a);
      c.compare("grad_beta", fetch(gb.dev), want_b);
    });
}

TEST_P(BackendOps, ClampSignStepFill) {
  const Shape shapes[] = {{5, 67}, {1}, {3, 4, 33}};
  for (const Shape& xs : shapes) {
    run_case("clamp", "x=" + dims(xs), [&](Case& c) {
      Input x = input(xs, DType::F32, 2.0f);
      be().clamp(x.dev, -0.5f, 1.0f);
      Vec want = x.val;
      for (double& e : want) e = std::min(1.0, std::max(-0.5, e));
      c.compare("x", fetch(x.dev), want);
    });
    run_case("sign_step", "p=" + dims(xs), [&](Case& c) {
      Input p = input(xs, DType::F32);
      Input g = input(xs, DType::F32);
      g.host.data<float>()[0] = 0.f;  // sign(0) = 0: the parameter stays
      g.dev = to_dev(g.host);
      const float lr = 0.003f;
      be().sign_step(p.dev, g.dev, lr);
      Vec want = p.val;
      for (size_t i = 0; i < want.size(); ++i) {
        const float gi = g.host.data<float>()[i];
        want[i] = static_cast<float>(p.host.data<float>()[i] - lr * static_cast<float>((gi > 0.f) - (gi < 0.f)));
      }
      c.compare("p", fetch(p.dev), want);
    });
    run_case("fill", "x=" + dims(xs), [&](Case& c) {
      Tensor x = poisoned(xs, DType::F32);
      be().fill(x, 0.75f);
      c.compare("x", fetch(x), Vec(static_cast<size_t>(shape_numel(xs)), 0.75));
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Backward ops, each against the reference backward fed the same inputs.

TEST_P(BackendOps, LinearBackward) {
  struct Shp {
    Shape x;
    int64_t N;
    bool want_dx, want_dw, acc_dx, acc_dw;
  };
  const Shp shapes[] = {
      {{5, 67}, 33, true, true, false, false},
      {{2, 3, 40}, 65, true, true, true, true},
      {{1, 16}, 7, true, false, false, false},
      {{5, 67}, 33, true, true, true, false},
      {{4, 9}, 5, false, true, false, true},
      {{130, 96}, 72, true, true, false, false},
      {{300, 20}, 24, true, true, false, true},  // dw sums 300 rows: over one gemm panel (KC = 256)
  };
  for (const Shp& s : shapes) {
    auto part = [](bool want, bool acc, const char* n) {
      return want ? std::string(" ") + n + (acc ? "+=" : "=") : std::string();
    };
    const std::string label = "x=" + dims(s.x) + " N=" + std::to_string(s.N) + part(s.want_dx, s.acc_dx, "dx") +
                              part(s.want_dw, s.acc_dw, "dw");
    run_case("linear_backward", label, [&](Case& c) {
      const int64_t K = s.x.back(), M = shape_numel(s.x) / K;
      Shape ys = s.x;
      ys.back() = s.N;
      const Input x = input(s.x, adt()), w = input({s.N, K}, adt()), dy = input(ys, adt());
      Input dx0 = input(s.x, adt()), dw0 = input({s.N, K}, adt());  // the values accumulated into
      Tensor dx = s.acc_dx ? dx0.dev : poisoned(s.x, adt());
      Tensor dw = s.acc_dw ? dw0.dev : poisoned({s.N, K}, adt());
      be().linear_backward(s.want_dx ? &dx : nullptr, s.want_dw ? &dw : nullptr, dy.dev, x.dev, w.dev, s.acc_dx,
                           s.acc_dw);
      if (s.want_dx) {
        const Vec d = ref::linear_dx(dy.val, w.val, M, K, s.N);
        c.compare("dx", fetch(dx), s.acc_dx ? plus(dx0.val, d) : d);
      }
      if (s.want_dw) {
        const Vec d = ref::linear_dw(dy.val, x.val, M, K, s.N);
        c.compare("dw", fetch(dw), s.acc_dw ? plus(dw0.val, d) : d);
      }
    });
  }
}

TEST_P(BackendOps, RmsNormBackward) {
  struct Shp {
    Shape x;
    bool dweight, acc_dx, dx_is_dy;
  };
  const Shp shapes[] = {
      {{5, 67}, true, false, false},
      {{2, 3, 4, 10}, false, true, false},
      {{3, 33}, true, false, true},
      {{1, 6}, true, true, false},
  };
  const float eps = 1e-6f;
  for (const Shp& s : shapes) {
    const std::string label = "x=" + dims(s.x) + (s.acc_dx ? " dx+=" : " dx=") + (s.dx_is_dy ? "(in dy)" : "") +
                              (s.dweight ? " dweight+=" : "");
    run_case("rms_norm_backward", label, [&](Case& c) {
      const int64_t D = s.x.back(), rows = shape_numel(s.x) / D;
      const Input x = input(s.x, adt(), 2.0f), w = input({D}, adt()), dy = input(s.x, adt());
      Input dx0 = input(s.x, adt()), dw0 = input({D}, adt());
      Vec rstd_val;
      ref::rms_norm(x.val, w.val, rows, D, eps, &rstd_val);
      rstd_val = rounded(rstd_val, DType::F32);  // as a forward would have saved it
      const Tensor rstd = to_dev(Tensor::from_f32(std::vector<float>(rstd_val.begin(), rstd_val.end()), {rows}));
      Tensor dx = s.dx_is_dy ? dy.dev : s.acc_dx ? dx0.dev : poisoned(s.x, adt());
      be().rms_norm_backward(dx, s.dweight ? &dw0.dev : nullptr, dy.dev, x.dev, w.dev, rstd, s.acc_dx);
      Vec dx_ref, dw_ref;
      ref::rms_norm_backward(dx_ref, &dw_ref, dy.val, x.val, w.val, rstd_val, rows, D);
      c.compare("dx", fetch(dx), s.acc_dx ? plus(dx0.val, dx_ref) : dx_ref);
      if (s.dweight) c.compare("dweight", fetch(dw0.dev), plus(dw0.val, dw_ref));
    });
  }
}

TEST_P(BackendOps, RopeBackward) {
  for (const RopeShape& s : rope_shapes()) {
    run_case("rope_backward", rope_label(s), [&](Case& c) {
      const int64_t hd = s.x.back(), H = s.x[s.x.size() - 2], N = shape_numel(s.x) / (H * hd);
      Input dx = input(s.x, adt());
      be().rope_backward(dx.dev, ints(s.pos), RopeParams{s.theta});  // in place
      c.compare("dx", fetch(dx.dev), ref::rope(dx.val, s.pos, N, H, hd, s.theta, true));
    });
  }
}

TEST_P(BackendOps, AttentionBackward) {
  for (const AttnCase& a : seq_cases())
    run_case("attention_backward", a.label(), [&](Case& c) {
      const ref::AttentionShape d{a.N(), a.Hq, a.Hkv, a.hd, a.S, a.C};
      std::vector<int32_t> slot, pos;
      for (int64_t i = 0; i < a.S * a.C; ++i) {
        slot.push_back(static_cast<int32_t>(i / a.C));
        pos.push_back(static_cast<int32_t>(i % a.C));
      }
      const Shape qs{a.S, a.C, a.Hq, a.hd}, ks{a.S, a.C, a.Hkv, a.hd};
      const Input q = input(qs, adt()), k = input(ks, adt()), v = input(ks, adt()), dout = input(qs, adt());
      // out and lse as the forward saves them (the reference's, rounded to f32).
      Vec lse_val;
      const Vec out_val = rounded(ref::attention(q.val, k.val, v.val, d, slot, pos, &lse_val), DType::F32);
      lse_val = rounded(lse_val, DType::F32);
      const Tensor out = to_dev(Tensor::from_f32(std::vector<float>(out_val.begin(), out_val.end()), qs));
      const Tensor lse = to_dev(Tensor::from_f32(std::vector<float>(lse_val.begin(), lse_val.end()),
                                                 {a.S, a.C, a.Hq}));
      AttentionRows rows;
      rows.slot = ints(slot);
      rows.position = ints(pos);
      rows.whole_sequences = true;
      Tensor dq = poisoned(qs, adt()), dk = poisoned(ks, adt()), dv = poisoned(ks, adt());
      be().attention_backward(dq, dk, dv, dout.dev, q.dev, k.dev, v.dev, out, lse, rows);
      Vec dq_ref, dk_ref, dv_ref;
      ref::attention_backward(dq_ref, dk_ref, dv_ref, dout.val, q.val, k.val, v.val, d, slot, pos);
      c.compare("dq", fetch(dq), dq_ref);
      c.compare("dk", fetch(dk), dk_ref);
      c.compare("dv", fetch(dv), dv_ref);
    });
}

TEST_P(BackendOps, SiluMulBackward) {
  for (const EwShape& s : kEwShapes)
    run_case("silu_mul_backward", ew_label(s, "dy", "dy", s.alias == 1 ? "dgate" : "dup"), [&](Case& c) {
      const Input g = input(s.x, adt(), 6.0f), u = input(s.x, adt()), dy = input(s.x, adt());
      Tensor dg = s.alias == 1 ? dy.dev : poisoned(s.x, adt());
      Tensor du = s.alias == 2 ? dy.dev : poisoned(s.x, adt());
      be().silu_mul_backward(dg, du, dy.dev, g.dev, u.dev);
      Vec dg_ref, du_ref;
      ref::silu_mul_backward(dg_ref, du_ref, dy.val, g.val, u.val);
      c.compare("dgate", fetch(dg), dg_ref);
      c.compare("dup", fetch(du), du_ref);
    });
}

TEST_P(BackendOps, MaskedMseLoss) {
  struct Shp {
    Shape y;
    std::vector<uint8_t> mask;
    double dloss;
    bool want_dy;
  };
  const Shp shapes[] = {
      {{2, 5, 33}, {1, 1, 1, 1, 0, 1, 1, 1, 1, 0}, 1.0, true},  // the tuner's mask: last token of each sample
      {{5, 67}, {1, 0, 1, 1, 0}, 0.37, true},
      {{1, 4}, {1}, 1.0, false},  // the value only
      {{3, 10}, {0, 0, 1}, 2.5, true},
  };
  for (const Shp& s : shapes) {
    std::string m;
    for (uint8_t b : s.mask) m += b ? '1' : '0';
    char dl[32];
    std::snprintf(dl, sizeof dl, "%g", s.dloss);
    run_case("masked_mse_loss", "y=" + dims(s.y) + " mask=" + m + (s.want_dy ? std::string(" dloss=") + dl : " no dy"),
             [&](Case& c) {
               const Input y = input(s.y, adt()), target = input(s.y, adt());
               Tensor dy = poisoned(s.y, adt());
               const double loss = be().masked_mse_loss(y.dev, target.dev, bytes(s.mask), s.want_dy ? &dy : nullptr,
                                                        s.dloss);
               Vec dy_ref;
               const double loss_ref = ref::masked_mse_loss(y.val, target.val, s.mask, s.y.back(), s.dloss, &dy_ref);
               c.compare_scalar("loss", loss, loss_ref);
               if (s.want_dy) c.compare("dy", fetch(dy), dy_ref);
             });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Gradient mode: the backend's backward against central differences of the reference forward, through
// L = Σ R ⊙ forward(inputs) with a fixed random R (the backward's dy), on tiny shapes.

Vec fd(Vec& x, const std::function<double()>& loss) { return test::numeric_grad(x, loss); }

TEST_P(BackendOps, GradLinear) {
  const int64_t M = 3, K = 5, N = 4;
  run_case("grad:linear", "M=3 K=5 N=4", [&](Case& c) {
    Input x = input({M, K}, adt()), w = input({N, K}, adt());
    const Input r = input({M, N}, adt());
    Tensor dx = poisoned({M, K}, adt()), dw = poisoned({N, K}, adt());
    be().linear_backward(&dx, &dw, r.dev, x.dev, w.dev, false, false);
    auto loss = [&] { return test::weighted_sum(r.val, ref::linear(x.val, w.val, {}, M, K, N).data()); };
    c.compare("dx", fetch(dx), fd(x.val, loss));
    c.compare("dw", fetch(dw), fd(w.val, loss));
  });
}

TEST_P(BackendOps, GradRmsNorm) {
  const int64_t rows = 3, D = 7;
  const float eps = 1e-6f;
  run_case("grad:rms_norm", "x=[3, 7] dx dweight", [&](Case& c) {
    Input x = input({rows, D}, adt(), 2.0f), w = input({D}, adt());
    const Input r = input({rows, D}, adt());
    Tensor y = poisoned({rows, D}, adt()), rstd = poisoned({rows}, DType::F32);
    be().rms_norm(y, x.dev, w.dev, eps, &rstd);
    Tensor dx = poisoned({rows, D}, adt()), dw = to_dev(Tensor::zeros({D}, adt()));
    be().rms_norm_backward(dx, &dw, r.dev, x.dev, w.dev, rstd, false);
    auto loss = [&] { return test::weighted_sum(r.val, ref::rms_norm(x.val, w.val, rows, D, eps).data()); };
    c.compare("dx", fetch(dx), fd(x.val, loss));
    c.compare("dweight", fetch(dw), fd(w.val, loss));
  });
}

TEST_P(BackendOps, GradRope) {
  const std::vector<int32_t> pos{0, 5, 2};
  const int64_t N = 3, H = 2, hd = 6;
  run_case("grad:rope", "x=[3, 2, 6] pos=0,5,2", [&](Case& c) {
    Input x = input({N, H, hd}, adt());
    Input r = input({N, H, hd}, adt());
    be().rope_backward(r.dev, ints(pos), RopeParams{10000.f});  // dx = R rotated back, in place
    auto loss = [&] { return test::weighted_sum(r.val, ref::rope(x.val, pos, N, H, hd, 10000.f, false).data()); };
    c.compare("dx", fetch(r.dev), fd(x.val, loss));
  });
}

TEST_P(BackendOps, GradAttention) {
  const int64_t S = 2, C = 3, Hq = 2, Hkv = 1, hd = 4;
  run_case("grad:attention", "S=2 C=3 Hq=2 Hkv=1 hd=4 whole_sequences", [&](Case& c) {
    const ref::AttentionShape d{S * C, Hq, Hkv, hd, S, C};
    std::vector<int32_t> slot, pos;
    for (int64_t i = 0; i < S * C; ++i) {
      slot.push_back(static_cast<int32_t>(i / C));
      pos.push_back(static_cast<int32_t>(i % C));
    }
    const Shape qs{S, C, Hq, hd}, ks{S, C, Hkv, hd};
    Input q = input(qs, adt()), k = input(ks, adt()), v = input(ks, adt());
    const Input r = input(qs, adt());
    AttentionRows rows;
    rows.slot = ints(slot);
    rows.position = ints(pos);
    rows.whole_sequences = true;
    Tensor out = poisoned(qs, adt()), lse = poisoned({S, C, Hq}, DType::F32);
    be().attention(out, q.dev, k.dev, v.dev, rows, &lse);  // the backend's own forward feeds its backward
    Tensor dq = poisoned(qs, adt()), dk = poisoned(ks, adt()), dv = poisoned(ks, adt());
    be().attention_backward(dq, dk, dv, r.dev, q.dev, k.dev, v.dev, out, lse, rows);
    auto loss = [&] { return test::weighted_sum(r.val, ref::attention(q.val, k.val, v.val, d, slot, pos).data()); };
    c.compare("dq", fetch(dq), fd(q.val, loss));
    c.compare("dk", fetch(dk), fd(k.val, loss));
    c.compare("dv", fetch(dv), fd(v.val, loss));
  });
}

TEST_P(BackendOps, GradSiluMul) {
  run_case("grad:silu_mul", "x=[11]", [&](Case& c) {
    Input g = input({11}, adt(), 6.0f), u = input({11}, adt());
    const Input r = input({11}, adt());
    Tensor dg = poisoned({11}, adt()), du = poisoned({11}, adt());
    be().silu_mul_backward(dg, du, r.dev, g.dev, u.dev);
    auto loss = [&] { return test::weighted_sum(r.val, ref::silu_mul(g.val, u.val).data()); };
    c.compare("dgate", fetch(dg), fd(g.val, loss));
    c.compare("dup", fetch(du), fd(u.val, loss));
  });
}

TEST_P(BackendOps, GradMaskedMseLoss) {
  const std::vector<uint8_t> mask{1, 0, 1, 1};
  const double weight = 0.7;  // the loss is a scalar: R is one number, the backward's dloss
  run_case("grad:masked_mse_loss", "y=[4, 5] mask=1011 dloss=0.7", [&](Case& c) {
    Input y = input({4, 5}, adt());
    const Input target = input({4, 5}, adt());
    Tensor dy = poisoned({4, 5}, adt());
    be().masked_mse_loss(y.dev, target.dev, bytes(mask), &dy, weight);
    auto loss = [&] { return weight * ref::masked_mse_loss(y.val, target.val, mask, 5, 1.0, nullptr); };
    c.compare("dy", fetch(dy), fd(y.val, loss));
  });
}

// ---------------------------------------------------------------------------------------------------------
// Bad arguments: every one must throw an omni::Error whose message names the op ("rms_norm: ..."), or says
// the variant does not support the op.

// The diffusion-transformer backward ops: each against central differences of the double reference forward, on
// odd sizes, with a random upstream gradient r (L = Σ r · y).
TEST_P(BackendOps, GradLayerNorm) {
  const int64_t rows = 3, D = 9;
  const float eps = 1e-6f;
  run_case("grad:layer_norm", "x=[3, 9] no affine", [&](Case& c) {
    Input x = input({rows, D}, adt(), 2.0f);
    const Input r = input({rows, D}, adt());
    Tensor dx = poisoned({rows, D}, adt());
    be().layer_norm_backward(dx, r.dev, x.dev, eps, false);
    auto loss = [&] { return test::weighted_sum(r.val, ref::layer_norm(x.val, {}, {}, rows, D, eps).data()); };
    c.compare("dx", fetch(dx), fd(x.val, loss));
  });
}
TEST_P(BackendOps, GradGeluTanh) {
  run_case("grad:gelu_tanh", "x=[13]", [&](Case& c) {
    Input x = input({13}, adt(), 4.0f);
    const Input r = input({13}, adt());
    Tensor dx = poisoned({13}, adt());
    be().gelu_tanh_backward(dx, r.dev, x.dev);
    auto loss = [&] { return test::weighted_sum(r.val, ref::gelu_tanh(x.val).data()); };
    c.compare("dx", fetch(dx), fd(x.val, loss));
  });
}
TEST_P(BackendOps, GradModulate) {
  const int64_t B = 2, T = 3, D = 5;
  run_case("grad:modulate", "x=[2, 3, 5] dx dscale dshift", [&](Case& c) {
    Input x = input({B, T, D}, adt(), 2.0f), sc = input({B, D}, adt(), 0.9f), sh = input({B, D}, adt());
    const Input r = input({B, T, D}, adt());
    Tensor dx = poisoned({B, T, D}, adt()), dsc = poisoned({B, D}, adt()), dsh = poisoned({B, D}, adt());
    be().modulate_backward(dx, dsc, dsh, r.dev, x.dev, sc.dev);
    auto loss = [&] { return test::weighted_sum(r.val, ref::modulate(x.val, sc.val, sh.val, B, T, D).data()); };
    c.compare("dx", fetch(dx), fd(x.val, loss));
    c.compare("dscale", fetch(dsc), fd(sc.val, loss));
    c.compare("dshift", fetch(dsh), fd(sh.val, loss));
  });
}
TEST_P(BackendOps, GradGatedAdd) {
  const int64_t B = 2, T = 3, D = 5;
  run_case("grad:gated_add", "x=[2, 3, 5] dgate dh", [&](Case& c) {
    Input x = input({B, T, D}, adt()), g = input({B, D}, adt(), 1.5f), h = input({B, T, D}, adt(), 2.0f);
    const Input r = input({B, T, D}, adt());
    Tensor dg = poisoned({B, D}, adt()), dh = poisoned({B, T, D}, adt());
    be().gated_add_backward(dg, dh, r.dev, g.dev, h.dev);
    auto loss = [&] { return test::weighted_sum(r.val, ref::gated_add(x.val, g.val, h.val, B, T, D).data()); };
    c.compare("dgate", fetch(dg), fd(g.val, loss));
    c.compare("dh", fetch(dh), fd(h.val, loss));
    c.compare("dx = dy", r.val, fd(x.val, loss));  // the residual's gradient is dy itself (no output)
  });
}
TEST_P(BackendOps, GradRopeInterleaved) {
  const int64_t N = 3, H = 2, hd = 6;
  run_case("grad:rope_interleaved", "x=[3, 2, 6]", [&](Case& c) {
    Input x = input({N, H, hd}, adt());
    Input r = input({N, H, hd}, adt());
    const auto angles = test::random_floats(static_cast<size_t>(N * hd / 2), seed_++, 20.0f);
    std::vector<float> cs(static_cast<size_t>(N * hd)), sn(cs.size());
    for (size_t p = 0; p < angles.size(); ++p) {
      cs[2 * p] = cs[2 * p + 1] = std::cos(angles[p]);
      sn[2 * p] = sn[2 * p + 1] = std::sin(angles[p]);
    }
    const Tensor cos_h = Tensor::from_f32(cs, {N, hd}), sin_h = Tensor::from_f32(sn, {N, hd});
    be().rope_interleaved_backward(r.dev, to_dev(cos_h), to_dev(sin_h));  // in place on the gradient
    const Vec cv = values_of(cos_h), sv = values_of(sin_h);
    auto loss = [&] { return test::weighted_sum(r.val, ref::rope_interleaved(x.val, cv, sv, N, H, hd).data()); };
    c.compare("dx", fetch(r.dev), fd(x.val, loss));
  });
}

TEST_P(BackendOps, ErrorsNameTheOp) {
  const DType a = adt();
  const DType other = a == DType::F32 ? DType::BF16 : DType::F32;
  auto buf = [&](const Shape& s, DType dt) { return be().alloc(s, dt); };
  LinearWeight lw;
  lw.dense = Tensor::from_f32(test::random_floats(12, 1), {3, 4});
  const auto prepared = be().prepare_linear(lw);
  const Tensor undefined;
  const Tensor pos2 = ints({0, 1});

  struct ErrCase {
    const char* op;
    const char* what;
    std::function<void()> call;
  };
  const std::vector<ErrCase> cases = {
      {"linear", "x last dim 5, weight in_features 4",
       [&] { Tensor y = buf({2, 3}, a); be().linear(y, buf({2, 5}, a), *prepared); }},
      {"linear", "y of the wrong dtype",
       [&] { Tensor y = buf({2, 3}, other); be().linear(y, buf({2, 4}, a), *prepared); }},
      {"linear_dense", "BF16 weight",
       [&] { Tensor y = buf({2, 3}, a); be().linear_dense(y, buf({2, 4}, a), buf({3, 4}, DType::BF16)); }},
      {"embedding", "F32 ids",
       [&] { Tensor y = buf({2, 8}, a); be().embedding(y, buf({2}, DType::F32), buf({5, 8}, DType::BF16)); }},
      {"rms_norm", "weight [7] for rows of 8",
       [&] { Tensor x = buf({2, 8}, a); be().rms_norm(x, x, buf({7}, DType::F32), 1e-6f); }},
      {"rms_norm", "undefined weight", [&] { Tensor x = buf({2, 8}, a); be().rms_norm(x, x, undefined, 1e-6f); }},
      {"rope", "odd head dim", [&] { Tensor x = buf({2, 1, 5}, a); be().rope(x, pos2, RopeParams{}); }},
      {"rope", "3 positions for 2 rows",
       [&] { Tensor x = buf({2, 1, 4}, a); be().rope(x, ints({0, 1, 2}), RopeParams{}); }},
      {"attention", "3 query heads over 2 kv heads",
       [&] {
         Tensor out = buf({2, 3, 8}, a);
         AttentionRows rows{pos2, pos2, AttentionMask::Causal, false};
         be().attention(out, buf({2, 3, 8}, a), buf({1, 4, 2, 8}, a), buf({1, 4, 2, 8}, a), rows);
       }},
      {"attention", "lse without whole_sequences",
       [&] {
         Tensor out = buf({2, 2, 8}, a), lse = buf({2, 2}, DType::F32);
         AttentionRows rows{ints({0, 0}), pos2, AttentionMask::Causal, false};
         be().attention(out, buf({2, 2, 8}, a), buf({1, 4, 2, 8}, a), buf({1, 4, 2, 8}, a), rows, &lse);
       }},
      {"attention", "undefined rows.slot",
       [&] {
         Tensor out = buf({2, 2, 8}, a);
         AttentionRows rows{undefined, pos2, AttentionMask::Causal, false};
         be().attention(out, buf({2, 2, 8}, a), buf({1, 4, 2, 8}, a), buf({1, 4, 2, 8}, a), rows);
       }},
      {"silu_mul", "gate and up shapes differ",
       [&] { Tensor y = buf({4}, a); be().silu_mul(y, buf({4}, a), buf({5}, a)); }},
      {"add", "b of another dtype", [&] { Tensor y = buf({4}, a); be().add(y, y, buf({4}, other)); }},
      {"copy", "4 elements into 5", [&] { Tensor d = buf({5}, a); be().copy(d, buf({4}, a)); }},
      {"copy", "I32 into a float tensor", [&] { Tensor d = buf({2}, a); be().copy(d, buf({2}, DType::I32)); }},
      {"add_rms_norm", "y aliasing sum",
       [&] {
         Tensor s = buf({2, 8}, a);
         be().add_rms_norm(s, s, buf({2, 8}, a), buf({2, 8}, a), buf({8}, DType::F32), 1e-6f);
       }},
      {"add_rms_norm", "weight of the wrong length",
       [&] {
         Tensor s = buf({2, 8}, a), y = buf({2, 8}, a);
         be().add_rms_norm(s, y, buf({2, 8}, a), buf({2, 8}, a), buf({4}, DType::F32), 1e-6f);
       }},
      {"rms_norm_rope", "rows of another count",
       [&] {
         Tensor y = buf({6, 2, 8}, a);
         const Tensor rows = ints({0, 1, 2});
         be().rms_norm_rope(y, buf({2, 2, 8}, a), buf({8}, DType::F32), 1e-6f, pos2, RopeParams{}, &rows);
       }},
      {"copy_rows", "undefined index",
       [&] { Tensor d = buf({4, 3}, a); be().copy_rows(d, buf({2, 3}, a), undefined); }},
      {"copy_rows", "rows of 3 into rows of 4",
       [&] { Tensor d = buf({4, 4}, a); be().copy_rows(d, buf({2, 3}, a), pos2); }},
      {"softmax", "undefined x", [&] { Tensor x; be().softmax(x); }},
      {"layer_norm", "weight without bias",
       [&] { Tensor x = buf({2, 8}, a); const Tensor w = buf({8}, DType::F32); be().layer_norm(x, x, 1e-6f, &w); }},
      {"layer_norm", "bias [7] for rows of 8",
       [&] {
         Tensor x = buf({2, 8}, a);
         const Tensor w = buf({8}, DType::F32), b = buf({7}, DType::F32);
         be().layer_norm(x, x, 1e-6f, &w, &b);
       }},
      {"gelu_tanh", "y of another shape", [&] { Tensor y = buf({5}, a); be().gelu_tanh(y, buf({4}, a)); }},
      {"modulate", "scale [2, 8] for 3 samples",
       [&] { Tensor x = buf({3, 2, 8}, a); be().modulate(x, x, buf({2, 8}, a), buf({3, 8}, a)); }},
      {"modulate", "x with 2 dims", [&] { Tensor x = buf({2, 8}, a); be().modulate(x, x, buf({2, 8}, a), buf({2, 8}, a)); }},
      {"attention", "lse with the full mask, rows not whole_sequences",
       [&] {
         Tensor out = buf({1, 4, 2, 8}, a), lse = buf({4, 2}, DType::F32);
         AttentionRows rows{ints({0, 0, 0, 0}), ints({0, 1, 2, 3}), AttentionMask::Full, false};
         be().attention(out, buf({1, 4, 2, 8}, a), buf({1, 4, 2, 8}, a), buf({1, 4, 2, 8}, a), rows, &lse);
       }},
      {"linear_backward", "dw [4, 3] for w [3, 4]",
       [&] {
         Tensor dw = buf({4, 3}, a);
         be().linear_backward(nullptr, &dw, buf({2, 3}, a), buf({2, 4}, a), buf({3, 4}, a), false, false);
       }},
      {"rms_norm_backward", "accumulating into dx that aliases dy",
       [&] {
         Tensor g = buf({2, 8}, a);
         be().rms_norm_backward(g, nullptr, g, buf({2, 8}, a), buf({8}, a), buf({2}, DType::F32), true);
       }},
      {"rope_backward", "F32 positions",
       [&] { Tensor x = buf({2, 1, 4}, a); be().rope_backward(x, buf({2}, DType::F32), RopeParams{}); }},
      {"attention_backward", "rows not whole_sequences",
       [&] {
         Tensor dq = buf({1, 2, 2, 8}, a), dk = buf({1, 2, 2, 8}, a), dv = buf({1, 2, 2, 8}, a);
         const Tensor t = buf({1, 2, 2, 8}, a);
         AttentionRows rows{ints({0, 0}), pos2, AttentionMask::Causal, false};
         be().attention_backward(dq, dk, dv, t, t, t, t, t, buf({1, 2, 2}, DType::F32), rows);
       }},
      {"silu_mul_backward", "dup of another shape",
       [&] {
         Tensor dg = buf({4}, a), du = buf({3}, a);
         be().silu_mul_backward(dg, du, buf({4}, a), buf({4}, a), buf({4}, a));
       }},
      {"masked_mse_loss", "F32 mask",
       [&] { be().masked_mse_loss(buf({2, 4}, a), buf({2, 4}, a), buf({2}, DType::F32), nullptr, 1.0); }},
      {"masked_mse_loss", "mask of 3 for 2 rows",
       [&] { be().masked_mse_loss(buf({2, 4}, a), buf({2, 4}, a), bytes({1, 1, 1}), nullptr, 1.0); }},
  };
  int n = 0;
  for (const ErrCase& e : cases) {
    const std::string msg = testing_support::error_of(e.call);
    const std::string op = e.op;
    const bool named = msg.find(op + ":") != std::string::npos ||
                       msg.find("does not support " + op + " ") != std::string::npos;
    EXPECT_TRUE(named) << variant() << " " << op << " with " << e.what << ": expected an omni::Error naming \""
                       << op << ":\", got: " << msg;
    n += named ? 1 : 0;
  }
  // An op the variant does not support is refused by name before anything runs.
  if (!be().supports(Op::RopeBackward, a)) {
    Tensor x = buf({2, 1, 4}, a);
    const std::string msg = testing_support::error_of([&] { be().rope_backward(x, pos2, RopeParams{}); });
    EXPECT_NE(msg.find("does not support rope_backward"), std::string::npos) << msg;
  }
  std::printf("  [%-15s] %-20s %d/%zu bad calls threw an omni::Error naming the op\n", variant().c_str(), "errors",
              n, cases.size());
}

// ---------------------------------------------------------------------------------------------------------
// The diffusion-transformer (FLUX), text-encoder (CLIP, T5) and VAE decoder ops, forward only.

TEST_P(BackendOps, Silu) {
  std::vector<EwShape> shapes(std::begin(kEwShapes), std::end(kEwShapes));
  shapes.push_back({{3, 4099}, 1});  // many 16-byte vectors and a tail
  for (const EwShape& s : shapes)
    run_case("silu", ew_label(s, "x", "x", "y"), [&](Case& c) {
      const Input x = input(s.x, adt(), 6.0f);
      Tensor y = s.alias != 0 ? x.dev : poisoned(s.x, adt());
      be().silu(y, x.dev);
      c.compare("y", fetch(y), ref::silu(x.val));
    });
}

TEST_P(BackendOps, QuickGelu) {
  std::vector<EwShape> shapes(std::begin(kEwShapes), std::end(kEwShapes));
  shapes.push_back({{77, 129}, 0});
  for (const EwShape& s : shapes)
    run_case("quick_gelu", ew_label(s, "x", "x", "y"), [&](Case& c) {
      const Input x = input(s.x, adt(), 6.0f);
      Tensor y = s.alias != 0 ? x.dev : poisoned(s.x, adt());
      be().quick_gelu(y, x.dev);
      c.compare("y", fetch(y), ref::quick_gelu(x.val));
    });
}

TEST_P(BackendOps, Mul) {
  std::vector<EwShape> shapes(std::begin(kEwShapes), std::end(kEwShapes));
  shapes.push_back({{5, 1001}, 2});
  for (const EwShape& s : shapes)
    run_case("mul", ew_label(s, "a", "b", "y"), [&](Case& c) {
      const Input a = input(s.x, adt(), 3.0f), b = input(s.x, adt(), 2.0f);
      Tensor y = s.alias == 1 ? a.dev : s.alias == 2 ? b.dev : poisoned(s.x, adt());
      be().mul(y, a.dev, b.dev);
      c.compare("y", fetch(y), ref::mul(a.val, b.val));
    });
}

TEST_P(BackendOps, GatedAdd) {
  struct Shp {
    int64_t B, T, D;
    int alias;  // 0 none, 1 y = x, 2 y = h
  };
  // D = 33 and 130: no whole 16-byte vectors per row (the scalar kernel); 64 and 3072: vectors.
  for (const Shp& s : {Shp{2, 5, 33, 0}, Shp{1, 7, 64, 1}, Shp{3, 1, 130, 2}, Shp{2, 9, 3072, 0}, Shp{1, 1, 1, 0}})
    run_case("gated_add",
             "x=[" + std::to_string(s.B) + ", " + std::to_string(s.T) + ", " + std::to_string(s.D) + "]" +
                 (s.alias == 1 ? " y=x" : s.alias == 2 ? " y=h" : ""),
             [&](Case& c) {
               const Shape xs{s.B, s.T, s.D};
               const Input x = input(xs, adt(), 3.0f), h = input(xs, adt(), 2.0f), g = input({s.B, s.D}, adt(), 1.5f);
               Tensor y = s.alias == 1 ? x.dev : s.alias == 2 ? h.dev : poisoned(xs, adt());
               be().gated_add(y, x.dev, g.dev, h.dev);
               c.compare("y", fetch(y), ref::gated_add(x.val, g.val, h.val, s.B, s.T, s.D));
             });
}

TEST_P(BackendOps, RopeInterleaved) {
  struct Shp {
    int64_t N, H, hd;
  };
  for (const Shp& s : {Shp{5, 3, 8}, Shp{7, 2, 64}, Shp{1, 1, 2}, Shp{33, 4, 128}, Shp{3, 5, 6}})
    run_case("rope_interleaved",
             "x=[" + std::to_string(s.N) + ", " + std::to_string(s.H) + ", " + std::to_string(s.hd) + "]",
             [&](Case& c) {
               Input x = input({s.N, s.H, s.hd}, adt(), 2.0f);
               // Tables as FLUX builds them (one angle per pair, cos[2k] = cos[2k+1]), angles up to ±40 rad.
               const auto angles = test::random_floats(static_cast<size_t>(s.N * s.hd / 2), seed_++, 40.0f);
               std::vector<float> cs(static_cast<size_t>(s.N * s.hd)), sn(cs.size());
               for (size_t p = 0; p < angles.size(); ++p) {
                 cs[2 * p] = cs[2 * p + 1] = std::cos(angles[p]);
                 sn[2 * p] = sn[2 * p + 1] = std::sin(angles[p]);
               }
               const Tensor cos_h = Tensor::from_f32(cs, {s.N, s.hd}), sin_h = Tensor::from_f32(sn, {s.N, s.hd});
               const Vec want = ref::rope_interleaved(x.val, values_of(cos_h), values_of(sin_h), s.N, s.H, s.hd);
               be().rope_interleaved(x.dev, to_dev(cos_h), to_dev(sin_h));
               c.compare("x", fetch(x.dev), want);
             });
}

TEST_P(BackendOps, AttentionWithBias) {
  struct Shp {
    int64_t B, Lq, Lk, H, hd;
    bool per_sample;
    float scale;
    bool causal;  // the bias is CLIP's causal mask (0 or −inf) instead of random values
  };
  const Shp shapes[] = {
      {2, 5, 7, 3, 8, false, 1.0f, false},   {2, 5, 7, 3, 8, true, 0.37f, false},
      {1, 77, 77, 2, 64, false, 0.125f, true},  // CLIP: 77 tokens, causal through the bias
      {2, 40, 70, 4, 32, false, 1.0f, false},   // more keys than one chunk of 32, Lk not a multiple of it
      {1, 33, 65, 1, 48, true, 0.5f, false},   {1, 128, 128, 4, 64, false, 1.0f, false},  // T5-like, unscaled
      {2, 9, 37, 2, 160, true, 0.3f, false},  // a head dim past the CUDA backend's tiled kernel (128)
  };
  for (const Shp& s : shapes) {
    const std::string label = "q=[" + std::to_string(s.B) + ", " + std::to_string(s.Lq) + ", " + std::to_string(s.H) +
                              ", " + std::to_string(s.hd) + "] Lk=" + std::to_string(s.Lk) +
                              (s.per_sample ? " bias/sample" : " bias shared") + (s.causal ? " causal" : "") +
                              " scale=" + std::to_string(s.scale).substr(0, 5);
    run_case("attention_with_bias", label, [&](Case& c) {
      const Input q = input({s.B, s.Lq, s.H, s.hd}, adt(), 1.5f), k = input({s.B, s.Lk, s.H, s.hd}, adt(), 1.5f),
                  v = input({s.B, s.Lk, s.H, s.hd}, adt(), 2.0f);
      const Shape bs = s.per_sample ? Shape{s.B, s.H, s.Lq, s.Lk} : Shape{s.H, s.Lq, s.Lk};
      std::vector<float> b = test::random_floats(static_cast<size_t>(shape_numel(bs)), seed_++, 2.0f);
      const int64_t planes = shape_numel(bs) / (s.Lq * s.Lk);
      for (int64_t p = 0; p < planes; ++p)
        for (int64_t i = 0; i < s.Lq; ++i)
          for (int64_t j = 0; j < s.Lk; ++j) {
            float& e = b[static_cast<size_t>((p * s.Lq + i) * s.Lk + j)];
            if (s.causal) e = j > i ? -INFINITY : 0.0f;
            else if ((i * 7 + j * 3 + p) % 11 == 0) e = -INFINITY;  // scattered hidden keys
          }
      if (!s.causal && s.Lq > 2)  // a row that sees no key (zeros), in the last plane
        for (int64_t j = 0; j < s.Lk; ++j) b[static_cast<size_t>(((planes - 1) * s.Lq + 2) * s.Lk + j)] = -INFINITY;
      const Tensor bias_h = Tensor::from_f32(b, bs);
      Tensor out = poisoned(q.host.shape(), adt());
      be().attention_with_bias(out, q.dev, k.dev, v.dev, to_dev(bias_h), s.scale);
      c.compare("out", fetch(out),
                ref::attention_with_bias(q.val, k.val, v.val, values_of(bias_h), s.B, s.Lq, s.Lk, s.H, s.hd,
                                         s.per_sample, s.scale));
    });
  }
}

// conv2d: "same" 3×3 convolutions as the VAE's, 1×1 shortcuts (with and without padding), a valid 3×3, channel
// counts off every vector width; Cout ≤ 8 (the CUDA backend's direct kernel) and above (column matrix + GEMM).
// "conv2d[bands]" reruns the GEMM cases with the CUDA backend's column-matrix limit lowered
// (OMNI_CUDA_CONV2D_BAND_ELEMS), so whole images go one at a time and large ones in bands of 1 and 4 rows, as a
// 1024² image does at the default limit.
TEST_P(BackendOps, Conv2d) {
  struct Shp {
    int64_t B, Cin, H, W, Cout, k, pad;
    bool bias;
  };
  const Shp shapes[] = {
      {2, 5, 7, 6, 9, 3, 1, true},    {1, 16, 9, 11, 3, 3, 1, true},   {2, 12, 5, 4, 16, 1, 0, true},
      {1, 6, 8, 5, 4, 3, 0, false},   {1, 3, 4, 4, 5, 1, 1, true},     {1, 24, 33, 70, 17, 3, 1, true},
      {1, 10, 6, 5, 12, 1, 1, false}, {1, 32, 16, 16, 64, 3, 1, true}, {2, 7, 9, 13, 11, 3, 0, true},
      // Cout <= 8 with more than one tile of 256 weight taps, and rows wider than one thread block (direct kernel
      // and column matrix alike).
      {1, 40, 6, 7, 3, 3, 1, true},   {2, 30, 5, 9, 8, 3, 1, false},   {1, 4, 3, 150, 2, 3, 1, true},
      {1, 3, 4, 300, 9, 3, 1, true},
  };
  auto label = [](const Shp& s) {
    return "x=[" + std::to_string(s.B) + ", " + std::to_string(s.Cin) + ", " + std::to_string(s.H) + ", " +
           std::to_string(s.W) + "] Cout=" + std::to_string(s.Cout) + " k=" + std::to_string(s.k) +
           " pad=" + std::to_string(s.pad) + (s.bias ? "" : " no bias");
  };
  auto run = [&](const Shp& s, Case& c) {
    const int64_t Ho = s.H + 2 * s.pad - s.k + 1, Wo = s.W + 2 * s.pad - s.k + 1;
    const Input x = input({s.B, s.Cin, s.H, s.W}, adt(), 2.0f);
    const Input w = input({s.Cout, s.Cin, s.k, s.k}, DType::F32, 0.5f), b = input({s.Cout}, DType::F32);
    Tensor y = poisoned({s.B, s.Cout, Ho, Wo}, adt());
    be().conv2d(y, x.dev, w.dev, s.bias ? &b.dev : nullptr, s.pad);
    c.compare("y", fetch(y),
              ref::conv2d(x.val, w.val, s.bias ? b.val : Vec{}, s.B, s.Cin, s.H, s.W, s.Cout, s.k, s.k, s.pad));
  };
  for (const Shp& s : shapes) run_case("conv2d", label(s), [&](Case& c) { run(s, c); });
  struct Limit {
    const char* elems;
    const char* what;
  };
  for (const Limit& l : {Limit{"3000", "bands of 1 row"}, Limit{"60480", "bands of <= 4 rows"}})
    for (const Shp& s : shapes) {
      if (s.Cout <= 8) continue;  // the direct kernel has no column matrix
      run_case("conv2d[bands]", label(s) + " " + l.what, [&](Case& c) {
        setenv("OMNI_CUDA_CONV2D_BAND_ELEMS", l.elems, 1);
        try {
          run(s, c);
        } catch (...) {
          unsetenv("OMNI_CUDA_CONV2D_BAND_ELEMS");
          throw;
        }
        unsetenv("OMNI_CUDA_CONV2D_BAND_ELEMS");
      });
    }
}

TEST_P(BackendOps, GroupNorm) {
  struct Shp {
    Shape x;
    int64_t G;
    bool affine, alias;
  };
  // FLUX's 32 groups; one channel per group; one group; no affine; a 3-D x; groups of more than 16K values (the
  // CUDA kernel's statistics then come from several blocks, merged), with an odd count (its scalar loads).
  const Shp shapes[] = {
      {{2, 12, 5, 3}, 4, true, false},   {{1, 32, 7, 9}, 32, true, true},    {{3, 6, 1, 1}, 1, true, false},
      {{1, 10, 6, 4}, 5, false, false},  {{2, 6, 10}, 3, true, false},       {{1, 8, 64, 65}, 2, true, false},
      {{2, 4, 128, 130}, 2, false, true}, {{1, 3, 111, 151}, 1, true, false}, {{1, 64, 32, 32}, 32, true, false},
  };
  for (const Shp& s : shapes) {
    const std::string label = "x=" + dims(s.x) + " G=" + std::to_string(s.G) + (s.affine ? "" : " no affine") +
                              (s.alias ? " y=x" : "");
    run_case("group_norm", label, [&](Case& c) {
      const int64_t B = s.x[0], C = s.x[1], S = shape_numel(s.x) / (B * C);
      // Values around a mean of 5: the variance must not come from E[x²] − E[x]².
      Input x = input(s.x, adt(), 3.0f);
      {
        Tensor shifted = x.host.to(DType::F32);
        for (int64_t i = 0; i < shifted.numel(); ++i) shifted.data<float>()[i] += 5.0f;
        x.host = shifted.to(adt());
        x.val = values_of(x.host);
        be().copy_from_cpu(x.dev, x.host);
      }
      const Input w = input({C}, DType::F32, 1.5f), b = input({C}, DType::F32, 0.5f);
      Tensor y = s.alias ? x.dev : poisoned(s.x, adt());
      be().group_norm(y, x.dev, s.G, 1e-6f, s.affine ? &w.dev : nullptr, s.affine ? &b.dev : nullptr);
      c.compare("y", fetch(y),
                ref::group_norm(x.val, s.affine ? w.val : Vec{}, s.affine ? b.val : Vec{}, B, C, S, s.G, 1e-6));
    });
  }
}

// The bits-copied ops, in the activation dtype and in another element size (F32 beside 16-bit activations, BF16
// beside F32: any dtype is accepted).
TEST_P(BackendOps, UpsampleNearest2x) {
  const DType other = adt() == DType::F32 ? DType::BF16 : DType::F32;
  struct Shp {
    Shape x;
    DType dt;
  };
  for (const Shp& s : {Shp{{2, 3, 5, 7}, adt()}, Shp{{1, 1, 1, 1}, adt()}, Shp{{4, 33, 2}, adt()},
                       Shp{{1, 2, 64, 64}, adt()}, Shp{{3, 5, 9}, other}})
    run_case("upsample_nearest2x", "x=" + dims(s.x) + " " + std::string(dtype_name(s.dt)), [&](Case& c) {
      const Input x = input(s.x, s.dt);
      Shape ys = s.x;
      ys[ys.size() - 2] *= 2;
      ys.back() *= 2;
      Tensor y = poisoned(ys, s.dt);
      be().upsample_nearest2x(y, x.dev);
      const int64_t H = s.x[s.x.size() - 2], W = s.x.back();
      c.compare("y", fetch(y), ref::upsample_nearest2x(x.val, shape_numel(s.x) / (H * W), H, W));
    });
}

TEST_P(BackendOps, Transpose) {
  const DType other = adt() == DType::F32 ? DType::BF16 : DType::F32;
  struct Shp {
    Shape x;
    DType dt;
  };
  // Sizes across the 32×32 tiles, a single row, square tiles, 4-D (NCHW planes to token rows), the other size.
  for (const Shp& s : {Shp{{2, 37, 70}, adt()}, Shp{{1, 1, 5}, adt()}, Shp{{3, 64, 64}, adt()},
                       Shp{{2, 3, 33, 31}, adt()}, Shp{{1, 130, 7}, adt()}, Shp{{2, 45, 19}, other}})
    run_case("transpose", "x=" + dims(s.x) + " " + std::string(dtype_name(s.dt)), [&](Case& c) {
      const Input x = input(s.x, s.dt);
      Shape ys = s.x;
      std::swap(ys[ys.size() - 2], ys[ys.size() - 1]);
      Tensor y = poisoned(ys, s.dt);
      be().transpose(y, x.dev);
      const int64_t M = s.x[s.x.size() - 2], N = s.x.back();
      c.compare("y", fetch(y), ref::transpose_last2(x.val, shape_numel(s.x) / (M * N), M, N));
    });
}

// Bad arguments of these ops throw an omni::Error naming the op (the contract's checks, before any backend code).
TEST_P(BackendOps, DiffusionOpsErrorsNameTheOp) {
  const DType a = adt();
  const DType other = a == DType::F32 ? DType::BF16 : DType::F32;
  auto buf = [&](const Shape& s, DType dt) { return be().alloc(s, dt); };
  struct ErrCase {
    const char* op;
    const char* what;
    std::function<void()> call;
  };
  const std::vector<ErrCase> cases = {
      {"silu", "y of another shape", [&] { Tensor y = buf({5}, a); be().silu(y, buf({4}, a)); }},
      {"quick_gelu", "y of another dtype", [&] { Tensor y = buf({4}, other); be().quick_gelu(y, buf({4}, a)); }},
      {"mul", "b of another shape", [&] { Tensor y = buf({4}, a); be().mul(y, buf({4}, a), buf({5}, a)); }},
      {"gated_add", "gate [2, 8] for 3 samples",
       [&] { Tensor x = buf({3, 2, 8}, a); be().gated_add(x, x, buf({2, 8}, a), buf({3, 2, 8}, a)); }},
      {"rope_interleaved", "odd head dim",
       [&] { Tensor x = buf({2, 1, 5}, a); be().rope_interleaved(x, buf({2, 5}, DType::F32), buf({2, 5}, DType::F32)); }},
      {"rope_interleaved", "16-bit tables",
       [&] { Tensor x = buf({2, 1, 4}, a); be().rope_interleaved(x, buf({2, 4}, DType::BF16), buf({2, 4}, DType::BF16)); }},
      {"attention_with_bias", "bias of the wrong shape",
       [&] {
         Tensor out = buf({1, 4, 2, 8}, a);
         be().attention_with_bias(out, buf({1, 4, 2, 8}, a), buf({1, 4, 2, 8}, a), buf({1, 4, 2, 8}, a),
                                  buf({2, 4, 5}, DType::F32), 1.0f);
       }},
      {"conv2d", "w of another input channel count",
       [&] {
         Tensor y = buf({1, 5, 4, 4}, a);
         be().conv2d(y, buf({1, 12, 4, 4}, a), buf({5, 11, 3, 3}, DType::F32), nullptr, 1);
       }},
      {"conv2d", "a 16-bit weight",
       [&] {
         Tensor y = buf({1, 5, 4, 4}, a);
         be().conv2d(y, buf({1, 12, 4, 4}, a), buf({5, 12, 3, 3}, DType::BF16), nullptr, 1);
       }},
      {"group_norm", "5 groups of 12 channels",
       [&] { Tensor x = buf({1, 12, 4, 4}, a); be().group_norm(x, x, 5, 1e-6f); }},
      {"upsample_nearest2x", "y not twice the size",
       [&] { Tensor y = buf({1, 2, 8, 7}, a); be().upsample_nearest2x(y, buf({1, 2, 4, 4}, a)); }},
      {"transpose", "y aliasing x", [&] { Tensor x = buf({3, 3}, a); be().transpose(x, x); }},
  };
  int n = 0;
  for (const ErrCase& e : cases) {
    const std::string msg = testing_support::error_of(e.call);
    const std::string op = e.op;
    const bool named = msg.find(op + ":") != std::string::npos ||
                       msg.find("does not support " + op + " ") != std::string::npos;
    EXPECT_TRUE(named) << variant() << " " << op << " with " << e.what << ": expected an omni::Error naming \""
                       << op << ":\", got: " << msg;
    n += named ? 1 : 0;
  }
  std::printf("  [%-15s] %-20s %d/%zu bad calls threw an omni::Error naming the op\n", variant().c_str(),
              "errors (diffusion)", n, cases.size());
}

INSTANTIATE_TEST_SUITE_P(Variants, BackendOps, ::testing::ValuesIn(registered_variants()), variant_test_name);

}  // namespace
}  // namespace omni
