// The prompt-following scorer of models/tiny-flux: the MLP classifier in its classifier/ folder (config.json +
// model.safetensors, trained by tools/train_tiny_flux.py on Fashion-MNIST). It reads an image as the pipeline makes
// it (8-bit RGB, image_size × image_size): gray = mean of R, G, B / 255, flattened row-major → fc1 → GELU (tanh
// form) → fc2 → softmax. The class it sees, set against the class the prompt asked for, scores prompt-following;
// the GELU outputs (the penultimate features) feed a Fréchet distance between generated and real images
// (frechet_distance.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "io/image/png.h"

namespace omni {

struct ImageClassification {
  std::vector<float> probabilities;  // softmax over the classes, [num_classes]
  std::vector<float> features;       // GELU(fc1 · x), [hidden_size]
  int64_t label = 0;                 // argmax of probabilities (the first of equal ones)
};

class ImageClassifier {
 public:
  // dir: the classifier/ folder. The config and the four tensors (fc1.weight [H, S·S], fc1.bias [H],
  // fc2.weight [C, H], fc2.bias [C]; F32, BF16 or F16) are checked, errors naming the file and field or tensor.
  // Runs on `backend` when it has F32 linear_dense and gelu_tanh, else on the CPU backend.
  static std::unique_ptr<ImageClassifier> open(const std::string& dir, Backend& backend);
  ~ImageClassifier();

  int64_t image_size() const;
  int64_t hidden_size() const;
  const std::vector<std::string>& labels() const;  // class names, by index
  const std::string& label_name(int64_t label) const;

  // One batch; every image must be image_size × image_size (an error naming its index and size otherwise).
  std::vector<ImageClassification> classify(const std::vector<const RgbImage*>& images);
  ImageClassification classify(const RgbImage& image);

 private:
  struct Impl;
  explicit ImageClassifier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace omni
