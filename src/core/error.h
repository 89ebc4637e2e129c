// Errors with context. Libraries throw omni::Error; only front ends decide how to report and exit.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace omni {

// Concatenates anything streamable into one string: str_cat("tensor ", name, " has ", n, " dims").
template <class... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Adds an outer context line ("while loading model.safetensors: ...") to an error raised deeper down.
[[noreturn]] void rethrow_with_context(const std::string& context);

}  // namespace omni

// OMNI_CHECK(cond, parts...) throws omni::Error with the concatenated message when cond is false.
#define OMNI_CHECK(cond, ...)                                   \
  do {                                                          \
    if (!(cond)) throw ::omni::Error(::omni::str_cat(__VA_ARGS__)); \
  } while (0)

#define OMNI_FAIL(...) throw ::omni::Error(::omni::str_cat(__VA_ARGS__))
