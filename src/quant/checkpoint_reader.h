// Reads one quantised Linear of a W4A16 (generally W2/W4/W8 A16) checkpoint in the GPTQ layout — auto_round
// (packing auto_round:auto_gptq, auto_round:gptqmodel or native auto_round) and auto_gptq / gptq — into a
// GroupedIntWeight, validating every tensor and detecting the zero-point convention from the stored values.
//
// Zero-point detection (the stored qzeros value z; b bits):
//  * symmetric layers: the real zero must be 2^(b-1), so all z = 2^(b-1) − 1 means "zero − 1" (GPTQ v1,
//    auto_round:auto_gptq) and all z = 2^(b-1) means "real zero" (GPTQ v2 and some newer writers); anything
//    else is an error. The values win over what the config declares.
//  * asymmetric layers: any z = 2^b − 1 proves "real zero" (under zero − 1 it would be a zero point of 2^b,
//    outside the code range). Otherwise both readings are valid; the convention declared by a key present in the
//    config (packing_format, checkpoint_format) or passed in the options decides, and without one the reader
//    throws an "ambiguous zero-point convention" error naming the tensor.
#pragma once

#include <string>
#include <vector>

#include "backends/linear_weight.h"
#include "io/safetensors.h"
#include "quant/quant_config.h"

namespace omni {

struct QuantizedLinearReadOptions {
  int64_t in_features = -1;   // expected K (from the model config); -1: inferred from qweight
  int64_t out_features = -1;  // expected N; -1: inferred from qweight
  // A convention the caller knows (e.g. from detect_checkpoint_zero_point_convention); it replaces the one the
  // config declares. Symmetric layers still follow their stored values.
  ZeroPointConvention zero_point_convention = ZeroPointConvention::Unknown;
};

// prefix: the Linear's name without ".weight", e.g. "model.layers.0.self_attn.q_proj". Reads <prefix>.qweight,
// .qzeros, .scales and .g_idx when present. A g_idx equal to k / group_size is dropped (left undefined); a real
// act-order g_idx is kept. Errors name the tensor (and the checkpoint field) with expected vs found.
GroupedIntWeight read_quantized_linear(const SafetensorsCheckpoint& ckpt, const std::string& prefix,
                                       const QuantizationConfig& cfg, const QuantizedLinearReadOptions& opts = {});

// The decision above for one tensor's stored values (`stored`, unpacked, each < 2^bits). `declared` may be
// Unknown. Throws for inconsistent or ambiguous values, naming `tensor_name`.
ZeroPointConvention detect_zero_point_convention(const std::vector<uint8_t>& stored, int bits, bool sym,
                                                 ZeroPointConvention declared, const std::string& tensor_name);

// Pools the evidence of every "<p>.qzeros" in the checkpoint: Real if any layer proves it, MinusOne if any
// symmetric layer proves it (conflicting proofs are an error), else the config's declared convention (maybe
// Unknown). Lets a loader settle asymmetric layers that carry no evidence of their own.
ZeroPointConvention detect_checkpoint_zero_point_convention(const SafetensorsCheckpoint& ckpt,
                                                            const QuantizationConfig& cfg);

}  // namespace omni
