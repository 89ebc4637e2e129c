#include "io/tokenizers/bpe.h"

#include <cstdio>
#include <queue>

#include "core/error.h"
#include "io/tokenizers/byte_level.h"
#include "io/tokenizers/utf8.h"

namespace omni {

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
                   const std::string& source)
    : vocab_(std::move(vocab)), options_(options) {
  const auto find = [&](const std::string& token) -> std::optional<int32_t> {
    const auto it = vocab_.find(token);
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
  };

  merges_.reserve(merges.size() * 2);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto a = find(left), b = find(right), merged = find(left + right);
    OMNI_CHECK(a, source, ": model.merges[", rank, "] refers to token '", left, "', which is not in model.vocab");
    OMNI_CHECK(b, source, ": model.merges[", rank, "] refers to token '", right, "', which is not in model.vocab");
    OMNI_CHECK(merged, source, ": model.merges[", rank, "] produces '", left + right,
               "', which is not in model.vocab");
    // A repeated pair keeps its first (lowest) rank, as HF does when it builds its merge map.
    merges_.try_emplace(pair_key(*a, *b), Merge{static_cast<int32_t>(rank), *merged});
  }

  for (int position = 0; position < kPositions; ++position) {
    const bool first = position == kOnly || position == kFirst, last = position == kOnly || position == kLast;
    ByteSymbols& table = symbols_[position];
    for (int b = 0; b < 256; ++b) {
      std::string ch = first ? "" : options_.continuing_subword_prefix;
      utf8::append(ch, byte_level::byte_to_char(static_cast<uint8_t>(b)));
      if (last) ch += options_.end_of_word_suffix;
      table.ids[b] = find(ch).value_or(-1);
      if (options_.byte_fallback) {
        for (unsigned char u : ch) {
          char name[8];
          std::snprintf(name, sizeof name, "<0x%02X>", u);
          const auto id = find(name);
          if (!id) {
            table.fallback[b].clear();
            break;
          }
          table.fallback[b].push_back(*id);
        }
      }
    }
  }
}

void BpeModel::initial_symbols(std::string_view raw, std::vector<int32_t>& symbols) const {
  constexpr int32_t kNone = -1;
  int32_t pending_unk = kNone;  // a fused run of unknown bytes not yet emitted
  for (size_t i = 0; i < raw.size(); ++i) {
    const auto b = static_cast<uint8_t>(raw[i]);
    const bool last = i + 1 == raw.size();
    const ByteSymbols& table = symbols_[i == 0 ? (last ? kOnly : kFirst) : (last ? kLast : kMiddle)];
    if (table.ids[b] >= 0) {
      if (pending_unk != kNone) symbols.push_back(pending_unk), pending_unk = kNone;
      symbols.push_back(table.ids[b]);
      continue;
    }
    if (!table.fallback[b].empty()) {
      symbols.insert(symbols.end(), table.fallback[b].begin(), table.fallback[b].end());
      continue;
    }
    if (!options_.unk_id) continue;  // HF drops characters it has no token for when there is no unk token
    if (pending_unk != kNone && !options_.fuse_unk) symbols.push_back(pending_unk);
    pending_unk = *options_.unk_id;
  }
  if (pending_unk != kNone) symbols.push_back(pending_unk);
}

void BpeModel::merge_word(std::string_view raw, std::vector<int32_t>& out) const {
  if (options_.ignore_merges) {
    if (const auto it = vocab_.find(byte_level::encode(raw)); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }

  std::vector<int32_t> ids;
  ids.reserve(raw.size());
  initial_symbols(raw, ids);
  const int n = static_cast<int>(ids.size());
  if (n <= 1) {
    out.insert(out.end(), ids.begin(), ids.end());
    return;
  }

  // Symbols form a doubly linked list; a merged-away symbol gets id -1.
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;

  struct Candidate {
    int32_t rank;
    int pos;  // left symbol
    int32_t left_id, right_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  const auto consider = [&](int pos) {
    const int right = next[pos];
    if (pos < 0 || right < 0) return;
    const auto it = merges_.find(pair_key(ids[pos], ids[right]));
    if (it != merges_.end()) heap.push({it->second.rank, pos, ids[pos], ids[right]});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);

  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    // Skip entries made stale by an earlier merge (either symbol gone or changed).
    const int right = next[c.pos];
    if (ids[c.pos] != c.left_id || right < 0 || ids[right] != c.right_id) continue;
    ids[c.pos] = merges_.at(pair_key(c.left_id, c.right_id)).new_id;
    ids[right] = -1;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    if (prev[c.pos] >= 0) consider(prev[c.pos]);
    consider(c.pos);
  }
  for (int i = 0; i >= 0; i = next[i]) out.push_back(ids[i]);
}

void BpeModel::encode_word(std::string_view raw, std::vector<int32_t>& out) const {
  if (raw.empty()) return;
  const bool cacheable = raw.size() <= kCacheMaxWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    const auto it = cache_.find(raw);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out.size();
  merge_word(raw, out);
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() < kCacheMaxEntries)
      cache_.try_emplace(std::string(raw), out.begin() + static_cast<std::ptrdiff_t>(start), out.end());
  }
}

}  // namespace omni
