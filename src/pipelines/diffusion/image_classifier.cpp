#include "pipelines/diffusion/image_classifier.h"

#include <cmath>
#include <filesystem>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "io/json_fields.h"
#include "io/safetensors.h"

namespace omni {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kMaxSize = 4096;     // image side, hidden width, classes: far from any overflow
constexpr int64_t kMaxBatch = 1 << 16;  // images per classify() call

int64_t bounded_int(const FieldReader& r, const char* key) {
  const int64_t x = r.positive_int(key);
  OMNI_CHECK(x <= kMaxSize, r.file(), ": field \"", key, "\" must be at most ", kMaxSize, ", found ", x);
  return x;
}

// A float weight of the expected shape, as host F32.
Tensor weight(const SafetensorsFile& f, const char* name, const Shape& shape) {
  OMNI_CHECK(f.contains(name), f.path(), ": tensor \"", name, "\" is missing");
  const Tensor t = f.tensor(name);
  OMNI_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16 || t.dtype() == DType::F16, f.path(), ": tensor \"",
             name, "\" has dtype ", dtype_name(t.dtype()), "; expected F32, BF16 or F16");
  OMNI_CHECK(t.shape() == shape, f.path(), ": tensor \"", name, "\" has shape ", shape_str(t.shape()),
             "; the config asks for ", shape_str(shape));
  return t.dtype() == DType::F32 ? t.clone() : t.to(DType::F32);
}

}  // namespace

struct ImageClassifier::Impl {
  Backend* backend = nullptr;
  int64_t size = 0, hidden = 0, classes = 0;
  std::vector<std::string> labels;
  Tensor w1, b1, w2, b2;  // on *backend, F32
};

ImageClassifier::ImageClassifier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ImageClassifier::~ImageClassifier() = default;
int64_t ImageClassifier::image_size() const { return impl_->size; }
int64_t ImageClassifier::hidden_size() const { return impl_->hidden; }
const std::vector<std::string>& ImageClassifier::labels() const { return impl_->labels; }

const std::string& ImageClassifier::label_name(int64_t label) const {
  OMNI_CHECK(label >= 0 && label < impl_->classes, "image classifier: label ", label, " is not in [0, ",
             impl_->classes, ")");
  return impl_->labels[static_cast<size_t>(label)];
}

std::unique_ptr<ImageClassifier> ImageClassifier::open(const std::string& dir, Backend& backend) {
  const std::string file = (fs::path(dir) / "config.json").string();
  OMNI_CHECK(fs::is_regular_file(file), dir, ": not a classifier folder (no config.json)");
  const nlohmann::json j = read_json_file(file);
  OMNI_CHECK(j.is_object(), file, ": expected a JSON object");
  const FieldReader r(j, file);
  const std::string type = r.string_or("model_type", "");
  OMNI_CHECK(type == "omniround_mlp_classifier", file, ": field \"model_type\" is \"", type,
             "\"; only omniround_mlp_classifier (tools/train_tiny_flux.py) is supported");
  const nlohmann::json& layers = r.required("layers");
  OMNI_CHECK(layers == nlohmann::json::array({"fc1", "gelu_tanh", "fc2"}), file,
             ": field \"layers\" must be [\"fc1\", \"gelu_tanh\", \"fc2\"], found ", layers.dump());
  auto impl = std::make_unique<Impl>();
  impl->size = bounded_int(r, "image_size");
  impl->hidden = bounded_int(r, "hidden_size");
  impl->classes = bounded_int(r, "num_classes");
  const int64_t in = r.positive_int("in_features");
  OMNI_CHECK(in == impl->size * impl->size, file, ": field \"in_features\" (", in, ") must be image_size² = ",
             impl->size * impl->size, " (one gray value per pixel)");
  const nlohmann::json& labels = r.required("labels");
  OMNI_CHECK(labels.is_array() && static_cast<int64_t>(labels.size()) == impl->classes, file,
             ": field \"labels\" must list num_classes (", impl->classes, ") names, found ", labels.dump());
  for (const nlohmann::json& l : labels) {
    OMNI_CHECK(l.is_string(), file, ": field \"labels\" must hold strings, found ", l.dump());
    impl->labels.push_back(l.get<std::string>());
  }

  const std::string weights = (fs::path(dir) / "model.safetensors").string();
  OMNI_CHECK(fs::is_regular_file(weights), dir, ": the classifier folder has no model.safetensors");
  const auto f = SafetensorsFile::open(weights);
  // The F32 ops this needs, else the CPU backend (the classifier is tiny: a host round trip costs nothing).
  Backend& b = backend.supports(Op::LinearDense, DType::F32) && backend.supports(Op::GeluTanh, DType::F32)
                   ? backend : cpu_backend();
  impl->backend = &b;
  impl->w1 = b.upload(weight(*f, "fc1.weight", {impl->hidden, in}));
  impl->b1 = b.upload(weight(*f, "fc1.bias", {impl->hidden}));
  impl->w2 = b.upload(weight(*f, "fc2.weight", {impl->classes, impl->hidden}));
  impl->b2 = b.upload(weight(*f, "fc2.bias", {impl->classes}));
  return std::unique_ptr<ImageClassifier>(new ImageClassifier(std::move(impl)));
}

std::vector<ImageClassification> ImageClassifier::classify(const std::vector<const RgbImage*>& images) {
  const int64_t n = static_cast<int64_t>(images.size()), s = impl_->size, H = impl_->hidden, C = impl_->classes;
  OMNI_CHECK(n >= 1 && n <= kMaxBatch, "image classifier: expected 1 to ", kMaxBatch, " images, found ", n);
  Tensor x = Tensor::empty({n, s * s}, DType::F32);
  for (int64_t i = 0; i < n; ++i) {
    const RgbImage& img = *images[static_cast<size_t>(i)];
    OMNI_CHECK(img.width == s && img.height == s && static_cast<int64_t>(img.pixels.size()) == s * s * 3,
               "image classifier: image ", i, " is ", img.width, "x", img.height, "; the classifier reads ", s, "x",
               s, " RGB images");
    float* row = x.data<float>() + i * s * s;
    for (int64_t p = 0; p < s * s; ++p) {  // as the PyTorch classifier: float mean of the three bytes, then / 255
      const uint8_t* px = img.pixels.data() + p * 3;
      row[p] = ((static_cast<float>(px[0]) + static_cast<float>(px[1]) + static_cast<float>(px[2])) / 3.0f) / 255.0f;
    }
  }
  Backend& b = *impl_->backend;
  const Tensor xb = b.upload(x);
  Tensor h = b.alloc({n, H}, DType::F32);
  b.linear_dense(h, xb, impl_->w1, &impl_->b1);
  b.gelu_tanh(h, h);
  Tensor logits = b.alloc({n, C}, DType::F32);
  b.linear_dense(logits, h, impl_->w2, &impl_->b2);
  const Tensor feats = b.download(h), z = b.download(logits);

  std::vector<ImageClassification> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    ImageClassification& c = out[static_cast<size_t>(i)];
    const float* zi = z.data<float>() + i * C;
    c.features.assign(feats.data<float>() + i * H, feats.data<float>() + (i + 1) * H);
    double top = zi[0], sum = 0;
    for (int64_t k = 1; k < C; ++k) top = std::max(top, static_cast<double>(zi[k]));
    c.probabilities.resize(static_cast<size_t>(C));
    for (int64_t k = 0; k < C; ++k) sum += std::exp(static_cast<double>(zi[k]) - top);
    for (int64_t k = 0; k < C; ++k) {
      c.probabilities[static_cast<size_t>(k)] = static_cast<float>(std::exp(static_cast<double>(zi[k]) - top) / sum);
      if (zi[k] > zi[c.label]) c.label = k;
    }
  }
  return out;
}

ImageClassification ImageClassifier::classify(const RgbImage& image) { return classify({&image})[0]; }

}  // namespace omni
