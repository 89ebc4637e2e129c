// The Unigram model of HF `tokenizers` (SentencePiece's model for T5): a piece of text becomes the sequence of
// vocabulary pieces with the highest total score (log-probability), found by Viterbi over the byte positions.
// As HF: a character that begins no piece of its own length gets the unknown piece at (lowest score − 10);
// consecutive unknowns are fused into one; with byte_fallback an unknown run becomes its "<0xNN>" byte pieces
// when all of them exist. Ties keep the path found first (shorter pieces, earlier starts).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace omni {

class UnigramModel {
 public:
  struct Piece {
    std::string text;
    double score;
  };
  // Ids are the positions in `pieces`; a repeated piece string resolves to its last id, as in HF. `source` names
  // the file for errors.
  UnigramModel(std::vector<Piece> pieces, std::optional<int32_t> unk_id, bool byte_fallback, std::string source);

  // Appends the ids of one pre-token (valid UTF-8). Throws when a character is unknown and there is no unk_id.
  void encode(std::string_view text, std::vector<int32_t>& out) const;

  size_t size() const { return pieces_.size(); }
  const Piece& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }
  std::optional<int32_t> find(std::string_view text) const;

 private:
  // A byte trie of the pieces: child of (node, byte) in a hash map, the piece id ending at each node (−1: none).
  int32_t child(int32_t node, uint8_t byte) const;

  std::vector<Piece> pieces_;
  std::unordered_map<std::string, int32_t> ids_;
  std::vector<int32_t> node_piece_;
  std::unordered_map<uint64_t, int32_t> children_;
  std::optional<int32_t> unk_id_;
  bool byte_fallback_;
  double unk_score_;
  std::string source_;
};

}  // namespace omni
