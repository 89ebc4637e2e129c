#include "pipelines/diffusion/image_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace omni {
namespace {

void check_pairs(const std::vector<const RgbImage*>& ref, const std::vector<const RgbImage*>& cand) {
  OMNI_CHECK(!ref.empty() && ref.size() == cand.size(), "compare: ", ref.size(), " reference and ", cand.size(),
             " candidate images (expected the same, non-zero number)");
  for (size_t i = 0; i < ref.size(); ++i)
    OMNI_CHECK(ref[i]->width == cand[i]->width && ref[i]->height == cand[i]->height, "compare: image pair ", i,
               " has sizes ", ref[i]->width, "x", ref[i]->height, " (reference) and ", cand[i]->width, "x",
               cand[i]->height, " (candidate)");
}

}  // namespace

ImageMetrics compare_images(const std::vector<const RgbImage*>& reference, const std::vector<const RgbImage*>& candidate) {
  check_pairs(reference, candidate);
  double dot = 0, aa = 0, bb = 0, abs_sum = 0, sq_sum = 0, max_abs = 0;
  int64_t n = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    const std::vector<uint8_t>& a = reference[i]->pixels;
    const std::vector<uint8_t>& b = candidate[i]->pixels;
    for (size_t j = 0; j < a.size(); ++j) {
      const double x = a[j], y = b[j], d = x - y;
      dot += x * y;
      aa += x * x;
      bb += y * y;
      abs_sum += std::abs(d);
      sq_sum += d * d;
      max_abs = std::max(max_abs, std::abs(d));
    }
    n += static_cast<int64_t>(a.size());
  }
  ImageMetrics m;
  m.values = n;
  m.mae = abs_sum / static_cast<double>(n);
  m.mse = sq_sum / static_cast<double>(n);
  m.rmse = std::sqrt(m.mse);
  m.max_abs = max_abs;
  m.l2 = std::sqrt(sq_sum);
  // All-black images: cosine and relative L2 of a zero vector are defined as for identical images when both are
  // zero, and as the worst case otherwise.
  m.cosine = aa > 0 && bb > 0 ? dot / (std::sqrt(aa) * std::sqrt(bb)) : (aa == bb ? 1.0 : 0.0);
  m.relative_l2 = aa > 0 ? m.l2 / std::sqrt(aa) : (sq_sum == 0 ? 0.0 : std::numeric_limits<double>::infinity());
  m.psnr_db = m.mse > 0 ? 20 * std::log10(255.0) - 10 * std::log10(m.mse) : std::numeric_limits<double>::infinity();
  return m;
}

CompareLevel parse_compare_level(const std::string& name) {
  if (name == "loose") return CompareLevel::Loose;
  if (name == "default") return CompareLevel::Default;
  if (name == "strict") return CompareLevel::Strict;
  OMNI_FAIL("unknown comparison level \"", name, "\" (expected loose, default or strict)");
}

const char* compare_level_name(CompareLevel level) {
  switch (level) {
    case CompareLevel::Loose: return "loose";
    case CompareLevel::Default: return "default";
    case CompareLevel::Strict: return "strict";
  }
  return "?";
}

CompareThresholds compare_thresholds(CompareLevel level) {
  switch (level) {
    case CompareLevel::Loose: return {20, 12, 0.98, 0.20};
    case CompareLevel::Default: return {25, 6, 0.98, 0.20};
    case CompareLevel::Strict: return {30, 3, 0.995, 0.08};
  }
  return {20, 12, 0.98, 0.20};
}

std::vector<std::string> failed_thresholds(const ImageMetrics& m, const CompareThresholds& t) {
  std::vector<std::string> out;
  char buf[128];
  if (!(m.psnr_db >= t.min_psnr_db)) {
    std::snprintf(buf, sizeof buf, "PSNR %.2f dB < %.0f dB", m.psnr_db, t.min_psnr_db);
    out.push_back(buf);
  }
  if (!(m.mae <= t.max_mae)) {
    std::snprintf(buf, sizeof buf, "MAE %.3f > %.0f", m.mae, t.max_mae);
    out.push_back(buf);
  }
  if (!(m.cosine >= t.min_cosine)) {
    std::snprintf(buf, sizeof buf, "cosine %.5f < %.3f", m.cosine, t.min_cosine);
    out.push_back(buf);
  }
  if (!(m.relative_l2 <= t.max_relative_l2)) {
    std::snprintf(buf, sizeof buf, "relative L2 %.4f > %.2f", m.relative_l2, t.max_relative_l2);
    out.push_back(buf);
  }
  return out;
}

RgbImage contact_sheet(const std::vector<const RgbImage*>& reference, const std::vector<const RgbImage*>& candidate) {
  check_pairs(reference, candidate);
  constexpr int64_t kGap = 8;
  int64_t width = 0, height = kGap;
  for (const RgbImage* r : reference) {
    width = std::max(width, 3 * r->width + 4 * kGap);
    height += r->height + kGap;
  }
  OMNI_CHECK(width * height <= kMaxPngPixels, "compare: the contact sheet would have ", width, "x", height, " pixels");
  RgbImage sheet{width, height, std::vector<uint8_t>(static_cast<size_t>(width * height * 3), 255)};
  int64_t y0 = kGap;
  for (size_t i = 0; i < reference.size(); ++i) {
    const RgbImage& a = *reference[i];
    const RgbImage& b = *candidate[i];
    for (int64_t y = 0; y < a.height; ++y)
      for (int64_t x = 0; x < a.width; ++x)
        for (int c = 0; c < 3; ++c) {
          const size_t src = static_cast<size_t>((y * a.width + x) * 3 + c);
          auto at = [&](int64_t panel) {
            return static_cast<size_t>(((y0 + y) * width + kGap + panel * (a.width + kGap) + x) * 3 + c);
          };
          sheet.pixels[at(0)] = a.pixels[src];
          sheet.pixels[at(1)] = b.pixels[src];
          const int d = std::abs(int{a.pixels[src]} - int{b.pixels[src]}) * 4;
          sheet.pixels[at(2)] = static_cast<uint8_t>(std::min(d, 255));
        }
    y0 += a.height + kGap;
  }
  return sheet;
}

}  // namespace omni
