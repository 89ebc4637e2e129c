#include "quant/checkpoint_reader.h"

#include <algorithm>

#include "core/error.h"
#include "quant/grouped_int_weight.h"
#include "quant/layer_selection.h"
#include "quant/pack.h"

namespace omni {

namespace {

const char* kQzerosSuffix = ".qzeros";

// The GPTQ-layout packings we read; AWQ and other layouts are refused with the field named.
void check_packing(const QuantizationConfig& cfg, const std::string& prefix) {
  if (cfg.is_gptq()) return;
  const std::string& pf = cfg.packing_format;
  const bool gptq_layout = pf == "auto_round" || pf.find("auto_gptq") != std::string::npos ||
                           pf.find("gptqmodel") != std::string::npos;
  OMNI_CHECK(gptq_layout, prefix, ": quantization_config.packing_format \"", pf,
             "\" is not supported (supported: auto_round:auto_gptq, auto_round:gptqmodel, auto_round)");
}

// Zero points a symmetric layer can hold: one value everywhere.
std::pair<int, int> value_range(const std::vector<uint8_t>& v) {
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return {int(*lo), int(*hi)};
}

// Sym evidence: MinusOne, Real, or throws; asym evidence: Real when the top value appears, else Unknown.
ZeroPointConvention evidence(const std::vector<uint8_t>& stored, int bits, bool sym, const std::string& tensor) {
  if (stored.empty()) return ZeroPointConvention::Unknown;
  const int half = 1 << (bits - 1), top = (1 << bits) - 1;
  const auto [lo, hi] = value_range(stored);
  if (sym) {
    if (lo == hi && lo == half - 1) return ZeroPointConvention::MinusOne;
    if (lo == hi && lo == half) return ZeroPointConvention::Real;
    OMNI_FAIL(tensor, ": the layer is symmetric (", bits, "-bit) but its stored zero points range over [", lo, ", ",
              hi, "]; expected all ", half - 1, " (zero - 1) or all ", half, " (real zero)");
  }
  return hi == top ? ZeroPointConvention::Real : ZeroPointConvention::Unknown;
}

}  // namespace

ZeroPointConvention detect_zero_point_convention(const std::vector<uint8_t>& stored, int bits, bool sym,
                                                 ZeroPointConvention declared, const std::string& tensor_name) {
  const ZeroPointConvention seen = evidence(stored, bits, sym, tensor_name);
  if (sym) return seen;  // the values are conclusive and win over any flag
  const int top = (1 << bits) - 1;
  if (seen == ZeroPointConvention::Real) {
    OMNI_CHECK(declared != ZeroPointConvention::MinusOne, tensor_name, ": stored zero point ", top,
               " is impossible under the declared zero - 1 convention (it would mean a zero point of ", top + 1,
               ")");
    return seen;
  }
  if (declared != ZeroPointConvention::Unknown) return declared;
  const auto [lo, hi] = value_range(stored);
  OMNI_FAIL("ambiguous zero-point convention in ", tensor_name, ": asymmetric ", bits,
            "-bit zero points stored in [", lo, ", ", hi,
            "] are valid both as zero - 1 (GPTQ v1, auto_round:auto_gptq) and as the real zero (GPTQ v2); the "
            "quantization_config does not settle it (set packing_format or checkpoint_format)");
}

ZeroPointConvention detect_checkpoint_zero_point_convention(const SafetensorsCheckpoint& ckpt,
                                                            const QuantizationConfig& cfg) {
  ZeroPointConvention found = ZeroPointConvention::Unknown;
  std::string found_in;
  const std::string suffix = kQzerosSuffix;
  for (const std::string& name : ckpt.names()) {
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string prefix = name.substr(0, name.size() - suffix.size());
    const LayerQuantization lq = resolve_layer_quantization(cfg, prefix);
    if (!lq.quantized) continue;
    const Tensor qz = ckpt.tensor(name);
    OMNI_CHECK(qz.ndim() == 2, name, ": expected 2 dims, found shape ", shape_str(qz.shape()));
    const std::vector<uint8_t> stored =
        unpack_auto_gptq_qzeros(qz, qz.dim(0), qz.dim(1) * 32 / lq.scheme.bits, lq.scheme.bits);
    const ZeroPointConvention here = evidence(stored, lq.scheme.bits, lq.scheme.sym, name);
    if (here == ZeroPointConvention::Unknown) continue;
    OMNI_CHECK(found == ZeroPointConvention::Unknown || found == here, "conflicting zero-point conventions: ",
               found_in, " stores ", zero_point_convention_name(found), ", ", name, " stores ",
               zero_point_convention_name(here));
    found = here;
    found_in = name;
  }
  return found != ZeroPointConvention::Unknown ? found : cfg.declared_zero_point_convention();
}

GroupedIntWeight read_quantized_linear(const SafetensorsCheckpoint& ckpt, const std::string& prefix,
                                       const QuantizationConfig& cfg, const QuantizedLinearReadOptions& opts) {
  check_packing(cfg, prefix);
  const LayerQuantization lq = resolve_layer_quantization(cfg, prefix);
  OMNI_CHECK(lq.quantized, prefix, ": quantization_config leaves this layer 16-bit (",
             lq.matched ? "extra_config entry \"" + lq.matched->key + "\"" : std::string("block_name_to_quantize"),
             ") but read_quantized_linear was asked for it");
  OMNI_CHECK(lq.data_type.rfind("int", 0) == 0, prefix, ": quantization_config data_type \"", lq.data_type,
             "\" is not supported (expected \"int\")");
  const int bits = lq.scheme.bits;
  const int64_t block = gptq_values_per_block(bits);

  const std::string qweight_name = prefix + ".qweight", qzeros_name = prefix + kQzerosSuffix,
                    scales_name = prefix + ".scales", g_idx_name = prefix + ".g_idx";
  for (const std::string* n : {&qweight_name, &qzeros_name, &scales_name})
    OMNI_CHECK(ckpt.contains(*n), "quantized layer ", prefix, ": tensor ", *n, " is missing from the checkpoint");

  auto check_dtype = [](const std::string& name, const TensorInfo& info, DType want) {
    OMNI_CHECK(info.dtype == want, name, ": dtype ", dtype_name(info.dtype), ", expected ", dtype_name(want));
  };
  auto check_shape = [](const std::string& name, const TensorInfo& info, const Shape& want) {
    OMNI_CHECK(info.shape == want, name, ": shape ", shape_str(info.shape), ", expected ", shape_str(want));
  };

  const TensorInfo& qw_info = ckpt.info(qweight_name);
  check_dtype(qweight_name, qw_info, DType::I32);
  OMNI_CHECK(qw_info.shape.size() == 2, qweight_name, ": expected 2 dims [in*", bits, "/32, out], found shape ",
             shape_str(qw_info.shape));
  const int64_t K = opts.in_features > 0 ? opts.in_features : qw_info.shape[0] * 32 / bits;
  const int64_t N = opts.out_features > 0 ? opts.out_features : qw_info.shape[1];
  OMNI_CHECK(K % block == 0, qweight_name, ": in_features ", K, " is not a multiple of ", block);
  OMNI_CHECK(N % block == 0, qzeros_name, ": out_features ", N, " is not a multiple of ", block,
             " (qzeros packs ", bits, "-bit zeros of ", block, " outputs into ", block * bits / 32, " int32)");
  check_shape(qweight_name, qw_info, {K * bits / 32, N});

  const int64_t g = lq.scheme.group_size_for(K);
  const int64_t G = (K + g - 1) / g;
  const TensorInfo& sc_info = ckpt.info(scales_name);
  check_dtype(scales_name, sc_info, DType::F16);
  check_shape(scales_name, sc_info, {G, N});
  const TensorInfo& qz_info = ckpt.info(qzeros_name);
  check_dtype(qzeros_name, qz_info, DType::I32);
  check_shape(qzeros_name, qz_info, {G, N * bits / 32});

  GroupedIntWeight w;
  w.bits = bits;
  w.in_features = K;
  w.out_features = N;
  w.group_size = g;
  w.qweight = ckpt.tensor(qweight_name);
  w.scales = ckpt.weight(scales_name);

  const std::vector<uint8_t> stored = unpack_auto_gptq_qzeros(ckpt.tensor(qzeros_name), G, N, bits);
  const ZeroPointConvention declared = opts.zero_point_convention != ZeroPointConvention::Unknown
                                           ? opts.zero_point_convention
                                           : cfg.declared_zero_point_convention();
  const ZeroPointConvention conv = detect_zero_point_convention(stored, bits, lq.scheme.sym, declared, qzeros_name);
  w.zeros = Tensor::empty({G, N}, DType::U8);
  uint8_t* z = w.zeros.data<uint8_t>();
  const int add = conv == ZeroPointConvention::MinusOne ? 1 : 0;
  for (size_t i = 0; i < stored.size(); ++i) z[i] = static_cast<uint8_t>(stored[i] + add);

  if (ckpt.contains(g_idx_name)) {
    const TensorInfo& gi_info = ckpt.info(g_idx_name);
    check_dtype(g_idx_name, gi_info, DType::I32);
    check_shape(g_idx_name, gi_info, {K});
    const Tensor gi = ckpt.tensor(g_idx_name);
    const int32_t* v = gi.data<int32_t>();
    bool trivial = true;
    std::vector<int64_t> count(static_cast<size_t>(G), 0);
    for (int64_t k = 0; k < K; ++k) {
      OMNI_CHECK(v[k] >= 0 && v[k] < G, g_idx_name, ": g_idx[", k, "] = ", v[k], " outside [0, ", G, ")");
      trivial = trivial && v[k] == k / g;
      ++count[static_cast<size_t>(v[k])];
    }
    if (!trivial) {  // act-order: every group still holds group_size inputs (the last one possibly fewer)
      for (int64_t i = 0; i < G; ++i)
        OMNI_CHECK(count[static_cast<size_t>(i)] <= g, g_idx_name, ": group ", i, " is assigned ",
                   count[static_cast<size_t>(i)], " inputs, more than the group size ", g);
      w.g_idx = gi;
    }
  }
  validate_grouped_int_weight(w, prefix);
  return w;
}

}  // namespace omni
