#include "quant/quant_config.h"

#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"
#include "io/file_util.h"
#include "io/json_fields.h"

namespace omni {

using ojson = nlohmann::ordered_json;

const char* zero_point_convention_name(ZeroPointConvention c) {
  switch (c) {
    case ZeroPointConvention::MinusOne: return "zero - 1 (GPTQ v1)";
    case ZeroPointConvention::Real: return "real zero (GPTQ v2)";
    default: return "unknown";
  }
}

ZeroPointConvention QuantizationConfig::declared_zero_point_convention() const {
  if (is_gptq()) {
    if (checkpoint_format == "gptq") return ZeroPointConvention::MinusOne;
    if (checkpoint_format == "gptq_v2") return ZeroPointConvention::Real;
    return ZeroPointConvention::Unknown;
  }
  if (!packing_format_given) return ZeroPointConvention::Unknown;
  // auto-round's packers: qlinear_torch_zp (auto_round:auto_gptq) subtracts 1; qlinear_torch (native
  // "auto_round", and "auto_round:gptqmodel") stores the real zero.
  if (packing_format.find("gptqmodel") != std::string::npos) return ZeroPointConvention::Real;
  if (packing_format.find("auto_gptq") != std::string::npos) return ZeroPointConvention::MinusOne;
  if (packing_format == "auto_round") return ZeroPointConvention::Real;
  return ZeroPointConvention::Unknown;
}

namespace {

const std::set<std::string>& tuning_keys() {
  static const std::set<std::string> keys = {
      "iters", "lr", "minmax_lr", "nsamples", "seqlen", "batch_size", "gradient_accumulate_steps",
      "low_gpu_mem_usage", "enable_minmax_tuning", "enable_quanted_input", "enable_norm_bias_tuning", "amp",
      "scale_dtype", "seed", "dataset", "model_free", "enable_alg_ext", "disable_opt_rtn"};
  return keys;
}

struct SectionReader {
  const ojson& j;
  const std::string& source;
  std::string where;  // "quantization_config" or "quantization_config.extra_config[\"x\"]"

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    OMNI_FAIL(source, ": ", where, ".", key, ": ", what);
  }
  const ojson* find(const std::string& key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  int64_t integer(const std::string& key) const {
    const ojson& v = *find(key);
    // Out of int64 range (or past 2^53 for a float, where integers stop being exact) is not an integer we can
    // use: converting would silently wrap (1e30 became 0).
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(key, "expected an integer, found " + v.dump() + " (out of range)");
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::floor(d) == d && std::fabs(d) <= 9007199254740992.0) return static_cast<int64_t>(d);
    }
    fail(key, "expected an integer, found " + v.dump());
  }
  bool boolean(const std::string& key) const {
    const ojson& v = *find(key);
    if (!v.is_boolean()) fail(key, "expected true or false, found " + v.dump());
    return v.get<bool>();
  }
  std::string string(const std::string& key) const {
    const ojson& v = *find(key);
    if (!v.is_string()) fail(key, "expected a string, found " + v.dump());
    return v.get<std::string>();
  }
  double number(const std::string& key) const {
    const ojson& v = *find(key);
    if (!v.is_number()) fail(key, "expected a number, found " + v.dump());
    return v.get<double>();
  }
};

// Checked as read, before narrowing to int: 4294967300 would otherwise become 4 (issue 7 fuzzing).
int checked_bits(const SectionReader& r, int64_t bits, bool allow_16_plus) {
  const bool ok = bits == 2 || bits == 3 || bits == 4 || bits == 8 ||
                  (allow_16_plus && bits >= 16 && bits <= std::numeric_limits<int>::max());
  if (!ok) r.fail("bits", "expected 2, 3, 4 or 8" + std::string(allow_16_plus ? " (or >= 16 for 16-bit)" : "") +
                              ", found " + std::to_string(bits));
  return static_cast<int>(bits);
}

void check_group_size(const SectionReader& r, int64_t g) {
  if (!(g == -1 || g > 0)) r.fail("group_size", "expected -1 or a positive size, found " + std::to_string(g));
}

LayerOverride parse_override(const ojson& v, const std::string& source, const std::string& where) {
  SectionReader r{v, source, where};
  if (!v.is_object()) OMNI_FAIL(source, ": ", where, ": expected an object, found ", v.dump());
  LayerOverride o;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string& k = it.key();
    if (it->is_null()) continue;
    if (k == "bits") {
      o.bits = checked_bits(r, r.integer(k), true);
    } else if (k == "group_size") {
      o.group_size = r.integer(k);
      check_group_size(r, *o.group_size);
    } else if (k == "sym") {
      o.sym = r.boolean(k);
    } else if (k == "data_type") {
      o.data_type = r.string(k);
    } else {
      o.other[k] = *it;
    }
  }
  return o;
}

void parse_block_names(const ojson& v, const SectionReader& r, const std::string& key, std::vector<std::string>& out) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    size_t start = 0;
    while (start <= s.size()) {
      const size_t comma = s.find(',', start);
      const std::string part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!part.empty()) out.push_back(part);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  } else if (v.is_array()) {  // a list, possibly nested (one list per block group)
    for (const ojson& e : v) parse_block_names(e, r, key, out);
  } else {
    r.fail(key, "expected a comma-separated string or a list of strings, found " + v.dump());
  }
}

}  // namespace

QuantizationConfig parse_quantization_config(const ojson& j, const std::string& source) {
  OMNI_CHECK(j.is_object(), source, ": quantization_config: expected an object, found ", j.dump());
  SectionReader r{j, source, "quantization_config"};
  QuantizationConfig c;

  if (!r.find("quant_method")) r.fail("quant_method", "missing");
  const std::string method = r.string("quant_method");
  if (method == "auto-round" || method == "auto_round" || method == "intel/auto-round") {
    c.quant_method = "auto-round";
  } else if (method == "gptq" || method == "auto_gptq") {
    c.quant_method = "gptq";
  } else {
    r.fail("quant_method", "unsupported \"" + method + "\" (supported: \"auto-round\", \"gptq\", \"auto_gptq\")");
  }

  if (!r.find("bits")) r.fail("bits", "missing");
  c.bits = checked_bits(r, r.integer("bits"), false);
  if (!r.find("group_size")) r.fail("group_size", "missing");
  c.group_size = r.integer("group_size");
  check_group_size(r, c.group_size);
  if (r.find("sym")) c.sym = r.boolean("sym");
  if (r.find("data_type")) c.data_type = r.string("data_type");
  if (r.find("packing_format")) {
    c.packing_format = r.string("packing_format");
    c.packing_format_given = true;
  }

  static const std::set<std::string> handled = {
      "quant_method", "bits", "group_size", "sym", "data_type", "packing_format", "block_name_to_quantize",
      "to_quant_block_names", "extra_config", "dynamic", "desc_act", "true_sequential", "damp_percent", "lm_head",
      "checkpoint_format", "provider", "autoround_version"};
  for (const char* key : {"block_name_to_quantize", "to_quant_block_names"}) {
    if (const ojson* v = r.find(key); v && c.block_name_to_quantize.empty())
      parse_block_names(*v, r, key, c.block_name_to_quantize);
  }
  if (const ojson* v = r.find("extra_config")) {
    if (!v->is_object()) r.fail("extra_config", "expected an object, found " + v->dump());
    for (auto it = v->begin(); it != v->end(); ++it)
      c.extra_config.push_back(
          {it.key(), parse_override(*it, source, "quantization_config.extra_config[\"" + it.key() + "\"]"), false});
  }
  if (const ojson* v = r.find("dynamic")) {  // GPTQModel: "-:regex" skip, "+:regex" or "regex" override
    if (!v->is_object()) r.fail("dynamic", "expected an object, found " + v->dump());
    for (auto it = v->begin(); it != v->end(); ++it) {
      std::string key = it.key();
      const std::string where = "quantization_config.dynamic[\"" + key + "\"]";
      ExtraConfigEntry e;
      e.from_gptq_dynamic = true;
      if (key.rfind("-:", 0) == 0) {
        e.key = key.substr(2);
        e.value.bits = 16;
      } else {
        e.key = key.rfind("+:", 0) == 0 ? key.substr(2) : key;
        e.value = parse_override(*it, source, where);
      }
      c.extra_config.push_back(std::move(e));
    }
  }
  if (r.find("desc_act")) c.desc_act = r.boolean("desc_act");
  if (r.find("true_sequential")) c.true_sequential = r.boolean("true_sequential");
  if (r.find("damp_percent")) c.damp_percent = r.number("damp_percent");
  if (r.find("lm_head")) c.lm_head = r.boolean("lm_head");
  if (r.find("checkpoint_format")) c.checkpoint_format = r.string("checkpoint_format");
  if (r.find("provider")) c.provider = r.string("provider");
  if (r.find("autoround_version")) c.autoround_version = r.string("autoround_version");

  for (auto it = j.begin(); it != j.end(); ++it) {
    if (handled.count(it.key())) continue;
    if (tuning_keys().count(it.key())) c.tuning[it.key()] = *it;
    else c.other[it.key()] = *it;
  }
  return c;
}

std::optional<QuantizationConfig> read_quantization_config_text(std::string_view config_text,
                                                               const std::string& file) {
  const ojson j = parse_ordered_json_text(config_text, file);
  if (j.is_object() && j.contains("quantization_config") && !j["quantization_config"].is_null())
    return parse_quantization_config(j["quantization_config"], file);
  return std::nullopt;
}

std::optional<QuantizationConfig> read_quantization_config(const std::string& model_dir) {
  const std::string config_path = model_dir + "/config.json";
  if (file_exists(config_path)) {
    if (auto q = read_quantization_config_text(read_text_file(config_path), config_path)) return q;
  }
  const std::string qc_path = model_dir + "/quantization_config.json";
  if (file_exists(qc_path))
    return parse_quantization_config(parse_ordered_json_text(read_text_file(qc_path), qc_path), qc_path);
  return std::nullopt;
}

namespace {

bool is_default_tuning(const std::string& key, const ojson& v, const ojson& tuning) {
  auto eq_num = [&](double d) { return v.is_number() && std::fabs(v.get<double>() - d) <= 1e-12 * std::fabs(d); };
  if (key == "iters") return eq_num(200);
  if (key == "nsamples") return eq_num(128);
  if (key == "seqlen") return eq_num(2048);
  if (key == "batch_size") return eq_num(8);
  if (key == "gradient_accumulate_steps") return eq_num(1);
  if (key == "seed") return eq_num(42);
  if (key == "enable_quanted_input" || key == "enable_minmax_tuning" || key == "amp") return v == ojson(true);
  if (key == "enable_norm_bias_tuning" || key == "low_gpu_mem_usage") return v == ojson(false);
  if (key == "scale_dtype") return v == ojson("torch.float16");
  if (key == "lr" || key == "minmax_lr") {  // default 1 / iters
    const double iters = tuning.contains("iters") && tuning["iters"].is_number() ? tuning["iters"].get<double>() : 200;
    return iters > 0 && eq_num(1.0 / iters);
  }
  return false;
}

// A regex with Python re.search semantics, for GPTQModel's re.match.
std::string as_dynamic_regex(const ExtraConfigEntry& e) {
  static const std::string special = "*+?^$()[]{}|\\";
  if (e.from_gptq_dynamic) return e.key;
  if (e.key.find_first_of(special) == std::string::npos) {  // a plain layer name: match it exactly
    std::string out = "^";
    for (char ch : e.key) {
      if (ch == '.' || special.find(ch) != std::string::npos) out += '\\';
      out += ch;
    }
    return out + "$";
  }
  if (e.key.rfind("^", 0) == 0 || e.key.rfind(".*", 0) == 0) return e.key;
  return ".*" + e.key;
}

ojson override_json(const LayerOverride& o) {
  ojson j = ojson::object();
  if (o.bits) j["bits"] = *o.bits;
  if (o.group_size) j["group_size"] = *o.group_size;
  if (o.sym) j["sym"] = *o.sym;
  if (o.data_type) j["data_type"] = *o.data_type;
  for (auto it = o.other.begin(); it != o.other.end(); ++it) j[it.key()] = *it;
  return j;
}

}  // namespace

ojson to_json(const QuantizationConfig& c) {
  ojson j = ojson::object();
  j["bits"] = c.bits;
  j["group_size"] = c.group_size;
  j["sym"] = c.sym;
  j["data_type"] = c.data_type;
  for (auto it = c.tuning.begin(); it != c.tuning.end(); ++it)
    if (!it->is_null() && !is_default_tuning(it.key(), *it, c.tuning)) j[it.key()] = *it;
  if (!c.autoround_version.empty()) j["autoround_version"] = c.autoround_version;
  if (!c.block_name_to_quantize.empty()) {
    std::string joined;
    for (const std::string& b : c.block_name_to_quantize) joined += (joined.empty() ? "" : ",") + b;
    j["block_name_to_quantize"] = joined;
  }
  if (c.is_gptq()) {
    j["quant_method"] = "gptq";
    if (!c.provider.empty()) j["provider"] = c.provider;
    j["desc_act"] = c.desc_act;
    j["true_sequential"] = c.true_sequential.value_or(false);
    j["damp_percent"] = c.damp_percent.value_or(0.01);
    j["lm_head"] = c.lm_head;
    if (!c.checkpoint_format.empty()) j["checkpoint_format"] = c.checkpoint_format;
    if (!c.extra_config.empty()) {
      ojson dyn = ojson::object();
      for (const ExtraConfigEntry& e : c.extra_config) {
        const bool skip = e.value.bits && *e.value.bits >= 16;
        const std::string key = (skip ? "-:" : "+:") + as_dynamic_regex(e);
        if (dyn.contains(key)) continue;  // the first entry with a key applies; a repeat must not replace it
        if (skip) {
          dyn[key] = ojson::object();
        } else {
          ojson o = ojson::object();
          o["bits"] = e.value.bits.value_or(c.bits);
          o["group_size"] = e.value.group_size.value_or(c.group_size);
          o["sym"] = e.value.sym.value_or(c.sym);
          dyn[key] = o;
        }
      }
      j["dynamic"] = dyn;
    }
  } else {
    j["quant_method"] = "auto-round";
    j["packing_format"] = c.packing_format;
    if (!c.provider.empty()) j["provider"] = c.provider;
    if (!c.extra_config.empty()) {
      ojson extra = ojson::object();
      // The first entry with a key is the one that applies (layer_selection.h); a later one with the same key
      // (extra_config and dynamic both naming it) must not overwrite it, or the written file would mean another
      // thing (issue 7 fuzzing).
      for (const ExtraConfigEntry& e : c.extra_config)
        if (!extra.contains(e.key)) extra[e.key] = override_json(e.value);
      j["extra_config"] = extra;
    }
  }
  for (auto it = c.other.begin(); it != c.other.end(); ++it)
    if (!j.contains(it.key())) j[it.key()] = *it;
  return j;
}

}  // namespace omni
