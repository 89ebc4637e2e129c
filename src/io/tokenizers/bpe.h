// Byte-level BPE model (HF `tokenizers` model type "BPE" behind a ByteLevel pre-tokenizer): turns one pre-token
// (raw bytes) into ids by applying merges in rank order, lowest rank first and leftmost first on ties, exactly as
// `tokenizers` does. Words are merged with a heap (O(n log n) even for very long pre-tokens) and results for short
// words are cached, since natural text repeats the same words.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace omni {

struct BpeOptions {
  std::optional<int32_t> unk_id;  // id for bytes without a vocabulary entry; without it they are dropped (as HF)
  bool fuse_unk = false;          // consecutive unknowns become one unk id
  bool byte_fallback = false;     // unknown bytes become "<0xNN>" tokens when those exist
  bool ignore_merges = false;     // a pre-token that is itself in the vocabulary is emitted whole
  // Added to every character but the first of a word / to its last character before the vocabulary lookup
  // (CLIP: end_of_word_suffix "</w>", so "cat" starts as "c", "a", "t</w>").
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
};

class BpeModel {
 public:
  // vocab: byte-level token string -> id. merges: pairs of token strings in rank order. `source` names the file
  // for error messages; errors name the offending merge index and token.
  BpeModel(std::unordered_map<std::string, int32_t> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           BpeOptions options, const std::string& source);

  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of one pre-token given as raw bytes (the byte-level mapping is applied here). Thread-safe.
  void encode_word(std::string_view raw, std::vector<int32_t>& out) const;

  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  size_t num_merges() const { return merges_.size(); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void merge_word(std::string_view raw, std::vector<int32_t>& out) const;
  void initial_symbols(std::string_view raw, std::vector<int32_t>& symbols) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  // A byte's symbol depends on where it stands in the word (prefix and suffix are added by position), so there
  // is one table per position: the word's only, first, middle and last byte.
  enum Position { kOnly = 0, kFirst, kMiddle, kLast, kPositions };
  struct ByteSymbols {
    std::array<int32_t, 256> ids{};  // id of each byte's token, -1 when absent
    // byte_fallback tokens for each byte whose token is missing: HF looks up "<0xNN>" for the UTF-8 bytes of the
    // looked-up string (the byte-level character with prefix/suffix, not the raw byte); empty when any is missing.
    std::array<std::vector<int32_t>, 256> fallback;
  };
  std::array<ByteSymbols, kPositions> symbols_;
  BpeOptions options_;

  // Pre-token -> ids. Bounded: once full it stops growing (the common words are in it by then).
  static constexpr size_t kCacheMaxEntries = 1 << 15;
  static constexpr size_t kCacheMaxWordBytes = 128;
  mutable std::mutex cache_mutex_;
  struct StringHash {
    using is_transparent = void;  // lets find() take a string_view without building a std::string
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace omni
