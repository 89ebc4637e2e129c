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
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                                  &error_code, &error_offset, nullptr);
  OMNI_CHECK(compiled_->code, source, ": cannot compile the regex at offset ", error_offset, ": ",
             pcre2_message(error_code), " (pattern: ", pattern, ")");
  compiled_->jit = pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE) == 0;
}

RegexSplitter::~RegexSplitter() = default;

void RegexSplitter::split(std::string_view text, const std::function<void(std::string_view)>& on_piece) const {
  MatchScratch& s = scratch();
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;       // where the next search starts
  size_t emitted = 0;   // end of the text already handed out
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
    if (begin > emitted) {  // the unmatched gap before this match is a piece of its own
      on_piece(text.substr(emitted, begin - emitted));
      emitted = begin;
    }
    if (end > begin) {
      on_piece(text.substr(begin, end - begin));
      emitted = end;
      pos = end;
    } else {
      // An empty match yields no piece; step over one whole character so the search moves on.
      if (begin >= text.size()) break;
      pos = begin + utf8::step(text, begin).length;
    }
  }
  if (emitted < text.size()) on_piece(text.substr(emitted));
}

}  // namespace omni
