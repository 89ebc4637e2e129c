#include "io/tokenizers/unigram.h"

#include <cstdio>
#include <limits>

#include "core/error.h"
#include "io/tokenizers/utf8.h"

namespace omni {
namespace {

constexpr double kUnkPenalty = 10.0;  // HF's K_UNK_PENALTY, below the lowest piece score

uint64_t edge_key(int32_t node, uint8_t byte) { return (static_cast<uint64_t>(node) << 8) | byte; }

}  // namespace

UnigramModel::UnigramModel(std::vector<Piece> pieces, std::optional<int32_t> unk_id, bool byte_fallback,
                           std::string source)
    : pieces_(std::move(pieces)), unk_id_(unk_id), byte_fallback_(byte_fallback), source_(std::move(source)) {
  OMNI_CHECK(!pieces_.empty(), source_, ": field model.vocab is empty (a Unigram model needs at least <unk>)");
  if (unk_id_)
    OMNI_CHECK(*unk_id_ >= 0 && static_cast<size_t>(*unk_id_) < pieces_.size(), source_, ": field model.unk_id ",
               *unk_id_, " is not an id of model.vocab (", pieces_.size(), " pieces)");
  double min_score = std::numeric_limits<double>::infinity();
  node_piece_.push_back(-1);  // the root
  for (size_t id = 0; id < pieces_.size(); ++id) {
    const Piece& p = pieces_[id];
    ids_[p.text] = static_cast<int32_t>(id);  // the last of repeated strings wins, as in HF's map
    if (p.score < min_score) min_score = p.score;
    int32_t node = 0;
    for (char c : p.text) {
      const auto [it, fresh] = children_.try_emplace(edge_key(node, static_cast<uint8_t>(c)),
                                                     static_cast<int32_t>(node_piece_.size()));
      if (fresh) node_piece_.push_back(-1);
      node = it->second;
    }
    if (node != 0) node_piece_[node] = static_cast<int32_t>(id);  // an empty piece never matches (as in HF)
  }
  unk_score_ = min_score - kUnkPenalty;
}

int32_t UnigramModel::child(int32_t node, uint8_t byte) const {
  const auto it = children_.find(edge_key(node, byte));
  return it == children_.end() ? -1 : it->second;
}

std::optional<int32_t> UnigramModel::find(std::string_view text) const {
  const auto it = ids_.find(std::string(text));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

void UnigramModel::encode(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  struct Best {
    int32_t id = -1;
    double score = 0;
    int64_t start = -1;  // −1: no path ends here yet
  };
  const size_t n = text.size();
  std::vector<Best> best(n + 1);
  for (size_t start = 0; start < n;) {
    const double base = best[start].score;
    const size_t char_len = utf8::step(text, start).length;
    bool has_single = false;
    const auto offer = [&](size_t end, int32_t id, double score) {
      Best& b = best[end];
      if (b.start < 0 || base + score > b.score) b = {id, base + score, static_cast<int64_t>(start)};
    };
    int32_t node = 0;
    for (size_t end = start; end < n;) {
      node = child(node, static_cast<uint8_t>(text[end]));
      if (node < 0) break;
      ++end;
      const int32_t piece = node_piece_[node];
      if (piece < 0) continue;
      const int32_t id = ids_.at(pieces_[piece].text);
      offer(end, id, pieces_[id].score);
      has_single |= end - start == char_len;
    }
    if (!has_single) {
      OMNI_CHECK(unk_id_, source_, ": the text has a character no piece covers (at byte ", start,
                 ") and model.unk_id is not set");
      offer(start + char_len, *unk_id_, unk_score_);
    }
    start += char_len;
  }

  // Back from the end; consecutive unknown pieces are fused into one string, then every string becomes its id.
  std::vector<std::string_view> strings;
  std::vector<bool> fused;
  for (size_t end = n; end > 0;) {
    const Best& b = best[end];
    const auto start = static_cast<size_t>(b.start);
    const std::string_view s = text.substr(start, end - start);
    const bool unk = unk_id_ && b.id == *unk_id_;
    if (unk && !strings.empty() && fused.back()) {
      strings.back() = text.substr(start, strings.back().size() + s.size());
    } else {
      strings.push_back(s);
      fused.push_back(unk);
    }
    end = start;
  }
  for (size_t i = strings.size(); i-- > 0;) {
    if (const auto it = ids_.find(std::string(strings[i])); it != ids_.end()) {
      out.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      for (char c : strings[i]) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned char>(c));
        const auto it = ids_.find(name);
        if (it == ids_.end()) break;
        bytes.push_back(it->second);
      }
      if (bytes.size() == strings[i].size()) {
        out.insert(out.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    OMNI_CHECK(unk_id_, source_, ": the text has a piece with no id and model.unk_id is not set");
    out.push_back(*unk_id_);
  }
}

}  // namespace omni
