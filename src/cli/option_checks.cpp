#include "cli/option_checks.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace omni::cli {
namespace {

// The option's text as a finite number, or false.
bool parse_finite(const std::string& text, double* value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *value = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && errno == 0 && std::isfinite(*value);
}

std::string number_str(double v) {
  if (std::fabs(v) < 1e15 && v == std::floor(v)) return std::to_string(static_cast<long long>(v));
  std::ostringstream s;
  s << v;
  return s.str();
}

CLI::Validator make(std::string description, std::function<bool(double)> ok) {
  return CLI::Validator(
      [description, ok](std::string& text) -> std::string {
        double v = 0;
        if (!parse_finite(text, &v) || !ok(v)) return "expected " + description + ", found " + text;
        return {};
      },
      "", description);
}

}  // namespace

CLI::Validator positive() {
  return make("a positive number", [](double v) { return v > 0; });
}

CLI::Validator non_negative() {
  return make("a number >= 0", [](double v) { return v >= 0; });
}

CLI::Validator in_range(double lo, double hi, bool lo_open) {
  const std::string description =
      "a number in " + std::string(lo_open ? "(" : "[") + number_str(lo) + ", " + number_str(hi) + "]";
  return make(description, [lo, hi, lo_open](double v) { return (lo_open ? v > lo : v >= lo) && v <= hi; });
}

}  // namespace omni::cli
