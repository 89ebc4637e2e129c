#include "pipelines/diffusion/flow_match_euler.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/half.h"
#include "io/json_fields.h"

namespace omni {
namespace {

// A product the compiler may not fuse with the add or subtract that follows (g++ contracts a·b + c into an FMA
// in C++ mode wherever the target has one): numpy and torch round every product, and so must this file to give
// their bits.
template <typename T>
T mul(T a, T b) {
  T p = a * b;
#if defined(__x86_64__) || defined(__i386__)
  asm("" : "+x"(p));
#elif defined(__aarch64__)
  asm("" : "+w"(p));
#endif
  return p;
}

double number_or(const FieldReader& r, const char* key, double fallback) {
  if (!r.has(key)) return fallback;
  const nlohmann::json& v = r.required(key);
  OMNI_CHECK(v.is_number() && std::isfinite(v.get<double>()), r.file(), ": field \"", key,
             "\" must be a finite number, found ", v.dump());
  return v.get<double>();
}

int64_t int_or(const FieldReader& r, const char* key, int64_t fallback) {
  if (!r.has(key)) return fallback;
  const int64_t x = r.positive_int(key);
  OMNI_CHECK(x <= (int64_t{1} << 40), r.file(), ": field \"", key, "\" is too large, found ", x);
  return x;
}

// numpy's linspace(start, stop, n) in float64: start + i·step, the last point exactly stop.
std::vector<double> linspace(double start, double stop, int64_t n) {
  std::vector<double> y(static_cast<size_t>(n), start);
  if (n < 2) return y;
  const double step = (stop - start) / static_cast<double>(n - 1);
  for (int64_t i = 0; i < n; ++i) y[static_cast<size_t>(i)] = mul(static_cast<double>(i), step) + start;
  y.back() = stop;
  return y;
}

}  // namespace

FlowMatchEulerConfig read_flow_match_euler_config(const std::string& scheduler_dir) {
  const std::string file = (std::filesystem::path(scheduler_dir) / "scheduler_config.json").string();
  const nlohmann::json j = read_json_file(file);
  const FieldReader r(j, file);
  if (r.has("_class_name")) {
    const nlohmann::json& c = r.required("_class_name");
    OMNI_CHECK(c == "FlowMatchEulerDiscreteScheduler", file, ": field \"_class_name\" is ", c.dump(),
               "; only FlowMatchEulerDiscreteScheduler is supported");
  }
  FlowMatchEulerConfig cfg;
  cfg.num_train_timesteps = int_or(r, "num_train_timesteps", cfg.num_train_timesteps);
  cfg.shift = number_or(r, "shift", cfg.shift);
  OMNI_CHECK(cfg.shift > 0, file, ": field \"shift\" must be positive, found ", cfg.shift);
  cfg.use_dynamic_shifting = r.boolean("use_dynamic_shifting", cfg.use_dynamic_shifting);
  cfg.base_shift = number_or(r, "base_shift", cfg.base_shift);
  cfg.max_shift = number_or(r, "max_shift", cfg.max_shift);
  cfg.base_image_seq_len = int_or(r, "base_image_seq_len", cfg.base_image_seq_len);
  cfg.max_image_seq_len = int_or(r, "max_image_seq_len", cfg.max_image_seq_len);
  OMNI_CHECK(cfg.max_image_seq_len != cfg.base_image_seq_len, file, ": fields \"base_image_seq_len\" and "
             "\"max_image_seq_len\" must differ (they define the line of the time shift), both are ",
             cfg.base_image_seq_len);
  if (r.has("time_shift_type")) {
    const nlohmann::json& t = r.required("time_shift_type");
    OMNI_CHECK(t == "exponential" || t == "linear", file, ": field \"time_shift_type\" is ", t.dump(),
               "; supported: \"exponential\", \"linear\"");
    using TS = FlowMatchEulerConfig::TimeShift;
    cfg.time_shift = t == "linear" ? TS::Linear : TS::Exponential;
  }
  for (const char* key : {"invert_sigmas", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                          "stochastic_sampling"})
    OMNI_CHECK(!r.boolean(key, false), file, ": field \"", key, "\" is true; not supported (FLUX's schedule leaves it "
               "false)");
  if (r.has("shift_terminal")) {  // diffusers stretches the schedule when it is set and non-zero
    const nlohmann::json& v = r.required("shift_terminal");
    OMNI_CHECK(v.is_number() && v.get<double>() == 0.0, file, ": field \"shift_terminal\" is ", v.dump(),
               "; not supported (FLUX's schedule has none)");
  }
  return cfg;
}

double flux_time_shift_mu(const FlowMatchEulerConfig& c, int64_t image_seq_len) {
  const double m = (c.max_shift - c.base_shift) / static_cast<double>(c.max_image_seq_len - c.base_image_seq_len);
  const double b = c.base_shift - mul(m, static_cast<double>(c.base_image_seq_len));
  return mul(static_cast<double>(image_seq_len), m) + b;
}

FlowMatchEulerScheduler::FlowMatchEulerScheduler(const FlowMatchEulerConfig& config) : config_(config) {}

void FlowMatchEulerScheduler::set_timesteps(int64_t steps, int64_t image_seq_len) {
  OMNI_CHECK(steps > 0 && steps <= 100000, "flow-match Euler: the number of steps must be in [1, 100000], found ",
             steps);
  OMNI_CHECK(image_seq_len > 0, "flow-match Euler: image_seq_len must be positive, found ", image_seq_len);
  const std::vector<double> lin = linspace(1.0, 1.0 / static_cast<double>(steps), steps);
  sigmas_.assign(static_cast<size_t>(steps) + 1, 0.0f);
  timesteps_.assign(static_cast<size_t>(steps), 0.0f);
  // Every operation below is one float32 operation, as numpy evaluates the formulas on a float32 array with
  // Python scalars (which take the array's dtype).
  const double mu = flux_time_shift_mu(config_, image_seq_len);
  const float shift_num = static_cast<float>(config_.time_shift == FlowMatchEulerConfig::TimeShift::Exponential
                                                 ? std::exp(mu)
                                                 : mu);
  const float s = static_cast<float>(config_.shift), s1 = static_cast<float>(config_.shift - 1.0);
  for (int64_t i = 0; i < steps; ++i) {
    const float t = static_cast<float>(lin[static_cast<size_t>(i)]);
    float sigma;
    if (config_.use_dynamic_shifting) {
      const float d = 1.0f / t - 1.0f;
      sigma = shift_num / (shift_num + d);
    } else {
      sigma = mul(s, t) / (1.0f + mul(s1, t));
    }
    sigmas_[static_cast<size_t>(i)] = sigma;
    timesteps_[static_cast<size_t>(i)] = mul(sigma, static_cast<float>(config_.num_train_timesteps));
  }
}

void FlowMatchEulerScheduler::step(int64_t i, Tensor& sample, const Tensor& velocity) const {
  OMNI_CHECK(i >= 0 && i < num_steps(), "flow-match Euler step ", i, ": the schedule has ", num_steps(),
             " steps (set_timesteps first)");
  OMNI_CHECK(sample.defined() && velocity.defined() && sample.device().is_cpu() && velocity.device().is_cpu(),
             "flow-match Euler step: sample and velocity must be host tensors");
  OMNI_CHECK(sample.shape() == velocity.shape() && sample.dtype() == velocity.dtype(),
             "flow-match Euler step: sample ", dtype_name(sample.dtype()), " ", shape_str(sample.shape()),
             " and velocity ", dtype_name(velocity.dtype()), " ", shape_str(velocity.shape()),
             " must have one shape and one dtype");
  const float dt = sigmas_[static_cast<size_t>(i) + 1] - sigmas_[static_cast<size_t>(i)];
  const int64_t n = sample.numel();
  switch (sample.dtype()) {
    case DType::F32: {
      float* x = sample.data<float>();
      const float* v = velocity.data<float>();
      for (int64_t k = 0; k < n; ++k) x[k] = x[k] + mul(dt, v[k]);
      return;
    }
    case DType::BF16:
    case DType::F16: {
      const bool bf = sample.dtype() == DType::BF16;
      auto widen = [bf](uint16_t h) { return bf ? bf16_to_f32(h) : f16_to_f32(h); };
      auto narrow = [bf](float f) { return bf ? f32_to_bf16(f) : f32_to_f16(f); };
      const float dt16 = widen(narrow(dt));
      uint16_t* x = sample.data<uint16_t>();
      const uint16_t* v = velocity.data<uint16_t>();
      for (int64_t k = 0; k < n; ++k) x[k] = narrow(widen(x[k]) + widen(narrow(mul(dt16, widen(v[k])))));
      return;
    }
    default:
      OMNI_FAIL("flow-match Euler step: sample dtype ", dtype_name(sample.dtype()), " is not F32, BF16 or F16");
  }
}

}  // namespace omni
