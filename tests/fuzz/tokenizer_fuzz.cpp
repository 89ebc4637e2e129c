// libFuzzer target for tokenizer.json: the bytes go through the tokenizer loader; a tokenizer that loads then
// encodes a few fixed texts (ASCII, multi-byte UTF-8, non-NFC, special tokens) and decodes the ids back. Loading
// may throw omni::Error, and so may encoding (a pathological Split regex that exceeds PCRE2's match limits);
// anything else (a crash, a sanitizer report, another exception type, an id outside the vocabulary, a streaming
// decode that differs from the full one) is a finding. Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/tokenizers/tokenizer.h"
#include "io/tokenizers/utf8.h"

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "tokenizer broke its promise: %s\n", what);
    __builtin_trap();
  }
}

// Short, so that even a slow regex keeps each input well under libFuzzer's -timeout.
constexpr std::string_view kTexts[] = {
    "",
    "Hello world! It's 5 o'clock.",
    "  leading and trailing  \n\n\tx",
    "h\xC3\xA9llo w\xC3\xB6rld \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",  // héllo wörld 你好 👍🏽
    "cafe\xCC\x81 A\xCC\x8A",                                                               // not in NFC
    "<|endoftext|>",
    "a<|im_end|>b <|im_start|>user\nhi<|im_end|>\n",
};

void check_ids(const omni::Tokenizer& tok, const std::vector<int32_t>& ids) {
  for (int32_t id : ids) require(id >= 0 && id < tok.vocab_size(), "encoded ids inside the vocabulary");
  for (int32_t id : ids) {
    try {
      (void)tok.id_to_token(id);
    } catch (const omni::Error&) {
      require(false, "every encoded id has a token");
    }
  }
  const std::string text = tok.decode(ids);
  require(omni::utf8::first_invalid(text) == text.size(), "decode gives valid UTF-8");
  (void)tok.decode(ids, /*skip_special=*/true);
  omni::StreamingDecoder stream(tok);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.push(id);
  streamed += stream.finish();
  require(streamed == text, "streaming decode equals the full decode");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    const omni::Tokenizer tok = omni::Tokenizer::from_json_text(json, "fuzz-input/tokenizer.json");
    require(tok.vocab_size() > 0, "a non-empty vocabulary");
    for (int32_t id : tok.eos_ids()) require(id >= 0 && id < tok.vocab_size(), "eos ids inside the vocabulary");
    for (std::string_view text : kTexts) {
      std::vector<int32_t> ids;
      try {
        ids = tok.encode(text);
      } catch (const omni::Error&) {
        continue;  // a regex that gives up on this text (match limit); the loader accepted it, which is allowed
      }
      check_ids(tok, ids);
    }
  } catch (const omni::Error&) {
    // The expected outcome for a malformed tokenizer.json.
  }
  return 0;
}
