#include "io/tokenizers/added_tokens.h"

#include <algorithm>

#include "io/tokenizers/utf8.h"

namespace omni {
namespace {

// Moves `begin` back over whitespace characters, not before `limit`.
size_t strip_back(std::string_view text, size_t limit, size_t begin) {
  while (begin > limit) {
    size_t start = begin - 1;
    while (start > limit && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
    const utf8::Step st = utf8::step(text, start);
    if (st.kind != utf8::Step::kValid || !is_unicode_whitespace(st.code_point)) break;
    begin = start;
  }
  return begin;
}

size_t strip_forward(std::string_view text, size_t end) {
  while (end < text.size()) {
    const utf8::Step st = utf8::step(text, end);
    if (st.kind != utf8::Step::kValid || !is_unicode_whitespace(st.code_point)) break;
    end += st.length;
  }
  return end;
}

}  // namespace

bool is_unicode_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

void AddedTokenMatcher::finish() {
  for (auto& group : by_first_byte_)
    std::stable_sort(group.begin(), group.end(),
                     [](const AddedToken* a, const AddedToken* b) { return a->content.size() > b->content.size(); });
}

bool AddedTokenMatcher::empty() const {
  return std::all_of(by_first_byte_.begin(), by_first_byte_.end(), [](const auto& g) { return g.empty(); });
}

void AddedTokenMatcher::split(std::string_view text, std::vector<int32_t>& ids,
                              const std::function<void(std::string_view)>& on_text) const {
  size_t emitted = 0;
  for (size_t pos = 0; pos < text.size();) {
    const AddedToken* hit = nullptr;
    for (const AddedToken* t : by_first_byte_[static_cast<uint8_t>(text[pos])]) {
      if (text.compare(pos, t->content.size(), t->content) == 0) {
        hit = t;
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t begin = pos, end = pos + hit->content.size();
    if (hit->lstrip) begin = strip_back(text, emitted, begin);
    if (hit->rstrip) end = strip_forward(text, end);
    if (begin > emitted) on_text(text.substr(emitted, begin - emitted));
    ids.push_back(hit->id);
    emitted = pos = end;
  }
  if (emitted < text.size()) on_text(text.substr(emitted));
}

}  // namespace omni
