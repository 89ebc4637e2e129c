#include "io/tokenizers/regex_split.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "io/tokenizers/utf8.h"

namespace omni {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

// Per-thread match scratch: one match-data block (one capture pair is all Split needs) and a JIT stack big
// enough for long runs of whitespace. Reused across calls so short encodes pay no allocation.
struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  MatchScratch() {
    if (jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchScratch() {
    pcre2_match_context_free(context);
    if (jit_stack) pcre2_jit_stack_free(jit_stack);
    pcre2_match_data_free(data);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

// HF runs these regexes in Oniguruma, whose \s is Unicode White_Space; PCRE2's \s (UCP) adds U+180E (it is in
// PCRE2's \h). So \s and \S are spelled out as White_Space: outside a class as a class of their own, inside a
// class (only \s) as its members. \S inside a class is left to PCRE2 (no pattern of a known tokenizer has one).
constexpr const char* kWhiteSpace =
    R"(\t\n\x0b\f\r\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000})";

std::string with_onig_whitespace(const std::string& pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's')
        out += in_class ? std::string(kWhiteSpace) : std::string("[") + kWhiteSpace + "]";
      else if (e == 'S' && !in_class)
        out += std::string("[^") + kWhiteSpace + "]";
      else
        out += {c, e};
      continue;
    }
    out.push_back(c);
    if (!in_class && c == '[') {
      in_class = true;
      // A ']' right after '[' or '[^' is a member, not the end.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out.push_back(pattern[++i]);
    } else if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      const size_t end = pattern.find(":]", i + 2);  // a POSIX class [:alpha:] inside a class
      if (end != std::string::npos) {
        out.append(pattern, i + 1, end + 2 - (i + 1));
        i = end + 1;
      }
    } else if (in_class && c == ']') {
      in_class = false;
    }
  }
  return out;
}

}  // namespace

struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() { pcre2_code_free(code); }
};

RegexSplitter::RegexSplitter(const std::string& pattern, bool literal, const std::string& source)
    : compiled_(std::make_unique<Compiled>()), source_(source) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // A literal takes only a few options (with PCRE2_UCP it fails to compile, so every "String" pattern was refused).
  // A regex is never allowed \C: it matches one byte even in UTF mode, so a match could end inside a character
  // and the next search would start there with PCRE2_NO_UTF_CHECK, which PCRE2 leaves undefined.
  const uint32_t options =
      literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C;
  const std::string translated = literal ? pattern : with_onig_whitespace(pattern);
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(), options,
                                  &error_code, &error_offset, nullptr);
  OMNI_CHECK(compiled_->code, source, ": cannot compile the regex at offset ", error_offset, ": ",
             pcre2_message(error_code), " (pattern: ", translated, ")");
  compiled_->jit = pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE) == 0;
}

RegexSplitter::~RegexSplitter() = default;

void RegexSplitter::matches(std::string_view text, const std::function<void(size_t, size_t)>& on_match) const {
  MatchScratch& s = scratch();
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;  // where the next search starts
  while (pos < text.size()) {
    const int rc = compiled_->jit
                       ? pcre2_jit_match(compiled_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, s.data,
                                         s.context)
                       : pcre2_match(compiled_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, s.data,
                                     s.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    OMNI_CHECK(rc >= 0, source_, ": regex matching failed at byte ", pos, ": ", pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(s.data);
    const size_t begin = ovector[0], end = ovector[1];
    if (end > begin) {
      on_match(begin, end);
      pos = end;
    } else {
      // An empty match (reported too: it still cuts the text between matches in two, as in HF); then step over
      // one whole character so the search moves on.
      if (begin >= text.size()) break;
      on_match(begin, end);
      pos = begin + utf8::step(text, begin).length;
    }
  }
}

void RegexSplitter::split(std::string_view text, const std::function<void(std::string_view)>& on_piece) const {
  size_t emitted = 0;  // end of the text already handed out
  matches(text, [&](size_t begin, size_t end) {
    if (begin > emitted) {  // the unmatched gap before this match is a piece of its own
      on_piece(text.substr(emitted, begin - emitted));
      emitted = begin;
    }
    if (end > begin) {
      on_piece(text.substr(begin, end - begin));
      emitted = end;
    }
  });
  if (emitted < text.size()) on_piece(text.substr(emitted));
}

}  // namespace omni
