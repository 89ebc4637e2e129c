#!/usr/bin/env python3
"""Regenerates tests/data/config/broken/*.json: one fault each, derived from tests/data/config/valid.json.
Standard library only. Run from the repository root."""
import copy
import json
import os

HERE = "tests/data/config"
base = json.load(open(os.path.join(HERE, "valid.json")))
mutations = {
    "unknown_architecture": lambda c: c.__setitem__("architectures", ["LlamaForCausalLM"]),
    "missing_hidden_size": lambda c: c.pop("hidden_size"),
    "string_vocab_size": lambda c: c.__setitem__("vocab_size", "1000"),
    "negative_layers": lambda c: c.__setitem__("num_hidden_layers", -2),
    "heads_not_multiple_of_kv": lambda c: c.__setitem__("num_key_value_heads", 3),
    "rope_scaling": lambda c: c.__setitem__("rope_scaling", {"type": "yarn", "factor": 4.0}),
    "sliding_window": lambda c: c.__setitem__("use_sliding_window", True),
    "eos_outside_vocab": lambda c: c.__setitem__("eos_token_id", 5000),
    "missing_rope_theta": lambda c: c.pop("rope_theta"),
    "architectures_not_list": lambda c: c.__setitem__("architectures", "Qwen3ForCausalLM"),
    # Found by the config fuzzer (issue 7): hidden / heads gave head_dim 0; 2^40 x 2^40 overflowed int64.
    "hidden_not_multiple_of_heads": lambda c: (c.pop("head_dim"), c.__setitem__("hidden_size", 2)),
    "size_too_large": lambda c: (c.__setitem__("num_attention_heads", 2**40), c.__setitem__("head_dim", 2**40)),
}
os.makedirs(os.path.join(HERE, "broken"), exist_ok=True)
for name, mutate in mutations.items():
    c = copy.deepcopy(base)
    mutate(c)
    with open(os.path.join(HERE, "broken", name + ".json"), "w") as f:
        json.dump(c, f, indent=1)
with open(os.path.join(HERE, "broken", "not_json.json"), "w") as f:
    f.write('{"architectures": ["Qwen3ForCausalLM"], "vocab_size": 10,,}')
with open(os.path.join(HERE, "broken", "top_level_array.json"), "w") as f:
    f.write("[1, 2, 3]")
# Deeper than the parser's limit (512); 100 000 levels used to overflow the stack when an error quoted the value.
with open(os.path.join(HERE, "broken", "deep_nesting.json"), "w") as f:
    f.write('{"architectures": ' + "[" * 600 + "]" * 600 + "}")
