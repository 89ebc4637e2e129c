#include "io/tokenizers/pre_tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "io/tokenizers/added_tokens.h"
#include "io/tokenizers/byte_level.h"
#include "io/tokenizers/regex_split.h"
#include "io/tokenizers/tokenizer_fields.h"
#include "io/tokenizers/utf8.h"

namespace omni {

using nlohmann::json;

namespace {

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Segment {
  size_t begin, end;
  bool is_match;
};

// A piece and where it starts in the text given to split() (only "is it 0" matters: Metaspace "first").
struct Piece {
  std::string text;
  size_t offset;
};

// HF's NormalizedString::split: turns the (begin, end, is_match) segments covering a text into pieces.
void apply_behavior(std::string_view text, size_t offset, const std::vector<Segment>& segments, Behavior behavior,
                    std::vector<Piece>& out) {
  std::vector<Segment> kept;  // is_match here means "remove"
  switch (behavior) {
    case Behavior::kRemoved: kept = segments; break;
    case Behavior::kIsolated:
      for (const Segment& s : segments) kept.push_back({s.begin, s.end, false});
      break;
    case Behavior::kContiguous: {
      bool previous = false;
      for (const Segment& s : segments) {
        if (s.is_match == previous && !kept.empty())
          kept.back().end = s.end;
        else
          kept.push_back({s.begin, s.end, false});
        previous = s.is_match;
      }
      break;
    }
    case Behavior::kMergedWithPrevious: {
      bool previous = false;
      for (const Segment& s : segments) {
        if (s.is_match && !previous && !kept.empty())
          kept.back().end = s.end;
        else
          kept.push_back({s.begin, s.end, false});
        previous = s.is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous = false;
      for (size_t i = segments.size(); i-- > 0;) {
        const Segment& s = segments[i];
        if (s.is_match && !previous && !kept.empty())
          kept.back().begin = s.begin;
        else
          kept.push_back({s.begin, s.end, false});
        previous = s.is_match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
  }
  for (const Segment& s : kept)
    if (!s.is_match && s.end > s.begin) out.push_back({std::string(text.substr(s.begin, s.end - s.begin)), offset + s.begin});
}

// Each character for which `is_delimiter` holds is a match of its own (HF's pattern for a char predicate).
template <class Pred>
std::vector<Segment> char_segments(std::string_view text, Pred is_delimiter) {
  std::vector<Segment> segments;
  size_t last = 0;
  for (size_t pos = 0; pos < text.size();) {
    const utf8::Step st = utf8::step(text, pos);
    if (is_delimiter(st.code_point)) {
      if (last < pos) segments.push_back({last, pos, false});
      segments.push_back({pos, pos + st.length, true});
      last = pos + st.length;
    }
    pos += st.length;
  }
  if (last < text.size()) segments.push_back({last, text.size(), false});
  return segments;
}

}  // namespace

struct PreTokenizer::Step {
  enum Kind { kSplit, kWhitespaceSplit, kMetaspace, kByteLevel } kind;
  // Split
  std::unique_ptr<RegexSplitter> regex;
  Behavior behavior = Behavior::kRemoved;
  bool invert = false;
  // Metaspace
  char32_t replacement = U'\u2581';
  std::string replacement_utf8;
  enum Prepend { kAlways, kFirst, kNever } prepend = kAlways;
  bool metaspace_split = true;
  // ByteLevel
  bool prefix_space = false;
  std::unique_ptr<RegexSplitter> gpt2;

  void apply(const Piece& in, bool at_input_start, std::vector<Piece>& out) const {
    const std::string_view piece = in.text;
    switch (kind) {
      case kSplit: {
        std::vector<Segment> segments;
        size_t prev = 0;
        regex->matches(piece, [&](size_t begin, size_t end) {
          if (prev != begin) segments.push_back({prev, begin, invert});
          segments.push_back({begin, end, !invert});
          prev = end;
        });
        if (prev != piece.size()) segments.push_back({prev, piece.size(), invert});
        apply_behavior(piece, in.offset, segments, behavior, out);
        return;
      }
      case kWhitespaceSplit:
        apply_behavior(piece, in.offset, char_segments(piece, is_unicode_whitespace), Behavior::kRemoved, out);
        return;
      case kMetaspace: {
        std::string text;
        text.reserve(piece.size() + 3);
        for (char c : piece) {
          if (c == ' ')
            text += replacement_utf8;
          else
            text.push_back(c);
        }
        const bool starts = text.compare(0, replacement_utf8.size(), replacement_utf8) == 0;
        const bool first = at_input_start && in.offset == 0;
        if (!starts && !text.empty() && (prepend == kAlways || (prepend == kFirst && first)))
          text.insert(0, replacement_utf8);
        if (!metaspace_split) {
          if (!text.empty()) out.push_back({std::move(text), in.offset});
          return;
        }
        apply_behavior(text, in.offset, char_segments(text, [&](char32_t c) { return c == replacement; }),
                       Behavior::kMergedWithNext, out);
        return;
      }
      case kByteLevel: {
        std::string text;
        if (prefix_space && !piece.empty() && piece.front() != ' ') {
          text.reserve(piece.size() + 1);
          text.push_back(' ');
        }
        text.append(piece);
        if (gpt2)
          gpt2->split(text, [&](std::string_view word) { out.push_back({std::string(word), in.offset}); });
        else if (!text.empty())
          out.push_back({std::move(text), in.offset});
        return;
      }
    }
  }
};

PreTokenizer::PreTokenizer() = default;
PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;

void PreTokenizer::split(std::string_view text, bool at_input_start, std::vector<std::string>& pieces) const {
  std::vector<Piece> current;
  if (!text.empty()) current.push_back({std::string(text), 0});
  std::vector<Piece> next;
  for (const auto& step : steps_) {
    next.clear();
    for (const Piece& p : current) step->apply(p, at_input_start, next);
    current.swap(next);
  }
  for (auto& p : current) pieces.push_back(std::move(p.text));
}

PreTokenizer PreTokenizer::from_json(const json& spec, const std::string& path, const TokenizerFields& f) {
  PreTokenizer pre;
  if (spec.is_null()) return pre;
  const std::string& file = f.file();
  const auto visit = [&](const auto& self, const json& node, const std::string& at) -> void {
    const std::string type = f.string(node, at, "type");
    OMNI_CHECK(!pre.byte_level_, file, ": field ", at, ": ByteLevel must be the last pre-tokenizer step (", type,
               " follows it)");
    auto step = std::make_unique<Step>();
    if (type == "Sequence") {
      const json& list = f.array(node, at, "pretokenizers");
      for (size_t i = 0; i < list.size(); ++i) self(self, list[i], str_cat(at, ".pretokenizers[", i, "]"));
      return;
    } else if (type == "Split") {
      step->kind = Step::kSplit;
      const json& pattern = f.object(node, at, "pattern");
      const bool literal = pattern.contains("String");
      OMNI_CHECK(literal || pattern.contains("Regex"), file, ": field ", at, ".pattern must hold \"Regex\" or \"String\"");
      const std::string text = f.string(pattern, at + ".pattern", literal ? "String" : "Regex");
      step->regex = std::make_unique<RegexSplitter>(text, literal, file + ": field " + at + ".pattern");
      const std::string behavior = f.string(node, at, "behavior");
      if (behavior == "Removed") step->behavior = Behavior::kRemoved;
      else if (behavior == "Isolated") step->behavior = Behavior::kIsolated;
      else if (behavior == "MergedWithPrevious") step->behavior = Behavior::kMergedWithPrevious;
      else if (behavior == "MergedWithNext") step->behavior = Behavior::kMergedWithNext;
      else if (behavior == "Contiguous") step->behavior = Behavior::kContiguous;
      else OMNI_FAIL(file, ": field ", at, ".behavior is '", behavior, "', which is not a Split behavior");
      step->invert = f.boolean(node, at, "invert", false);
    } else if (type == "WhitespaceSplit") {
      step->kind = Step::kWhitespaceSplit;
    } else if (type == "Metaspace") {
      step->kind = Step::kMetaspace;
      step->replacement_utf8 = f.string(node, at, "replacement");
      const utf8::Step st = step->replacement_utf8.empty() ? utf8::Step{utf8::Step::kInvalid, 0, 0}
                                                           : utf8::step(step->replacement_utf8, 0);
      OMNI_CHECK(st.kind == utf8::Step::kValid && st.length == step->replacement_utf8.size(), file, ": field ", at,
                 ".replacement must be one character, found \"", step->replacement_utf8, "\"");
      step->replacement = st.code_point;
      const std::string scheme = f.string_or(node, at, "prepend_scheme", "always");
      if (scheme == "always") step->prepend = Step::kAlways;
      else if (scheme == "first") step->prepend = Step::kFirst;
      else if (scheme == "never") step->prepend = Step::kNever;
      else OMNI_FAIL(file, ": field ", at, ".prepend_scheme is '", scheme, "' (expected always, first or never)");
      // Files from before prepend_scheme say add_prefix_space; false means never (HF refuses it with another scheme).
      if (node.contains("add_prefix_space") && !f.boolean(node, at, "add_prefix_space", true)) {
        OMNI_CHECK(!node.contains("prepend_scheme") || step->prepend == Step::kNever, file, ": field ", at,
                   ".add_prefix_space = false does not match prepend_scheme '", scheme, "'");
        step->prepend = Step::kNever;
      }
      step->metaspace_split = f.boolean(node, at, "split", true);
    } else if (type == "ByteLevel") {
      step->kind = Step::kByteLevel;
      step->prefix_space = f.boolean(node, at, "add_prefix_space", true);
      if (f.boolean(node, at, "use_regex", true))
        step->gpt2 = std::make_unique<RegexSplitter>(byte_level::kGpt2Pattern, false, file + ": GPT-2 regex");
      pre.byte_level_ = true;
    } else {
      OMNI_FAIL(file, ": field ", at, ".type is '", type,
                "', which is not supported (supported: Split, WhitespaceSplit, Metaspace, ByteLevel, Sequence)");
    }
    pre.steps_.push_back(std::move(step));
  };
  visit(visit, spec, path);
  return pre;
}

}  // namespace omni
