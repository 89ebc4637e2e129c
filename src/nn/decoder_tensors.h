// Which tensors a dense (16-bit) decoder checkpoint holds, by name and shape, derived from its DecoderSpec; and the
// one error for a checkpoint holding tensors the model would not read. Shared by the quantizers' check of their
// source and the inference loader, so both refuse the same checkpoints with the same words.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/decoder_spec.h"

namespace omni {

// Every tensor name → shape of the checkpoint; head_stored: whether a tied model's checkpoint also stores
// lm_head (then it is read; an untied model always has it).
std::map<std::string, Shape> decoder_dense_tensors(const DecoderSpec& spec, bool head_stored);

// Fails naming dir, the first few unused names and the config fields that usually explain them; returns when
// `unused` is empty.
void refuse_unused_tensors(const std::string& dir, const DecoderSpec& spec, const std::vector<std::string>& unused);

}  // namespace omni
