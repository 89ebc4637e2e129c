// Text datasets for calibration and evaluation: one sample per line of a plain-text file, or one JSON object
// with a string "text" field per line of a JSONL file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace omni {

// Reads `path`. JSONL when the name ends in .jsonl or .json, or when the first non-empty line starts with '{';
// plain text otherwise. Blank lines (only whitespace) are skipped in both, as are JSONL records whose text is
// empty; a trailing '\r' is dropped. Errors name the file (and, for JSONL, the 1-based line number): a missing
// or unreadable file, a line that is not valid JSON or lacks a string "text", and a file with no samples.
std::vector<std::string> read_text_dataset(const std::string& path);

// Reads pre-tokenized calibration windows: JSONL, one object per non-blank line with an "input_ids" array of
// exactly `seqlen` integers, each in [0, vocab_size). They are used as they are (no tokenizer, no separator), so
// that two tools fed the same file tune on the same tokens. Errors name the file and the 1-based line: invalid
// JSON, no "input_ids" array, a non-integer or out-of-vocabulary id, a wrong length, and a file with no windows.
std::vector<std::vector<int32_t>> read_token_windows(const std::string& path, int64_t seqlen, int64_t vocab_size);

}  // namespace omni
