// omniround compare --reference A --candidate B: same-seed image comparison (PNG files, or folders of PNGs paired
// by file name), with vLLM-Omni's metrics and thresholds, a JSON report and a contact sheet.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/file_util.h"
#include "io/image/png.h"
#include "pipelines/diffusion/frechet_distance.h"
#include "pipelines/diffusion/image_classifier.h"
#include "pipelines/diffusion/image_metrics.h"

namespace omni::cli {
namespace {

namespace fs = std::filesystem;

struct CompareArgs {
  std::string reference, candidate, level = "default", json, sheet, classifier;
};

// Prompt-following of both image sets by a classifier (tiny-flux's classifier/): the class each image was asked
// for is the number before the first '-' of its file name ("07-3.png": class 7), an index into the classifier's
// labels. Accuracy of each set, and the Fréchet distance between the two sets' penultimate features.
struct ClassScores {
  double reference_accuracy = 0, candidate_accuracy = 0, frechet = 0;
};

int64_t asked_class(const std::string& name, int64_t num_classes) {
  const size_t dash = name.find('-');
  const std::string head = name.substr(0, dash);
  OMNI_CHECK(dash != std::string::npos && !head.empty() && head.size() <= 4 &&
                 head.find_first_not_of("0123456789") == std::string::npos,
             "compare --classifier: image \"", name, "\" does not start with its class index and '-' (e.g. 07-3.png)");
  const int64_t c = std::stoll(head);
  OMNI_CHECK(c < num_classes, "compare --classifier: image \"", name, "\" asks for class ", c, " but the classifier has ",
             num_classes);
  return c;
}

ClassScores score_classes(const std::string& dir, const std::vector<std::string>& names,
                          const std::vector<RgbImage>& ref, const std::vector<RgbImage>& cand) {
  OMNI_CHECK(names.size() >= 2 && !names[0].empty(), "compare --classifier needs two folders of at least two images");
  std::unique_ptr<ImageClassifier> clf = ImageClassifier::open(dir, cpu_backend());
  ClassScores s;
  std::vector<std::vector<float>> fr, fc;
  for (size_t i = 0; i < names.size(); ++i) {
    const int64_t want = asked_class(names[i], static_cast<int64_t>(clf->labels().size()));
    const ImageClassification r = clf->classify(ref[i]), c = clf->classify(cand[i]);
    s.reference_accuracy += r.label == want;
    s.candidate_accuracy += c.label == want;
    fr.push_back(r.features);
    fc.push_back(c.features);
  }
  s.reference_accuracy /= static_cast<double>(names.size());
  s.candidate_accuracy /= static_cast<double>(names.size());
  s.frechet = frechet_distance(fr, fc);
  return s;
}

// The PNG names of a folder (sorted), or the file itself.
std::vector<std::string> png_names(const std::string& path) {
  std::vector<std::string> out;
  if (!fs::is_directory(path)) return {""};
  for (const fs::directory_entry& e : fs::directory_iterator(path)) {
    const std::string n = e.path().filename().string();
    if (e.is_regular_file() && n.size() > 4 && n.compare(n.size() - 4, 4, ".png") == 0) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  OMNI_CHECK(!out.empty(), path, ": no .png files in this folder");
  return out;
}

std::string joined(const std::string& base, const std::string& name) {
  return name.empty() ? base : (fs::path(base) / name).string();
}

nlohmann::ordered_json to_json(const ImageMetrics& m) {
  auto finite = [](double v) -> nlohmann::ordered_json { return std::isfinite(v) ? nlohmann::ordered_json(v) : nullptr; };
  return {{"cosine_similarity", m.cosine}, {"mae", m.mae}, {"mse", m.mse}, {"rmse", m.rmse},
          {"max_abs", m.max_abs}, {"l2", m.l2}, {"relative_l2", finite(m.relative_l2)},
          {"psnr_db", finite(m.psnr_db)}, {"values", m.values}};
}

int run_compare(const CompareArgs& a) {
  const CompareLevel level = parse_compare_level(a.level);
  const CompareThresholds t = compare_thresholds(level);
  OMNI_CHECK(fs::is_directory(a.reference) == fs::is_directory(a.candidate), "compare: --reference ", a.reference,
             " and --candidate ", a.candidate, " must both be PNG files or both folders");
  const std::vector<std::string> names = png_names(a.reference);
  for (const std::string& n : names)
    OMNI_CHECK(fs::is_regular_file(joined(a.candidate, n)), "compare: ", joined(a.candidate, n),
               " is missing (every reference image needs a candidate of the same name)");
  std::vector<RgbImage> ref, cand;
  for (const std::string& n : names) {
    ref.push_back(read_png(joined(a.reference, n)));
    cand.push_back(read_png(joined(a.candidate, n)));
  }
  std::vector<const RgbImage*> all_r, all_c;
  nlohmann::ordered_json images = nlohmann::ordered_json::array();
  std::printf("| image | PSNR dB | MAE | max abs | cosine | rel. L2 |\n|---|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < names.size(); ++i) {
    const ImageMetrics m = compare_images({&ref[i]}, {&cand[i]});
    const std::string label = names[i].empty() ? fs::path(a.reference).filename().string() : names[i];
    std::printf("| %s | %.2f | %.3f | %.0f | %.6f | %.5f |\n", label.c_str(), m.psnr_db, m.mae, m.max_abs, m.cosine,
                m.relative_l2);
    images.push_back({{"name", label}, {"metrics", to_json(m)}});
    all_r.push_back(&ref[i]);
    all_c.push_back(&cand[i]);
  }
  const ImageMetrics all = compare_images(all_r, all_c);
  const std::vector<std::string> failed = failed_thresholds(all, t);
  std::printf("all %zu image(s): PSNR %.2f dB, MAE %.3f, cosine %.6f, relative L2 %.5f -> %s at level %s%s\n",
              names.size(), all.psnr_db, all.mae, all.cosine, all.relative_l2, failed.empty() ? "PASS" : "FAIL",
              compare_level_name(level), failed.empty() ? "" : ":");
  for (const std::string& f : failed) std::printf("  %s\n", f.c_str());
  std::optional<ClassScores> cls;
  if (!a.classifier.empty()) {
    cls = score_classes(a.classifier, names, ref, cand);
    std::printf("classifier %s: class accuracy reference %.1f %%, candidate %.1f %% (drift %+.1f points); Fréchet "
                "distance of the features %.4f\n", a.classifier.c_str(), 100 * cls->reference_accuracy,
                100 * cls->candidate_accuracy, 100 * (cls->candidate_accuracy - cls->reference_accuracy), cls->frechet);
  }
  if (!a.json.empty()) {
    nlohmann::ordered_json j = {
        {"reference", a.reference}, {"candidate", a.candidate}, {"level", compare_level_name(level)},
        {"metric_guidance",
         {{"psnr_db_min", t.min_psnr_db}, {"mae_max", t.max_mae}, {"cosine_min", t.min_cosine},
          {"relative_l2_max", t.max_relative_l2}}},
        {"images", images}, {"all_images_metrics", to_json(all)}, {"passed", failed.empty()}, {"failed", failed}};
    if (cls)
      j["classifier"] = {{"dir", a.classifier}, {"reference_accuracy", cls->reference_accuracy},
                         {"candidate_accuracy", cls->candidate_accuracy}, {"frechet_distance", cls->frechet}};
    write_file_atomic(a.json, j.dump(2) + "\n");
  }
  if (!a.sheet.empty()) write_png(a.sheet, contact_sheet(all_r, all_c), {{"omniround", "compare contact sheet"}});
  return failed.empty() ? 0 : 3;
}

}  // namespace

std::function<int()> add_compare_command(CLI::App& app) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* sub = app.add_subcommand(
      "compare", "compare candidate images with same-seed reference images (PSNR, MAE, cosine, ...); exit 3 below the "
                 "level's thresholds");
  sub->add_option("--reference", args->reference, "reference PNG, or a folder of PNGs")->required()->check(CLI::ExistingPath);
  sub->add_option("--candidate", args->candidate, "candidate PNG, or a folder with the same file names")
      ->required()->check(CLI::ExistingPath);
  sub->add_option("--level", args->level, "thresholds: loose | default | strict (vLLM-Omni's)");
  sub->add_option("--json", args->json, "write a JSON report here");
  sub->add_option("--classifier", args->classifier,
                  "a classifier/ folder (models/tiny-flux): class accuracy of both sets against the class index that "
                  "starts each file name, and the Fréchet distance of their features")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--sheet", args->sheet, "write a contact sheet PNG here (reference | candidate | |diff| x 4)");
  return [args, sub]() -> int {
    if (!sub->parsed()) return 2;
    return run_compare(*args);
  };
}

}  // namespace omni::cli
