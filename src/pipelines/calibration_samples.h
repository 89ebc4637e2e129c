// Calibration samples for AutoRound (AUTOROUND.md §1 step 1): `nsamples` token sequences of exactly `seqlen`
// tokens, drawn from texts in a seeded shuffled order (SplitMix64 + Fisher–Yates, core/rng.h) that the Python
// reference tools replay.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/tokenizers/tokenizer.h"

namespace omni {

// What to do with texts shorter than seqlen.
enum class CalibrationPolicy {
  // Tokenize every text (in the shuffled order), join them with the separator token (<|endoftext|>, else the
  // tokenizer's first eos id) between texts, and cut the stream into consecutive seqlen-token chunks; a final
  // partial chunk is dropped.
  Concat,
  // Use only texts of at least seqlen tokens, each truncated to its first seqlen tokens.
  Skip,
};

CalibrationPolicy parse_calibration_policy(std::string_view name);  // "concat" or "skip"
const char* calibration_policy_name(CalibrationPolicy policy);

struct CalibrationExtras {
  // Return fewer than nsamples samples (with a warning through `log`) instead of failing.
  bool allow_fewer = false;
  // Receives the summary line (policy, texts used / skipped) and warnings. May be empty.
  std::function<void(const std::string&)> log;
};

// Returns the samples (each exactly seqlen ids). Fails with a message saying how many samples the texts give and
// what to change when there are fewer than nsamples (unless extras.allow_fewer; an empty result always fails).
std::vector<std::vector<int32_t>> build_calibration_samples(const Tokenizer& tokenizer,
                                                            std::span<const std::string> texts, int64_t nsamples,
                                                            int64_t seqlen, uint64_t seed, CalibrationPolicy policy,
                                                            const CalibrationExtras& extras = {});

// The id placed between texts by the Concat policy (and between samples by the evaluation): <|endoftext|> if
// the tokenizer has it, else its first eos id; fails naming the tokenizer when it has neither.
int32_t text_separator_id(const Tokenizer& tokenizer);

}  // namespace omni
