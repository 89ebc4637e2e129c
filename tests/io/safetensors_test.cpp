// safetensors reader/writer: round trips of every dtype, sharded checkpoints, the reference implementation's
// file (tools/make_safetensors_fixtures.py), and a corpus of broken files and checkpoints
// (tools/make_broken_safetensors.py) each of which must give an omni::Error naming the file and the tensor.
#include "io/safetensors.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <functional>

#include "support/error_of.h"

#include "core/half.h"

namespace fs = std::filesystem;
using namespace omni;

namespace {

const fs::path kDataDir = fs::path(OMNI_SOURCE_DIR) / "tests" / "data" / "safetensors";

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("omni_safetensors_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  fs::path path_;
};

using omni::testing_support::error_of;

// A tensor whose bytes are random (seeded), so that any misplaced byte shows.
Tensor random_tensor(const Shape& shape, DType dtype, unsigned seed) {
  Tensor t = Tensor::empty(shape, dtype);
  std::mt19937 rng(seed);
  auto* p = static_cast<uint8_t*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(rng());
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

}  // namespace

// ---- round trips -------------------------------------------------------------------------------------------

TEST(Safetensors, RoundTripEveryDtype) {
  TempDir d;
  std::vector<NamedTensor> tensors;
  const std::vector<Shape> shapes = {{3, 5}, {7}, {2, 1, 3}, {}, {1, 0}};
  for (int i = 0; i <= static_cast<int>(DType::F8_E5M2); ++i) {
    const auto dtype = static_cast<DType>(i);
    tensors.push_back({str_cat("t", i, ".", dtype_name(dtype)), random_tensor(shapes[i % shapes.size()], dtype, i)});
  }
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"quote\"and\\slash", "ünïcode ✓"}};
  const std::string path = d.file("all.safetensors");
  write_safetensors(path, tensors, metadata);
  EXPECT_EQ(d.listing(), std::vector<std::string>{"all.safetensors"});

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->header().metadata, metadata);
  EXPECT_EQ(f->header().data_offset % 8, 0u);
  ASSERT_EQ(f->header().tensors.size(), tensors.size());
  uint64_t expected_offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    // Laid out contiguously in the order given (header().tensors is in file order).
    const TensorInfo& info = f->header().tensors[i];
    EXPECT_EQ(info.name, tensors[i].name);
    EXPECT_EQ(info.data_begin, expected_offset);
    expected_offset += tensors[i].tensor.nbytes();
    EXPECT_EQ(info.data_end, expected_offset);
    const Tensor back = f->tensor(tensors[i].name);
    EXPECT_TRUE(same_bytes(back, tensors[i].tensor)) << tensors[i].name;
  }
  EXPECT_EQ(f->file_bytes(), f->header().data_offset + expected_offset);
}

TEST(Safetensors, TensorsBorrowTheMappingAndKeepItAlive) {
  TempDir d;
  const Tensor w = Tensor::from_f32(std::vector<float>{1.5f, -2.25f, 3.0f, 0.125f, 7.0f, -9.5f}, {2, 3});
  write_safetensors(d.file("m.safetensors"), {{"w", w}});
  Tensor borrowed;
  {
    auto f = SafetensorsFile::open(d.file("m.safetensors"));
    borrowed = f->tensor("w");
    const auto* base = reinterpret_cast<const uint8_t*>(borrowed.raw());
    // No copy: the pointer lies inside the file's mapping, right after the header.
    const auto* first = reinterpret_cast<const uint8_t*>(f->tensor("w").raw());
    EXPECT_EQ(base, first);
    EXPECT_EQ(f->header().data_offset % 8, 0u);
  }
  // The file object is gone; the tensor still holds the mapping.
  EXPECT_TRUE(same_bytes(borrowed, w));
  EXPECT_FLOAT_EQ(borrowed.data<float>()[4], 7.0f);
}

TEST(Safetensors, MisalignedTensorIsCopiedAligned) {
  TempDir d;
  // A valid file whose F32 tensor starts at data offset 3: the format allows it, typed access would not.
  const std::string header = R"({"b":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
                             R"("f":{"dtype":"F32","shape":[2],"data_offsets":[3,11]}})";
  const float values[2] = {3.75f, -1.0e-3f};
  std::string data = "\x07\x08\x09";
  data.append(reinterpret_cast<const char*>(values), 8);
  write_bytes(d.file("odd.safetensors"), safetensors_bytes(header + "   ", data));  // 96-byte header
  auto f = SafetensorsFile::open(d.file("odd.safetensors"));
  const Tensor t = f->tensor("f");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 4, 0u);
  EXPECT_EQ(t.data<float>()[0], 3.75f);
  EXPECT_EQ(t.data<float>()[1], -1.0e-3f);
  EXPECT_EQ(f->tensor("b").data<uint8_t>()[2], 9);
}

// Things the format allows and the parser must not reject: gaps between tensors, empty tensors inside another's
// range, 0-d tensors, JSON order different from file order.
TEST(Safetensors, AcceptsGapsEmptyTensorsAndAnyOrder) {
  const std::string header = R"({"z_last":{"dtype":"I16","shape":[2],"data_offsets":[20,24]},)"
                             R"("a_first":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                             R"("m_empty":{"dtype":"BF16","shape":[3,0],"data_offsets":[2,2]}})";
  std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  const std::string bytes = safetensors_bytes(padded, std::string(24, '\x05'));
  const SafetensorsHeader h =
      parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem.safetensors");
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[0].name, "a_first");
  EXPECT_EQ(h.tensors[1].name, "m_empty");
  EXPECT_EQ(h.tensors[2].name, "z_last");
  EXPECT_EQ(h.tensors[0].shape, Shape{});
  EXPECT_EQ(h.tensors[1].shape, (Shape{3, 0}));
  EXPECT_EQ(h.data_offset, 8 + padded.size());
}

TEST(Safetensors, WriterRejectsBadInput) {
  TempDir d;
  const Tensor t = random_tensor({4}, DType::F32, 1);
  std::string msg = error_of([&] { write_safetensors(d.file("x.safetensors"), {{"w", t}, {"w", t}}); });
  EXPECT_NE(msg.find("\"w\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("twice"), std::string::npos) << msg;
  msg = error_of([&] { write_safetensors(d.file("x.safetensors"), {{"__metadata__", t}}); });
  EXPECT_NE(msg.find("reserved"), std::string::npos) << msg;
  msg = error_of([&] { write_safetensors(d.file("x.safetensors"), {{"u", Tensor()}}); });
  EXPECT_NE(msg.find("undefined"), std::string::npos) << msg;
  EXPECT_TRUE(d.listing().empty());  // nothing half-written
}

TEST(Safetensors, InfoAndTensorOfAMissingNameNameTheFile) {
  TempDir d;
  write_safetensors(d.file("m.safetensors"), {{"w", random_tensor({2}, DType::BF16, 3)}});
  auto f = SafetensorsFile::open(d.file("m.safetensors"));
  EXPECT_TRUE(f->contains("w"));
  EXPECT_FALSE(f->contains("v"));
  const std::string msg = error_of([&] { f->tensor("v"); });
  EXPECT_NE(msg.find(d.file("m.safetensors")), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"v\""), std::string::npos) << msg;
}

// ---- sharded checkpoints -----------------------------------------------------------------------------------

TEST(Safetensors, ShardedWriteAndRead) {
  TempDir d;
  std::vector<NamedTensor> tensors;
  for (int i = 0; i < 7; ++i) tensors.push_back({str_cat("layer.", i, ".w"), random_tensor({5, 8}, DType::BF16, 100 + i)});
  tensors.push_back({"huge", random_tensor({300}, DType::F32, 200)});  // larger than a shard: a shard of its own
  tensors.push_back({"ids", random_tensor({3}, DType::I32, 201)});
  const std::string dir = (fs::path(d.str()) / "ckpt").string();
  fs::create_directories(dir);
  write_bytes((fs::path(dir) / "model.safetensors").string(), "stale single file that would shadow the index");

  const std::vector<std::string> written = write_safetensors_sharded(dir, tensors, 200, {{"format", "pt"}});
  // 80-byte tensors, 200-byte limit: 2 per shard, then "huge" alone, then "ids".
  const std::vector<std::string> expected_files = {
      "model-00001-of-00006.safetensors", "model-00002-of-00006.safetensors", "model-00003-of-00006.safetensors",
      "model-00004-of-00006.safetensors", "model-00005-of-00006.safetensors", "model-00006-of-00006.safetensors",
      "model.safetensors.index.json"};
  EXPECT_EQ(written, expected_files);
  std::vector<std::string> on_disk;
  for (const auto& e : fs::directory_iterator(dir)) on_disk.push_back(e.path().filename().string());
  std::sort(on_disk.begin(), on_disk.end());
  EXPECT_EQ(on_disk, expected_files);  // the stale model.safetensors is gone, no temporary files

  const auto index = nlohmann::json::parse(read_text_file((fs::path(dir) / "model.safetensors.index.json").string()));
  uint64_t total = 0;
  for (const auto& nt : tensors) total += nt.tensor.nbytes();
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  EXPECT_EQ(index["weight_map"]["layer.0.w"], "model-00001-of-00006.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.2.w"], "model-00002-of-00006.safetensors");
  EXPECT_EQ(index["weight_map"]["huge"], "model-00005-of-00006.safetensors");
  EXPECT_EQ(index["weight_map"]["ids"], "model-00006-of-00006.safetensors");
  EXPECT_EQ(index["weight_map"].size(), tensors.size());

  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(dir);
  EXPECT_EQ(ckpt.files().size(), 6u);
  std::vector<std::string> names;
  for (const auto& nt : tensors) names.push_back(nt.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(ckpt.names(), names);
  for (const auto& nt : tensors) EXPECT_TRUE(same_bytes(ckpt.tensor(nt.name), nt.tensor)) << nt.name;
  EXPECT_EQ(ckpt.files()[0]->header().metadata.at("format"), "pt");
  uint64_t bytes_on_disk = 0;
  for (const auto& f : ckpt.files()) bytes_on_disk += file_size(f->path());
  EXPECT_EQ(ckpt.total_file_bytes(), bytes_on_disk);
  const std::string msg = error_of([&] { ckpt.tensor("absent.weight"); });
  EXPECT_NE(msg.find(dir), std::string::npos) << msg;
  EXPECT_NE(msg.find("absent.weight"), std::string::npos) << msg;

  // Rewriting into the same directory with room for everything: one model.safetensors, the stale index removed.
  EXPECT_EQ(write_safetensors_sharded(dir, tensors), std::vector<std::string>{"model.safetensors"});
  EXPECT_FALSE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));
  const SafetensorsCheckpoint single = SafetensorsCheckpoint::open_dir(dir);
  ASSERT_EQ(single.files().size(), 1u);
  for (const auto& nt : tensors) EXPECT_TRUE(same_bytes(single.tensor(nt.name), nt.tensor)) << nt.name;
}

TEST(Safetensors, CheckpointWithOneDifferentlyNamedFile) {
  TempDir d;
  const Tensor t = random_tensor({6}, DType::F16, 9);
  write_safetensors(d.file("weights.safetensors"), {{"w", t}});
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(d.str());
  EXPECT_TRUE(same_bytes(ckpt.tensor("w"), t));
  EXPECT_TRUE(ckpt.contains("w"));
  EXPECT_EQ(ckpt.info("w").dtype, DType::F16);
}

TEST(Safetensors, CheckpointErrorsSayWhatWasExpected) {
  TempDir d;
  std::string msg = error_of([&] { SafetensorsCheckpoint::open_dir(d.str()); });
  EXPECT_NE(msg.find(d.str()), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.safetensors.index.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no .safetensors file"), std::string::npos) << msg;
  msg = error_of([&] { SafetensorsCheckpoint::open_dir(d.file("missing_dir")); });
  EXPECT_NE(msg.find("not a directory"), std::string::npos) << msg;
}

// Issue 7, finding 9: a model.safetensors that is there but not a regular file is named for what it is.
TEST(Safetensors, ModelFileThatIsNotARegularFileIsNamed) {
  struct Case {
    const char* what;
    std::function<void(const fs::path&)> make;
    const char* expect;
  };
  const Case cases[] = {
      {"directory", [](const fs::path& p) { fs::create_directory(p); }, "is not a regular file (it is a directory)"},
      {"fifo", [](const fs::path& p) { ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0); }, "is not a regular file (it is a FIFO)"},
      {"dangling symlink", [](const fs::path& p) { fs::create_symlink(p.parent_path() / "gone.safetensors", p); },
       "is a symbolic link to"},
      {"symlink loop", [](const fs::path& p) { fs::create_symlink(p, p); }, "cannot be opened"},
  };
  for (const Case& c : cases) {
    TempDir d;
    const fs::path p = fs::path(d.str()) / "model.safetensors";
    c.make(p);
    const std::string msg = error_of([&] { SafetensorsCheckpoint::open_dir(d.str()); });
    EXPECT_NE(msg.find(p.string()), std::string::npos) << c.what << ": " << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.what << ": " << msg;
  }
}

// ---- interop with the reference implementation -------------------------------------------------------------

TEST(Safetensors, ReadsTheReferenceImplementationsFile) {
  const auto f = SafetensorsFile::open((kDataDir / "reference.safetensors").string());
  const auto expected = nlohmann::json::parse(read_text_file((kDataDir / "reference_expected.json").string()));
  using StringMap = std::map<std::string, std::string>;
  EXPECT_EQ(f->header().metadata, expected["metadata"].get<StringMap>());
  ASSERT_EQ(f->header().tensors.size(), expected["tensors"].size());
  int float_checks = 0;
  for (const auto& [name, e] : expected["tensors"].items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(f->contains(name));
    const Tensor t = f->tensor(name);
    EXPECT_EQ(dtype_name(t.dtype()), e["dtype"].get<std::string>());
    EXPECT_EQ(t.shape(), e["shape"].get<Shape>());
    const std::vector<uint8_t> bytes = from_hex(e["hex"].get<std::string>());
    ASSERT_EQ(t.nbytes(), bytes.size());
    if (!bytes.empty()) {
      EXPECT_EQ(std::memcmp(t.raw(), bytes.data(), bytes.size()), 0);
    }
    // Decoded values: checks our bf16/f16 conversions against numpy's view of the same bits.
    if (t.dtype() == DType::BF16 || t.dtype() == DType::F16 || t.dtype() == DType::F32) {
      const Tensor f32 = t.to(DType::F32);
      const auto values = e["values"].get<std::vector<double>>();
      ASSERT_EQ(values.size(), static_cast<size_t>(f32.numel()));
      for (size_t i = 0; i < values.size(); ++i, ++float_checks)
        EXPECT_EQ(f32.data<float>()[i], static_cast<float>(values[i])) << "element " << i;
    } else if (t.dtype() == DType::I32) {
      const auto values = e["values"].get<std::vector<int32_t>>();
      for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(t.data<int32_t>()[i], values[i]);
    } else if (t.dtype() == DType::I64) {
      const auto values = e["values"].get<std::vector<int64_t>>();
      for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(t.data<int64_t>()[i], values[i]);
    }
  }
  EXPECT_GT(float_checks, 40);
}

// Writes the reference tensors with our writer, where tools/make_safetensors_fixtures.py --check-ours can read
// them with the reference implementation (CI does not run Python; the report says when it was run).
TEST(Safetensors, RewritesTheReferenceTensorsForThePythonCheck) {
  const auto ref = SafetensorsFile::open((kDataDir / "reference.safetensors").string());
  std::vector<NamedTensor> tensors;
  for (const TensorInfo& ti : ref->header().tensors) tensors.push_back({ti.name, ref->tensor(ti.name)});
  std::reverse(tensors.begin(), tensors.end());  // a different layout from the reference writer's
  const fs::path out = fs::path(OMNI_BINARY_DIR) / "safetensors_interop";
  fs::create_directories(out);
  write_safetensors((out / "ours.safetensors").string(), tensors, ref->header().metadata);
  write_safetensors_sharded((out / "ours_sharded").string(), tensors, 64, ref->header().metadata);
  const auto ours = SafetensorsFile::open((out / "ours.safetensors").string());
  const SafetensorsCheckpoint sharded = SafetensorsCheckpoint::open_dir((out / "ours_sharded").string());
  EXPECT_GT(sharded.files().size(), 2u);
  for (const auto& nt : tensors) {
    EXPECT_TRUE(same_bytes(ours->tensor(nt.name), nt.tensor)) << nt.name;
    EXPECT_TRUE(same_bytes(sharded.tensor(nt.name), nt.tensor)) << nt.name;
  }
}

// ---- broken input ------------------------------------------------------------------------------------------

// Every file of tests/data/safetensors/broken and the fragment its error must contain (besides the file name).
// Fragments name the tensor where there is one.
const std::map<std::string, std::string> kBrokenFiles = {
    {"empty_file", "too short for the 8-byte header length"},
    {"truncated_length", "too short for the 8-byte header length"},
    {"header_beyond_file", "header length 4096 runs beyond the end of the file"},
    {"header_length_huge", "runs beyond the end of the file"},
    {"header_length_tiny", "too short for a JSON object"},
    {"invalid_json", "malformed JSON"},
    {"trailing_garbage", "malformed JSON"},
    {"nul_in_header", "header contains a NUL byte at offset 65"},
    {"invalid_utf8_name", "malformed JSON"},
    {"top_level_array", "header must be a JSON object, found array"},
    {"top_level_string", "header must be a JSON object, found string"},
    {"entry_not_object", "tensor \"w\": expected an object"},
    {"unknown_dtype", "tensor \"w\": unknown dtype \"F33\""},
    {"dtype_lowercase", "tensor \"w\": unknown dtype \"f32\""},
    {"dtype_not_string", "tensor \"w\": \"dtype\" must be a string"},
    {"missing_dtype", "tensor \"w\": missing \"dtype\""},
    {"missing_shape", "tensor \"w\": missing \"shape\""},
    {"missing_offsets", "tensor \"w\": missing \"data_offsets\""},
    {"unknown_field", "tensor \"w\": unknown field \"strides\""},
    {"negative_shape", "tensor \"w\": shape[0]: expected a non-negative integer, found -2"},
    {"float_shape", "tensor \"w\": shape[0]: expected a non-negative integer, found number 2.0"},
    {"string_shape", "tensor \"w\": shape[0]: expected a non-negative integer, found string"},
    {"shape_not_array", "tensor \"w\": \"shape\" must be an array"},
    {"nested_shape", "nested deeper than 3 levels in entry \"w\""},
    {"shape_overflow", "tensor \"w\": shape [4294967296,4294967296,4294967296] has more elements than fit"},
    {"shape_bytes_overflow", "tensor \"w\": shape [4611686018427387904] of F32 needs more bytes than fit"},
    {"shape_dim_too_large", "tensor \"w\": shape[0]: value 9223372036854775808 is too large"},
    {"shape_dim_beyond_u64", "tensor \"w\": shape[0]: expected a non-negative integer, found number"},
    {"offsets_mismatch_shape", "tensor \"w\": data_offsets [0, 20] span 20 bytes but shape [2, 3] of F32 needs 24"},
    {"offsets_reversed", "tensor \"w\": data_offsets [8, 0] has begin after end"},
    {"offsets_one_value", "tensor \"w\": \"data_offsets\" must be an array of two integers"},
    {"offsets_negative", "tensor \"w\": data_offsets[0]: expected a non-negative integer, found -24"},
    {"offsets_float", "tensor \"w\": data_offsets[1]: expected a non-negative integer, found number"},
    {"offsets_beyond_file", "tensor \"w\": data_offsets [24, 48] reach beyond the end of the data section (40 bytes)"},
    {"offsets_huge", "tensor \"w\": data_offsets[1]: expected a non-negative integer"},
    {"overlapping_tensors", "tensors \"a\" [0, 16) and \"w\" [8, 24) overlap"},
    {"same_range_twice", "tensors \"a\" [0, 24) and \"w\" [0, 24) overlap"},
    {"duplicate_names", "duplicate entry \"w\""},
    {"duplicate_field", "duplicate key \"dtype\" in entry \"w\""},
    {"metadata_not_object", "\"__metadata__\" must be an object of strings, found array"},
    {"metadata_non_string", "\"__metadata__\" entry \"step\" must be a string, found number 1000"},
    {"metadata_nested", "\"__metadata__\" entry \"cfg\" must be a string, found object"},
};

TEST(SafetensorsBroken, EveryCorpusFileGivesAClearError) {
  size_t seen = 0;
  for (const auto& e : fs::directory_iterator(kDataDir / "broken")) {
    const std::string path = e.path().string();
    const std::string stem = e.path().stem().string();
    SCOPED_TRACE(path);
    const auto it = kBrokenFiles.find(stem);
    ASSERT_NE(it, kBrokenFiles.end()) << "corpus file without an expected message in kBrokenFiles: " << stem;
    ++seen;
    std::string msg;
    try {
      SafetensorsFile::open(path);
      msg = "<opened without error>";
    } catch (const omni::Error& err) {
      msg = err.what();
    }  // anything but omni::Error escapes and fails the test
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(it->second), std::string::npos) << "expected \"" << it->second << "\" in: " << msg;
    // The same bytes through the bare parser (what the fuzzer calls) give the same error.
    const auto mapped = MappedFile::open(path);
    EXPECT_THROW(parse_safetensors_header(mapped->data(), mapped->size(), stem), omni::Error);
  }
  EXPECT_EQ(seen, kBrokenFiles.size()) << "kBrokenFiles names files missing from the corpus";
}

// Directory → the fragment its error must contain, and the file the error must name (relative to the directory).
const std::map<std::string, std::pair<std::string, std::string>> kBrokenCheckpoints = {
    {"missing_shard", {"shard \"model-00002-of-00002.safetensors\" (listed for tensor \"b\") does not exist",
                       "model.safetensors.index.json"}},
    {"tensor_missing_from_shard",
     {"tensor \"b\" is mapped to shard \"model-00001-of-00002.safetensors\" but that file has no such tensor",
      "model.safetensors.index.json"}},
    {"malformed_json", {"malformed JSON", "model.safetensors.index.json"}},
    {"no_weight_map", {"missing \"weight_map\"", "model.safetensors.index.json"}},
    {"weight_map_not_object", {"\"weight_map\" must be an object, found array", "model.safetensors.index.json"}},
    {"weight_map_value_not_string", {"weight_map entry \"a\" must be a shard file name", "model.safetensors.index.json"}},
    {"weight_map_empty", {"\"weight_map\" is empty", "model.safetensors.index.json"}},
    {"weight_map_duplicate", {"duplicate key \"a\" in entry \"weight_map\"", "model.safetensors.index.json"}},
    {"total_size_negative", {"metadata.total_size: expected a non-negative integer", "model.safetensors.index.json"}},
    {"index_top_level_array", {"expected a JSON object, found array", "model.safetensors.index.json"}},
    {"shard_escapes_dir", {"tensor \"a\" is mapped to shard \"../model.safetensors\", which leaves the checkpoint",
                           "model.safetensors.index.json"}},
    {"tensor_in_two_shards", {"tensor \"a\" is present in two shards", "model-00001-of-00002.safetensors"}},
    {"broken_shard", {"tensor \"b\": data_offsets [0, 9] span 9 bytes", "model-00002-of-00002.safetensors"}},
    {"several_files_no_index", {"2 .safetensors files found (first.safetensors, second.safetensors)", ""}},
};

TEST(SafetensorsBroken, EveryBrokenCheckpointGivesAClearError) {
  size_t seen = 0;
  for (const auto& e : fs::directory_iterator(kDataDir / "broken_index")) {
    const std::string dir = e.path().string();
    const std::string name = e.path().filename().string();
    SCOPED_TRACE(dir);
    const auto it = kBrokenCheckpoints.find(name);
    ASSERT_NE(it, kBrokenCheckpoints.end()) << "corpus directory without an entry in kBrokenCheckpoints: " << name;
    ++seen;
    std::string msg;
    try {
      SafetensorsCheckpoint::open_dir(dir);
      msg = "<opened without error>";
    } catch (const omni::Error& err) {
      msg = err.what();
    }
    const std::string named = (e.path() / it->second.second).string();
    EXPECT_NE(msg.find(it->second.second.empty() ? dir : named), std::string::npos) << "message lacks the file: " << msg;
    EXPECT_NE(msg.find(it->second.first), std::string::npos) << "expected \"" << it->second.first << "\" in: " << msg;
  }
  EXPECT_EQ(seen, kBrokenCheckpoints.size());
}

// A header length above the 100 MB limit inside a file that really is that large (sparse, so it costs no disk).
TEST(SafetensorsBroken, ImplausibleHeaderLengthInALargeFile) {
  TempDir d;
  const std::string path = d.file("big.safetensors");
  const uint64_t claimed = 150'000'000;
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &claimed, 8);
  write_bytes(path, bytes + "{}");
  fs::resize_file(path, claimed + 100);
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("implausibly large"), std::string::npos) << msg;
}

// ---- performance: opening maps, it does not read -----------------------------------------------------------

TEST(SafetensorsPerf, OpeningAMultiGigabyteFileReadsOnlyTheHeader) {
  TempDir d;
  const std::string path = d.file("large.safetensors");
  // 8 GiB of (sparse) data: reading it would take seconds and page in the whole file.
  const uint64_t rows = 1 << 20, cols = 4096;
  const std::string header = str_cat(R"({"model.embed_tokens.weight":{"dtype":"BF16","shape":[)", rows, ",", cols,
                                     R"(],"data_offsets":[0,)", rows * cols * 2, "]}}");
  std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  write_bytes(path, safetensors_bytes(padded, ""));
  fs::resize_file(path, 8 + padded.size() + rows * cols * 2);
  const auto t0 = std::chrono::steady_clock::now();
  auto f = SafetensorsFile::open(path);
  const Tensor t = f->tensor("model.embed_tokens.weight");
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(t.nbytes(), rows * cols * 2);
  EXPECT_EQ(t.data<uint16_t>()[rows * cols - 1], 0);  // touches one page at the very end
  std::printf("opened an 8 GiB safetensors file in %.3f ms\n", ms);
  EXPECT_LT(ms, 500.0);
}

TEST(SafetensorsPerf, HeaderParsingScalesLinearly) {
  auto make = [](int n) {
    std::string h = "{";
    for (int i = 0; i < n; ++i)
      h += str_cat(i ? "," : "", "\"model.layers.", i, ".mlp.down_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[2,2]",
                   ",\"data_offsets\":[", 8 * i, ",", 8 * i + 8, "]}");
    h += "}";
    h.append((8 - h.size() % 8) % 8, ' ');
    return safetensors_bytes(h, std::string(static_cast<size_t>(8 * n), '\x01'));
  };
  auto time_parse = [](const std::string& bytes) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem");
    EXPECT_FALSE(h.tensors.empty());
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  const std::string small = make(10000), large = make(80000);
  // Best of a few runs: the machine may be shared, and a slow outlier must not look like quadratic growth.
  double t_small = 1e30, t_large = 1e30;
  for (int rep = 0; rep < 3; ++rep) t_small = std::min(t_small, time_parse(small));
  for (int rep = 0; rep < 2; ++rep) t_large = std::min(t_large, time_parse(large));
  std::printf("header parse: 10k tensors %.1f ms, 80k tensors %.1f ms (%.1f MB header)\n", t_small, t_large,
              large.size() / 1e6);
  // 8x the tensors; linear (with an n log n sort) stays far below a quadratic 64x.
  EXPECT_LT(t_large, 20 * t_small + 50.0);
}
