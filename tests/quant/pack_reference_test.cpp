// Our RTN + GPTQ-v1 packer + reader against an independent reference (issue 11, finding 3): the fixtures of
// tests/data/pack were written by tools/gptq_pack_reference.py, a numpy RTN/packer/unpacker that shares no code
// with the C++ tree (and that its --check-public mode found identical to the public auto-round 0.16.1's RTN
// and qlinear_torch_zp packer on every case). For every case (bits 2/3/4/8 x sym/asym x group 32/64/128/-1):
//  * the writer: quantize_rtn_checkpoint (what `omniround quantize --rtn` runs) on the fixture's F32 weight
//    must write qweight, qzeros and scales byte-identical to the reference's;
//  * the reader: read_quantized_linear on the reference's tensors (in a checkpoint with the matching
//    quantization_config) must give back the reference's codes and real zero points exactly, and the packing
//    functions alone must unpack them too.
// The fixtures are committed; a missing one is a failure, not a skip.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "backends/cpu/dequantize_gptq.h"
#include "core/half.h"
#include "io/file_util.h"
#include "io/safetensors.h"
#include "quant/checkpoint_reader.h"
#include "quant/grouped_int_weight.h"
#include "quant/pack.h"
#include "quant/quant_config.h"
#include "quant/rtn.h"
#include "quant/rtn_checkpoint.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

const std::string kFixtureDir = std::string(OMNI_SOURCE_DIR) + "/tests/data/pack";

struct Case {
  std::string name, file, prefix;
  int bits = 0;
  int64_t group_size = 0, out_features = 0, in_features = 0, groups = 0;
  bool sym = true;
};

std::map<std::string, Case> load_manifest() {
  std::ifstream in(kFixtureDir + "/manifest.json");
  if (!in) return {};
  const nlohmann::json j = nlohmann::json::parse(in);
  std::map<std::string, Case> cases;
  for (const auto& c : j.at("cases")) {
    Case k;
    k.name = c.at("name");
    k.file = c.at("file");
    k.prefix = c.at("prefix");
    k.bits = c.at("bits");
    k.group_size = c.at("group_size");
    k.sym = c.at("sym");
    k.out_features = c.at("out_features");
    k.in_features = c.at("in_features");
    k.groups = c.at("groups");
    cases[k.name] = k;
  }
  return cases;
}

const std::map<std::string, Case>& manifest() {
  static const std::map<std::string, Case> m = load_manifest();
  return m;
}

std::string case_name(int bits, bool sym, int64_t group) {
  std::ostringstream os;  // (not operator+ on temporaries: g++ 12 warns -Wrestrict there)
  os << 'b' << bits << (sym ? "_sym" : "_asym") << "_g";
  if (group < 0)
    os << "ch";
  else
    os << group;
  return os.str();
}

std::vector<std::string> all_case_names() {
  std::vector<std::string> names;
  for (int bits : {2, 3, 4, 8})
    for (bool sym : {true, false})
      for (int64_t g : {32, 64, 128, -1}) names.push_back(case_name(bits, sym, g));
  return names;
}

std::string scratch_dir(const std::string& name) {
  const std::string d = std::string(OMNI_BINARY_DIR) + "/quant_test_tmp/pack_reference/" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Dtype, shape and every byte; on a mismatch, the first differing element (as int32 / uint16 words).
::testing::AssertionResult same_bytes(const Tensor& got, const Tensor& want, const std::string& what) {
  if (got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << what << ": dtype " << dtype_name(got.dtype()) << ", reference "
                                         << dtype_name(want.dtype());
  if (got.shape() != want.shape())
    return ::testing::AssertionFailure() << what << ": shape " << shape_str(got.shape()) << ", reference "
                                         << shape_str(want.shape());
  if (std::memcmp(got.raw(), want.raw(), want.nbytes()) == 0) return ::testing::AssertionSuccess();
  const size_t esize = want.nbytes() / static_cast<size_t>(want.numel());
  const auto* a = static_cast<const uint8_t*>(got.raw());
  const auto* b = static_cast<const uint8_t*>(want.raw());
  int64_t first = -1, count = 0;
  for (int64_t i = 0; i < want.numel(); ++i)
    if (std::memcmp(a + i * esize, b + i * esize, esize) != 0) {
      if (first < 0) first = i;
      ++count;
    }
  uint32_t va = 0, vb = 0;
  std::memcpy(&va, a + first * esize, esize);
  std::memcpy(&vb, b + first * esize, esize);
  const int64_t cols = want.shape().back();
  std::ostringstream os;
  os << what << ": " << count << " of " << want.numel() << " elements differ; first at [" << first / cols << ", "
     << first % cols << "]: ours 0x" << std::hex << va << ", reference 0x" << vb;
  return ::testing::AssertionFailure() << os.str();
}

QuantScheme scheme_of(const Case& c) {
  QuantScheme s;
  s.bits = c.bits;
  s.group_size = c.group_size;
  s.sym = c.sym;
  return s;
}

class PackReference : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const auto it = manifest().find(GetParam());
    ASSERT_NE(it, manifest().end()) << "case " << GetParam() << " missing from " << kFixtureDir
                                    << "/manifest.json (regenerate with tools/gptq_pack_reference.py)";
    c_ = it->second;
    const std::string path = kFixtureDir + "/" + c_.file;
    ASSERT_TRUE(fs::exists(path)) << "fixture " << path << " missing";
    file_ = SafetensorsFile::open(path);
  }
  Tensor ref(const std::string& suffix) const { return file_->tensor(c_.prefix + "." + suffix); }

  Case c_;
  std::shared_ptr<SafetensorsFile> file_;
};

// The writer: `quantize --rtn` on a one-Linear model holding the fixture weight, in the format the CLI uses
// for the scheme (auto_round for sym; --asym is auto_gptq only, which adds g_idx = k / g).
TEST_P(PackReference, RtnCheckpointWritesTheReferenceBytes) {
  const std::string dir = scratch_dir(c_.name);
  const std::string src = dir + "/source", out = dir + "/out";
  fs::create_directories(src);
  const Tensor w = ref("weight");
  ASSERT_EQ(w.dtype(), DType::F32);
  ASSERT_EQ(w.shape(), (Shape{c_.out_features, c_.in_features}));
  write_safetensors(src + "/model.safetensors", {{c_.prefix + ".weight", w}});
  write_file_atomic(src + "/config.json", R"({"architectures": ["Qwen3ForCausalLM"], "torch_dtype": "float32"})");

  RtnOptions opts;
  opts.scheme = scheme_of(c_);
  opts.block_names = {"model.layers"};
  opts.linear_names = {"mlp.down_proj"};
  opts.format = c_.sym ? QuantizedCheckpointFormat::AutoRound : QuantizedCheckpointFormat::AutoGptq;
  const RtnSummary summary = quantize_rtn_checkpoint(src, out, opts);
  ASSERT_EQ(summary.quantized, std::vector<std::string>{c_.prefix});

  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(out);
  for (const char* t : {"qweight", "qzeros", "scales"})
    EXPECT_TRUE(same_bytes(ck.tensor(c_.prefix + "." + t), ref(t), c_.name + " " + t));
  EXPECT_FALSE(ck.contains(c_.prefix + ".weight"));
  if (!c_.sym) {
    const Tensor gi = ck.tensor(c_.prefix + ".g_idx");
    const int64_t g = c_.in_features / c_.groups;
    for (int64_t k = 0; k < c_.in_features; ++k) ASSERT_EQ(gi.data<int32_t>()[k], k / g) << k;
  }
  // The in-memory path the tuner's export shares: codes, scales and real zero points before the file.
  const GroupedIntWeight q = quantize_rtn(w, opts.scheme);
  EXPECT_TRUE(same_bytes(q.qweight, ref("qweight"), c_.name + " quantize_rtn qweight"));
  EXPECT_TRUE(same_bytes(q.scales, ref("scales"), c_.name + " quantize_rtn scales"));
  EXPECT_TRUE(same_bytes(q.zeros, ref("ref_zeros"), c_.name + " quantize_rtn zero points"));
  fs::remove_all(dir);
}

// The unpackers alone: codes and zero − 1 back from the reference's words.
TEST_P(PackReference, UnpackRecoversTheReferenceCodes) {
  const Tensor codes = ref("ref_codes"), zeros = ref("ref_zeros");
  ASSERT_EQ(codes.shape(), (Shape{c_.out_features, c_.in_features}));
  ASSERT_EQ(zeros.shape(), (Shape{c_.groups, c_.out_features}));
  const std::vector<uint8_t> got = unpack_auto_gptq_qweight(ref("qweight"), c_.out_features, c_.in_features, c_.bits);
  ASSERT_EQ(got.size(), static_cast<size_t>(codes.numel()));
  EXPECT_EQ(std::memcmp(got.data(), codes.raw(), got.size()), 0) << c_.name << ": codes differ";
  std::vector<uint8_t> stored = unpack_auto_gptq_qzeros(ref("qzeros"), c_.groups, c_.out_features, c_.bits);
  for (uint8_t& z : stored) ++z;  // GPTQ v1: stored zero − 1
  ASSERT_EQ(stored.size(), static_cast<size_t>(zeros.numel()));
  EXPECT_EQ(std::memcmp(stored.data(), zeros.raw(), stored.size()), 0) << c_.name << ": zero points differ";
  // And our packers re-pack the reference's codes into the reference's words.
  EXPECT_TRUE(same_bytes(pack_auto_gptq_qweight(codes.data<uint8_t>(), c_.out_features, c_.in_features, c_.bits),
                         ref("qweight"), c_.name + " pack qweight"));
}

// The reader: the reference's tensors in a checkpoint with the case's quantization_config.
TEST_P(PackReference, ReaderRecoversTheReferenceCodesAndZeros) {
  const std::string dir = scratch_dir(c_.name + "_read");
  std::vector<NamedTensor> tensors;
  for (const char* t : {"qweight", "qzeros", "scales"}) tensors.push_back({c_.prefix + "." + t, ref(t)});
  write_safetensors(dir + "/model.safetensors", tensors);
  nlohmann::json qc = {{"quant_method", "auto-round"},
                       {"packing_format", "auto_round:auto_gptq"},
                       {"bits", c_.bits},
                       {"group_size", c_.group_size},
                       {"sym", c_.sym},
                       {"data_type", "int"},
                       {"block_name_to_quantize", "model.layers"}};
  write_file_atomic(dir + "/config.json", nlohmann::json{{"quantization_config", qc}}.dump());
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(dir);
  const std::optional<QuantizationConfig> cfg = read_quantization_config(dir);
  ASSERT_TRUE(cfg.has_value());
  const GroupedIntWeight w = read_quantized_linear(ck, c_.prefix, *cfg, {c_.in_features, c_.out_features});
  EXPECT_TRUE(same_bytes(w.zeros, ref("ref_zeros"), c_.name + " reader zero points"));
  const std::vector<uint8_t> codes = unpack_auto_gptq_qweight(w.qweight, c_.out_features, c_.in_features, c_.bits);
  EXPECT_EQ(std::memcmp(codes.data(), ref("ref_codes").raw(), codes.size()), 0) << c_.name << ": codes differ";
  // What a loader computes from the file equals our fake-quant weight of the source, bit for bit.
  EXPECT_TRUE(same_bytes(dequantize_grouped_int_weight(w), fake_quantize_rtn(ref("weight"), scheme_of(c_)),
                         c_.name + " dequantized weight"));
  // The BF16 form the CPU backend holds for non-4-bit weights under 16-bit activations: each F32 value rounded once.
  const Tensor f32 = dequantize_gptq_cpu(w, DType::F32), bf16 = dequantize_gptq_cpu(w, DType::BF16);
  int64_t differ = 0;
  for (int64_t i = 0; i < f32.numel(); ++i) differ += bf16.data<uint16_t>()[i] != f32_to_bf16(f32.data<float>()[i]);
  EXPECT_EQ(differ, 0) << c_.name << ": BF16 dequantization is not the rounded F32 one";
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(AllCases, PackReference, ::testing::ValuesIn(all_case_names()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// The fixture set is exactly the 32 cases above (a regenerated manifest cannot silently drop one).
TEST(PackReferenceFixtures, ManifestHoldsEveryCase) {
  ASSERT_EQ(manifest().size(), all_case_names().size()) << kFixtureDir << "/manifest.json";
  for (const std::string& n : all_case_names()) EXPECT_EQ(manifest().count(n), 1u) << n;
}

}  // namespace
}  // namespace omni
