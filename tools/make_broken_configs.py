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
