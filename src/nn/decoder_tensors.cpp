#include "nn/decoder_tensors.h"

#include "core/error.h"
#include "nn/decoder_block.h"

namespace omni {

std::map<std::string, Shape> decoder_dense_tensors(const DecoderSpec& spec, bool head_stored) {
  const DecoderNames& n = spec.names;
  std::map<std::string, Shape> expected = {{n.embed_tokens, {spec.vocab_size, spec.hidden_size}},
                                           {n.final_norm, {spec.hidden_size}}};
  if (!spec.tie_word_embeddings || head_stored) expected[n.lm_head] = {spec.vocab_size, spec.hidden_size};
  const DecoderBlock block(spec);
  for (int64_t l = 0; l < spec.num_hidden_layers; ++l) {
    const std::string prefix = n.block_prefix(l) + ".";
    for (const ParamDesc& p : block.params()) expected[prefix + p.name] = p.shape;
    for (const LinearDesc& d : block.linears()) {
      expected[prefix + d.name + ".weight"] = {d.out_features, d.in_features};
      if (d.has_bias) expected[prefix + d.name + ".bias"] = {d.out_features};
    }
  }
  return expected;
}

void refuse_unused_tensors(const std::string& dir, const DecoderSpec& spec, const std::vector<std::string>& unused) {
  if (unused.empty()) return;
  std::string list;
  for (size_t i = 0; i < unused.size() && i < 5; ++i) list += (i ? ", " : "") + std::string("\"") + unused[i] + "\"";
  if (unused.size() > 5) list += ", ...";
  OMNI_FAIL(dir, ": the checkpoint has ", unused.size(), " tensor(s) the ", spec.architecture,
            " model does not use (", list, "); does config.json (num_hidden_layers ", spec.num_hidden_layers,
            ", tie_word_embeddings ", spec.tie_word_embeddings ? "true" : "false", ") match the checkpoint?");
}

}  // namespace omni
