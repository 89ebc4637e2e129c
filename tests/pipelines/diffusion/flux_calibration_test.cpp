// The calibration capture of FLUX AutoRound (pipelines/diffusion/flux_calibration.h) on the tiny text-to-image
// folder: one sample per (caption, step), and each sample is exactly what the first double block reads at that
// step of that caption's denoising loop: its temb equals the traced forward's, and the double block run on the
// captured sample (through the tuning context, as the tuner runs it) gives the traced block-0 outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/flux/flux_latents.h"
#include "nn/flux_blocks.h"
#include "nn/flux_transformer.h"
#include "pipelines/autoround/tuning_context.h"
#include "pipelines/diffusion/flow_match_euler.h"
#include "pipelines/diffusion/flux_calibration.h"
#include "pipelines/diffusion/flux_text_to_image.h"
#include "support/error_of.h"
#include "support/flux_t2i_folder.h"

namespace omni {
namespace {

const std::string kTmp = std::string(OMNI_BINARY_DIR) + "/flux_calibration_test.tmp";

// Sample b of [n, ...] as [1, ...].
Tensor sample(const Tensor& all, int64_t b) { return all.slice_rows(b, b + 1).clone(); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.numel(), b.numel());
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    m = std::max(m, std::abs(static_cast<double>(a.data<float>()[i]) - b.data<float>()[i]));
  return m;
}

double max_abs(const Tensor& a) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(static_cast<double>(a.data<float>()[i])));
  return m;
}

TEST(FluxCalibration, EverySampleIsTheFirstBlocksInputAtItsStep) {
  const std::string dir = testing_support::assemble_flux_t2i_folder(kTmp + "/in");
  Backend& be = cpu_backend();
  auto t2i = FluxTextToImage::open(dir, be);
  const std::vector<std::string> captions = {"a red bicycle on a brick wall", "two cats asleep on a sofa"};
  FluxCalibrationOptions o;
  o.width = o.height = 64;
  o.steps = 3;
  o.seed = 5;
  o.max_sequence_length = 24;
  int64_t reported = 0;
  const NamedTensors cal = capture_flux_calibration(*t2i, be, captions, o, [&](int64_t i, int64_t n) {
    EXPECT_EQ(n, 2);
    reported = i;
  });
  EXPECT_EQ(reported, 2);

  FluxPipeline& pipe = t2i->pipeline();
  FluxTransformer& tr = pipe.transformer();
  const FluxSpec& s = tr.spec();
  const int64_t n = 6, Ni = 16, Nt = 24, D = s.inner_dim(), L = Nt + Ni;  // 64 px: a 4 × 4 packed grid
  EXPECT_EQ(cal.at("img").shape(), (Shape{n, Ni, D}));
  EXPECT_EQ(cal.at("txt").shape(), (Shape{n, Nt, D}));
  EXPECT_EQ(cal.at("temb").shape(), (Shape{n, D}));
  EXPECT_EQ(cal.at("rope_cos").shape(), (Shape{n, L, s.head_dim}));
  EXPECT_EQ(cal.at("rope_sin").shape(), (Shape{n, L, s.head_dim}));

  // The reference: caption 1 (seed 5 + 1) through the loop by hand, with a traced forward at steps 0 and 2.
  FluxSampling fs;
  fs.width = fs.height = 64;
  fs.steps = 3;
  fs.seed = o.seed + 1;
  const FluxPromptEmbeds e = t2i->encode(captions[1], 24);
  std::vector<Tensor> after;  // the latents after each step
  pipe.denoise(fs, e, nullptr, pack_flux_latents(pipe.noise(fs)), &after);
  FlowMatchEulerScheduler sched(pipe.scheduler_config());
  sched.set_timesteps(3, Ni);
  const auto [h, w] = pipe.latent_size(fs);
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(dir + "/transformer", "diffusion_pytorch_model");
  const FluxDoubleBlock block(s);
  TuningContext ctx(
      block, "transformer_blocks.0", [&](const std::string& name) { return ckpt.weight(name); },
      [](const LinearDesc&) { return LinearQuantSpec{false, {}}; }, be);
  for (const int64_t step : {0, 2}) {
    FluxInputs in;
    in.hidden_states = step == 0 ? pack_flux_latents(pipe.noise(fs)) : after[static_cast<size_t>(step - 1)];
    in.encoder_hidden_states = e.sequence.view({1, Nt, e.sequence.dim(1)});
    in.pooled_projections = e.pooled.view({1, e.pooled.dim(0)});
    in.timestep = {sched.timesteps()[static_cast<size_t>(step)] / 1000.0f};
    in.guidance = {o.guidance};
    in.img_ids = flux_latent_image_ids(h, w);
    in.txt_ids = Tensor::zeros({Nt, 3}, DType::F32);
    FluxTrace trace;
    tr.forward(in, &trace);

    const int64_t k = 1 * o.steps + step;
    NamedTensors x;
    for (const char* name : {"img", "txt", "temb", "rope_cos", "rope_sin"}) x.set(name, sample(cal.at(name), k));
    EXPECT_EQ(max_abs_diff(x.at("temb"), trace.temb), 0.0) << "step " << step;
    const NamedTensors y = ctx.forward(x, false);
    const Tensor yi = be.download(y.at("img")), yt = be.download(y.at("txt"));
    const double di = max_abs_diff(yi, trace.block_img[0]), dt = max_abs_diff(yt, trace.block_txt[0]);
    std::cout << "caption 2, step " << step << ": block-0 output max |diff| img " << di << " (of " << max_abs(yi)
              << "), txt " << dt << " (of " << max_abs(yt) << ")\n";
    EXPECT_LT(di, 1e-4 * max_abs(yi)) << "step " << step;
    EXPECT_LT(dt, 1e-4 * max_abs(yt)) << "step " << step;
  }
  // Steps of one caption see other latents and timesteps; captions see other text.
  EXPECT_GT(max_abs_diff(sample(cal.at("img"), 0), sample(cal.at("img"), 1)), 0.0);
  EXPECT_GT(max_abs_diff(sample(cal.at("temb"), 0), sample(cal.at("temb"), 1)), 0.0);
  EXPECT_EQ(max_abs_diff(sample(cal.at("txt"), 0), sample(cal.at("txt"), 2)), 0.0);
  EXPECT_GT(max_abs_diff(sample(cal.at("txt"), 0), sample(cal.at("txt"), 3)), 0.0);
}

TEST(FluxCalibration, CaptionFilesAndSizes) {
  std::filesystem::create_directories(kTmp);
  const std::string f = kTmp + "/captions.txt";
  std::ofstream(f) << "  first caption \r\n\n\tsecond one\nthird";
  EXPECT_EQ(read_caption_file(f), (std::vector<std::string>{"first caption", "second one", "third"}));
  std::ofstream(kTmp + "/blank.txt") << " \n\n";
  EXPECT_NE(testing_support::error_of([&] { read_caption_file(kTmp + "/blank.txt"); }).find("holds no caption"),
            std::string::npos);
  EXPECT_NE(testing_support::error_of([&] { read_caption_file(kTmp + "/none.txt"); }).find("none.txt: no such file"),
            std::string::npos);
  EXPECT_EQ(parse_image_size("256x128", "--calib-size"), (std::pair<int64_t, int64_t>{256, 128}));
  EXPECT_EQ(parse_image_size("64", "--calib-size"), (std::pair<int64_t, int64_t>{64, 64}));
  EXPECT_NE(testing_support::error_of([] { parse_image_size("64x", "--calib-size"); }).find("--calib-size 64x"),
            std::string::npos);
}

}  // namespace
}  // namespace omni
