// Same-seed image comparison, as vLLM-Omni's output comparison tool measures it (../shared/docs/reference/
// vllm_omni.md §3.8): metrics in float64 over the uint8 RGB values of a reference and a candidate image, and the
// thresholds of its loose / default / strict levels.
#pragma once

#include <string>
#include <vector>

#include "io/image/png.h"

namespace omni {

struct ImageMetrics {
  double cosine = 0;        // <a, b> / (|a| |b|)
  double mae = 0;           // mean |a − b|
  double mse = 0;           // mean (a − b)²
  double rmse = 0;
  double max_abs = 0;       // max |a − b|
  double l2 = 0;            // sqrt(Σ (a − b)²)
  double relative_l2 = 0;   // l2 / |a| (a: the reference)
  double psnr_db = 0;       // 20·log10(255) − 10·log10(mse); +inf for identical images
  int64_t values = 0;       // compared uint8 values
};

// The images must have the same size (an error naming both otherwise); several pairs are compared as one stack.
ImageMetrics compare_images(const std::vector<const RgbImage*>& reference, const std::vector<const RgbImage*>& candidate);

enum class CompareLevel { Loose, Default, Strict };
CompareLevel parse_compare_level(const std::string& name);  // "loose", "default", "strict"
const char* compare_level_name(CompareLevel level);

struct CompareThresholds {
  double min_psnr_db, max_mae, min_cosine, max_relative_l2;
};
// loose: PSNR ≥ 20 dB, MAE ≤ 12, cosine ≥ 0.98, rel-L2 ≤ 0.20; default: 25 dB, 6, 0.98, 0.20; strict: 30 dB, 3,
// 0.995, 0.08 (vLLM-Omni's "recommended", "good" and "strict" columns; "good" sets no cosine or rel-L2 bound, so
// default keeps the recommended ones).
CompareThresholds compare_thresholds(CompareLevel level);
// The failed conditions, e.g. "PSNR 23.1 dB < 25 dB"; empty when every one holds.
std::vector<std::string> failed_thresholds(const ImageMetrics& m, const CompareThresholds& t);

// A contact sheet: one row per pair, reference | candidate | |difference| × 4 (clamped), 8 white pixels apart.
RgbImage contact_sheet(const std::vector<const RgbImage*>& reference, const std::vector<const RgbImage*>& candidate);

}  // namespace omni
