#include "pipelines/calibration_samples.h"

#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "io/tokenizers/chat_format.h"
#include "pipelines/text_dataset.h"

namespace omni {

CalibrationPolicy parse_calibration_policy(std::string_view name) {
  if (name == "concat") return CalibrationPolicy::Concat;
  if (name == "skip") return CalibrationPolicy::Skip;
  if (name == "stream") return CalibrationPolicy::Stream;
  if (name == "chat") return CalibrationPolicy::Chat;
  OMNI_FAIL("unknown calibration policy \"", name, "\"; expected concat, skip, stream or chat");
}

const char* calibration_policy_name(CalibrationPolicy policy) {
  switch (policy) {
    case CalibrationPolicy::Concat: return "concat";
    case CalibrationPolicy::Skip: return "skip";
    case CalibrationPolicy::Stream: return "stream";
    case CalibrationPolicy::Chat: return "chat";
  }
  return "unknown";
}

int32_t text_separator_id(const Tokenizer& tokenizer) {
  if (const auto id = tokenizer.token_to_id("<|endoftext|>")) return *id;
  const std::vector<int32_t> eos = tokenizer.eos_ids();
  OMNI_CHECK(!eos.empty(), "tokenizer ", tokenizer.source(),
             " has neither <|endoftext|> nor an eos token to separate texts with");
  return eos.front();
}

std::vector<std::vector<int32_t>> build_calibration_samples(const Tokenizer& tokenizer,
                                                            std::span<const std::string> texts, int64_t nsamples,
                                                            int64_t seqlen, uint64_t seed, CalibrationPolicy policy,
                                                            const CalibrationExtras& extras) {
  OMNI_CHECK(nsamples > 0, "calibration nsamples must be positive, got ", nsamples);
  OMNI_CHECK(seqlen > 0, "calibration seqlen must be positive, got ", seqlen);
  OMNI_CHECK(!texts.empty(), "calibration needs at least one text, got none");
  const auto log = [&](const std::string& line) {
    if (extras.log) extras.log(line);
  };

  std::vector<size_t> order(texts.size());
  std::iota(order.begin(), order.end(), size_t{0});
  SplitMix64 rng(seed);
  shuffle(order, rng);

  std::vector<std::vector<int32_t>> samples;
  samples.reserve(static_cast<size_t>(nsamples));
  int64_t used = 0, skipped = 0, stream_tokens = 0;
  const size_t want = static_cast<size_t>(nsamples);

  if (policy == CalibrationPolicy::Stream) {
    // The whole document first (its windows are chosen from all of it), then a seeded choice of windows.
    std::vector<int32_t> stream;
    for (const std::string& text : texts) {
      const std::vector<int32_t> ids = tokenizer.encode(text + "\n");
      stream.insert(stream.end(), ids.begin(), ids.end());
      ++used;
    }
    stream_tokens = static_cast<int64_t>(stream.size());
    std::vector<size_t> windows(stream.size() / static_cast<size_t>(seqlen));
    std::iota(windows.begin(), windows.end(), size_t{0});
    SplitMix64 window_rng(seed);
    shuffle(windows, window_rng);
    if (windows.size() > want) windows.resize(want);
    for (size_t w : windows) {
      const auto begin = stream.begin() + static_cast<std::ptrdiff_t>(w * static_cast<size_t>(seqlen));
      samples.emplace_back(begin, begin + static_cast<std::ptrdiff_t>(seqlen));
    }
  } else if (policy == CalibrationPolicy::Concat || policy == CalibrationPolicy::Chat) {
    const bool chat = policy == CalibrationPolicy::Chat;
    const int32_t separator = chat ? -1 : text_separator_id(tokenizer);
    std::vector<int32_t> pending;  // tokens not yet cut into a sample
    for (size_t k = 0; k < order.size() && samples.size() < want; ++k) {
      const std::string& text = texts[order[k]];
      const std::vector<int32_t> ids =
          chat ? tokenizer.encode(format_chatml({{"user", text}}, /*add_generation_prompt=*/true)) : tokenizer.encode(text);
      if (ids.empty()) {
        ++skipped;
        continue;
      }
      if (used > 0 && !chat) pending.push_back(separator);
      pending.insert(pending.end(), ids.begin(), ids.end());
      stream_tokens += static_cast<int64_t>(ids.size()) + (used > 0 && !chat ? 1 : 0);
      ++used;
      size_t start = 0;
      while (pending.size() - start >= static_cast<size_t>(seqlen) && samples.size() < want) {
        samples.emplace_back(pending.begin() + static_cast<std::ptrdiff_t>(start),
                             pending.begin() + static_cast<std::ptrdiff_t>(start + static_cast<size_t>(seqlen)));
        start += static_cast<size_t>(seqlen);
      }
      pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(start));
    }
  } else {
    for (size_t k = 0; k < order.size() && samples.size() < want; ++k) {
      std::vector<int32_t> ids = tokenizer.encode(texts[order[k]]);
      if (static_cast<int64_t>(ids.size()) < seqlen) {
        ++skipped;
        continue;
      }
      ids.resize(static_cast<size_t>(seqlen));
      samples.push_back(std::move(ids));
      ++used;
    }
  }

  const int64_t found = static_cast<int64_t>(samples.size());
  const bool joined = policy != CalibrationPolicy::Skip;
  log(str_cat("calibration: policy ", calibration_policy_name(policy), ", ", found, " samples of ", seqlen,
              " tokens from ", used, " texts (", skipped,
              joined ? " empty texts skipped" : " texts shorter than seqlen skipped", ", ", texts.size(),
              " in the dataset, seed ", seed, ")"));
  if (found < nsamples) {
    const std::string what =
        joined
            ? str_cat("the ", texts.size(), " texts give only ", stream_tokens, " tokens joined, i.e. ", found,
                      " samples of ", seqlen, " tokens, but ", nsamples,
                      " were asked for; lower nsamples or seqlen, or use a larger dataset")
            : str_cat("only ", found, " of the ", texts.size(), " texts have at least ", seqlen, " tokens, but ",
                      nsamples, " samples were asked for; lower nsamples or seqlen, use the concat policy, or use a "
                      "dataset with longer texts");
    OMNI_CHECK(extras.allow_fewer && found > 0, "not enough calibration samples (policy ",
               calibration_policy_name(policy), "): ", what);
    log(str_cat("warning: using ", found, " calibration samples instead of ", nsamples, ": ", what));
  }
  return samples;
}

std::vector<std::vector<int32_t>> calibration_samples_from_token_file(const std::string& path, int64_t nsamples,
                                                                      int64_t seqlen, int64_t vocab_size,
                                                                      const CalibrationExtras& extras) {
  OMNI_CHECK(nsamples > 0, "calibration nsamples must be positive, got ", nsamples);
  std::vector<std::vector<int32_t>> windows = read_token_windows(path, seqlen, vocab_size);
  const auto in_file = static_cast<int64_t>(windows.size());
  if (in_file > nsamples) windows.resize(static_cast<size_t>(nsamples));
  const auto used = static_cast<int64_t>(windows.size());
  if (extras.log)
    extras.log(str_cat("calibration: token windows ", path, ", ", used, " samples of ", seqlen, " tokens (first ",
                       used, " of ", in_file, " in the file)"));
  if (used < nsamples) {
    const std::string what = str_cat(path, " holds ", in_file, " windows, but ", nsamples,
                                     " samples were asked for; lower nsamples or write more windows");
    OMNI_CHECK(extras.allow_fewer, "not enough calibration samples: ", what);
    if (extras.log) extras.log(str_cat("warning: using ", used, " calibration samples instead of ", nsamples, ": ", what));
  }
  return windows;
}

}  // namespace omni
