// Text datasets for calibration and evaluation: one sample per line of a plain-text file, or one JSON object
// with a string "text" field per line of a JSONL file.
#pragma once

#include <string>
#include <vector>

namespace omni {

// Reads `path`. JSONL when the name ends in .jsonl or .json, or when the first non-empty line starts with '{';
// plain text otherwise. Blank lines (only whitespace) are skipped in both, as are JSONL records whose text is
// empty; a trailing '\r' is dropped. Errors name the file (and, for JSONL, the 1-based line number): a missing
// or unreadable file, a line that is not valid JSON or lacks a string "text", and a file with no samples.
std::vector<std::string> read_text_dataset(const std::string& path);

}  // namespace omni
