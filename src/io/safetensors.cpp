#include "io/safetensors.h"

#include "core/finite.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "core/error.h"

namespace omni {

// safetensors stores little-endian numbers and we hand out the bytes unconverted.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

// The reference implementation refuses headers above 100 MB; a real header with tens of thousands of tensors is
// a few MB, so anything larger is corruption, not a model.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

std::string in_quotes(std::string_view s) { return str_cat('"', s, '"'); }

std::string known_dtype_names() {
  std::string out;
  for (int i = 0; i <= static_cast<int>(DType::F8_E5M2); ++i) {
    if (i) out += ", ";
    out += dtype_name(static_cast<DType>(i));
  }
  return out;
}

// Builds a JSON DOM through nlohmann's SAX interface, rejecting what nlohmann's own parser accepts silently: a
// repeated key (it keeps the last one, so two tensors with one name would quietly lose one) and nesting deeper
// than `max_depth` (no valid header or index nests deeper; refusing early keeps hostile input cheap). Not the
// callback form of json::parse: with a callback, nlohmann rescans the parent object at every closing brace,
// which is quadratic in the number of tensors.
class StrictDomBuilder : public nlohmann::json_sax<Json> {
 public:
  StrictDomBuilder(int max_depth, const std::string& what) : max_depth_(max_depth), what_(what) {}
  Json take() { return std::move(root_); }

  bool null() override { return add(Json(nullptr)); }
  bool boolean(bool v) override { return add(Json(v)); }
  bool number_integer(number_integer_t v) override { return add(Json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return add(Json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return add(Json(v)); }
  bool string(string_t& v) override { return add(Json(std::move(v))); }
  bool binary(binary_t&) override { OMNI_FAIL(what_, ": unexpected binary value"); }
  bool start_object(std::size_t) override { return open(Json::object()); }
  bool start_array(std::size_t) override { return open(Json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    if (open_.size() == 1) top_level_key_ = k;
    if (open_.back()->contains(k)) {
      if (open_.size() == 1) OMNI_FAIL(what_, ": duplicate entry ", in_quotes(k));
      OMNI_FAIL(what_, ": duplicate key ", in_quotes(k), " in entry ", in_quotes(top_level_key_));
    }
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    OMNI_FAIL(what_, ": malformed JSON: ", e.what());
  }

 private:
  // Places a value in the open container (or as the root) and returns where it now lives.
  Json* place(Json&& v) {
    if (open_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Json& parent = *open_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    return &(parent[key_] = std::move(v));
  }
  bool add(Json&& v) {
    place(std::move(v));
    return true;
  }
  bool open(Json&& container) {
    OMNI_CHECK(static_cast<int>(open_.size()) <= max_depth_, what_, ": JSON nested deeper than ", max_depth_ + 1,
               " levels", top_level_key_.empty() ? "" : " in entry " + in_quotes(top_level_key_));
    // Pointers stay valid: a container is only appended to while it is the innermost open one.
    open_.push_back(place(std::move(container)));
    return true;
  }
  bool close() {
    open_.pop_back();
    return true;
  }

  int max_depth_;
  const std::string& what_;
  Json root_;
  std::vector<Json*> open_;
  std::string key_, top_level_key_;
};

Json parse_json_strict(const char* begin, const char* end, int max_depth, const std::string& what) {
  StrictDomBuilder builder(max_depth, what);
  try {
    Json::sax_parse(begin, end, &builder);
  } catch (const Json::exception& e) {
    OMNI_FAIL(what, ": malformed JSON: ", e.what());
  }
  return builder.take();
}

std::string clipped_dump(const Json& v) {
  std::string s = v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// A JSON value that must be an integer in [0, max]; nlohmann stores non-negative literals as unsigned. The
// context (`where`, `field`, optional `[index]`) is assembled only on failure: this runs for every dimension.
uint64_t json_to_unsigned(const Json& v, uint64_t max, const std::string& where, std::string_view field,
                          int64_t index = -1) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= max) return v.get<uint64_t>();
  const std::string context = index < 0 ? str_cat(where, ": ", field) : str_cat(where, ": ", field, "[", index, "]");
  if (v.is_number_unsigned()) OMNI_FAIL(context, ": value ", v.get<uint64_t>(), " is too large (at most ", max, ")");
  if (v.is_number_integer()) OMNI_FAIL(context, ": expected a non-negative integer, found ", v.get<int64_t>());
  OMNI_FAIL(context, ": expected a non-negative integer, found ", v.type_name(), " ", clipped_dump(v));
}


TensorInfo parse_tensor_entry(const std::string& name, const Json& entry, uint64_t data_bytes,
                              const std::string& file_name) {
  const std::string where = file_name + ": tensor \"" + name + '"';
  OMNI_CHECK(entry.is_object(), where, ": expected an object with dtype, shape and data_offsets, found ",
             entry.type_name());
  for (const auto& [key, value] : entry.items()) {
    (void)value;
    // Unknown fields (say "strides") would change how the bytes are meant to be read; refuse rather than guess.
    OMNI_CHECK(key == "dtype" || key == "shape" || key == "data_offsets", where, ": unknown field ", in_quotes(key),
               " (expected dtype, shape, data_offsets)");
  }
  TensorInfo info;
  info.name = name;

  const auto dtype_it = entry.find("dtype");
  OMNI_CHECK(dtype_it != entry.end(), where, ": missing \"dtype\"");
  OMNI_CHECK(dtype_it->is_string(), where, ": \"dtype\" must be a string, found ", clipped_dump(*dtype_it));
  const std::string& dtype_text = dtype_it->get_ref<const std::string&>();
  const std::optional<DType> dtype = dtype_from_name(dtype_text);
  OMNI_CHECK(dtype.has_value(), where, ": unknown dtype ", in_quotes(dtype_text), " (known: ", known_dtype_names(), ")");
  info.dtype = *dtype;

  const auto shape_it = entry.find("shape");
  OMNI_CHECK(shape_it != entry.end(), where, ": missing \"shape\"");
  OMNI_CHECK(shape_it->is_array(), where, ": \"shape\" must be an array, found ", clipped_dump(*shape_it));
  // The product of the non-zero dimensions must fit in int64: then every partial product does too, whatever
  // order later code multiplies in.
  uint64_t nonzero_product = 1;
  bool has_zero_dim = false;
  info.shape.reserve(shape_it->size());
  for (size_t i = 0; i < shape_it->size(); ++i) {
    const uint64_t d = json_to_unsigned((*shape_it)[i], std::numeric_limits<int64_t>::max(), where, "shape",
                                        static_cast<int64_t>(i));
    info.shape.push_back(static_cast<int64_t>(d));
    if (d == 0) {
      has_zero_dim = true;
      continue;
    }
    OMNI_CHECK(!__builtin_mul_overflow(nonzero_product, d, &nonzero_product) &&
                   nonzero_product <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
               where, ": shape ", clipped_dump(*shape_it), " has more elements than fit in 64 bits");
  }
  const uint64_t numel = has_zero_dim ? 0 : nonzero_product;
  uint64_t expected_bytes = 0;
  OMNI_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(info.dtype)), &expected_bytes), where,
             ": shape ", clipped_dump(*shape_it), " of ", dtype_text, " needs more bytes than fit in 64 bits");

  const auto offsets_it = entry.find("data_offsets");
  OMNI_CHECK(offsets_it != entry.end(), where, ": missing \"data_offsets\"");
  OMNI_CHECK(offsets_it->is_array() && offsets_it->size() == 2, where,
             ": \"data_offsets\" must be an array of two integers [begin, end], found ", clipped_dump(*offsets_it));
  constexpr uint64_t kAny = std::numeric_limits<uint64_t>::max();
  info.data_begin = json_to_unsigned((*offsets_it)[0], kAny, where, "data_offsets", 0);
  info.data_end = json_to_unsigned((*offsets_it)[1], kAny, where, "data_offsets", 1);
  OMNI_CHECK(info.data_begin <= info.data_end, where, ": data_offsets [", info.data_begin, ", ", info.data_end,
             "] has begin after end");
  OMNI_CHECK(info.data_end - info.data_begin == expected_bytes, where, ": data_offsets [", info.data_begin, ", ",
             info.data_end, "] span ", info.data_end - info.data_begin, " bytes but shape ", shape_str(info.shape),
             " of ", dtype_text, " needs ", expected_bytes);
  OMNI_CHECK(info.data_end <= data_bytes, where, ": data_offsets [", info.data_begin, ", ", info.data_end,
             "] reach beyond the end of the data section (", data_bytes, " bytes)");
  return info;
}

std::map<std::string, std::string> parse_metadata(const Json& v, const std::string& file_name) {
  OMNI_CHECK(v.is_object(), file_name, ": \"__metadata__\" must be an object of strings, found ", v.type_name());
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : v.items()) {
    OMNI_CHECK(value.is_string(), file_name, ": \"__metadata__\" entry ", in_quotes(key), " must be a string, found ",
               value.type_name(), " ", clipped_dump(value));
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

void check_no_overlap(std::vector<TensorInfo>& tensors, const std::string& file_name) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.data_begin != b.data_begin ? a.data_begin < b.data_begin : a.data_end < b.data_end;
  });
  const TensorInfo* furthest = nullptr;  // the tensor reaching furthest so far
  for (const TensorInfo& t : tensors) {
    if (t.data_begin == t.data_end) continue;  // an empty tensor covers no bytes
    if (furthest && t.data_begin < furthest->data_end)
      OMNI_FAIL(file_name, ": tensors ", in_quotes(furthest->name), " [", furthest->data_begin, ", ",
                furthest->data_end, ") and ", in_quotes(t.name), " [", t.data_begin, ", ", t.data_end,
                ") overlap in the data section");
    if (!furthest || t.data_end > furthest->data_end) furthest = &t;
  }
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t size, const std::string& file_name) {
  OMNI_CHECK(size >= 8, file_name, ": not a safetensors file: ", size,
             " bytes, too short for the 8-byte header length");
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes, 8);
  OMNI_CHECK(header_bytes <= size - 8, file_name, ": header length ", header_bytes, " runs beyond the end of the file (",
             size - 8, " bytes after the length field); truncated or not a safetensors file");
  OMNI_CHECK(header_bytes <= kMaxHeaderBytes, file_name, ": header length ", header_bytes,
             " is implausibly large (limit ", kMaxHeaderBytes, ")");
  OMNI_CHECK(header_bytes >= 2, file_name, ": header length ", header_bytes, " is too short for a JSON object");

  const char* text = reinterpret_cast<const char*>(bytes + 8);
  // nlohmann takes a NUL byte for the end of input, so "{}\0garbage" would pass; JSON never contains one.
  if (const void* nul = std::memchr(text, '\0', header_bytes))
    OMNI_FAIL(file_name, ": header contains a NUL byte at offset ", static_cast<const char*>(nul) - text + 8,
              " (malformed JSON)");
  // Depth 0 is the top object, 1 a tensor entry or the metadata, 2 a shape or data_offsets array.
  const Json root = parse_json_strict(text, text + header_bytes, 2, file_name + ": header");
  OMNI_CHECK(root.is_object(), file_name, ": header must be a JSON object, found ", root.type_name());

  SafetensorsHeader header;
  header.data_offset = 8 + header_bytes;
  const uint64_t data_bytes = size - header.data_offset;
  header.tensors.reserve(root.size());
  for (const auto& [key, value] : root.items()) {
    if (key == kMetadataKey) header.metadata = parse_metadata(value, file_name);
    else header.tensors.push_back(parse_tensor_entry(key, value, data_bytes, file_name));
  }
  // Keeps the tensors in file order, which is also the order to read them in.
  check_no_overlap(header.tensors, file_name);
  return header;
}

// ---- reading ---------------------------------------------------------------------------------------------

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto f = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  f->file_ = MappedFile::open(path);
  f->header_ = parse_safetensors_header(f->file_->data(), f->file_->size(), path);
  for (size_t i = 0; i < f->header_.tensors.size(); ++i) f->index_.emplace(f->header_.tensors[i].name, i);
  return f;
}

bool SafetensorsFile::contains(std::string_view name) const { return index_.find(name) != index_.end(); }

const TensorInfo& SafetensorsFile::info(std::string_view name) const {
  const auto it = index_.find(name);
  OMNI_CHECK(it != index_.end(), path(), ": no tensor named ", in_quotes(name), " (the file has ",
             header_.tensors.size(), " tensors)");
  return header_.tensors[it->second];
}

Tensor SafetensorsFile::tensor(std::string_view name) const {
  const TensorInfo& ti = info(name);
  if (ti.data_begin == ti.data_end) return Tensor::empty(ti.shape, ti.dtype);
  const uint8_t* p = file_->data() + header_.data_offset + ti.data_begin;
  // The format does not promise alignment; typed access to a misaligned element is undefined, so such a tensor
  // is copied into aligned memory (files we and the reference implementation write are aligned).
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(ti.dtype) != 0) {
    Tensor copy = Tensor::empty(ti.shape, ti.dtype);
    std::memcpy(copy.raw(), p, ti.data_end - ti.data_begin);
    return copy;
  }
  return Tensor::borrow(const_cast<uint8_t*>(p), ti.shape, ti.dtype, file_);
}

namespace {

// Shard names in an index are file names relative to the checkpoint; refuse anything that escapes it.
void check_shard_name(const std::string& shard, const std::string& tensor, const std::string& index_path) {
  OMNI_CHECK(!shard.empty(), index_path, ": tensor ", in_quotes(tensor), " is mapped to an empty shard name");
  const fs::path p(shard);
  OMNI_CHECK(p.is_relative(), index_path, ": tensor ", in_quotes(tensor), " is mapped to shard ", in_quotes(shard),
             ", an absolute path (shards must be files of the checkpoint directory)");
  for (const auto& part : p)
    OMNI_CHECK(part != "..", index_path, ": tensor ", in_quotes(tensor), " is mapped to shard ", in_quotes(shard),
               ", which leaves the checkpoint directory");
}

std::vector<std::string> safetensors_files_in(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors" && e.is_regular_file()) out.push_back(e.path().filename().string());
  OMNI_CHECK(!ec, "cannot list ", dir, ": ", ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

SafetensorsCheckpoint SafetensorsCheckpoint::open_dir(const std::string& dir, const std::string& stem) {
  const std::string single_name = stem + ".safetensors", index_name = stem + ".safetensors.index.json";
  std::error_code ec;
  OMNI_CHECK(fs::is_directory(dir, ec), dir, ": not a directory (expected a checkpoint directory with ",
             single_name, " or ", index_name, ")");
  SafetensorsCheckpoint ckpt;
  ckpt.dir_ = dir;
  const std::string single_path = (fs::path(dir) / single_name).string();
  const std::string index_path = (fs::path(dir) / index_name).string();

  // Like transformers, a single model.safetensors wins over an index.
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;  // from the index, when there is one
  if (file_exists(single_path)) {
    shard_names.push_back(single_name);
  } else if (file_exists(index_path)) {
    const std::string text = read_text_file(index_path);
    // Depth 0 the index object, 1 "metadata"/"weight_map", 2 room for structured metadata.
    const Json root = parse_json_strict(text.data(), text.data() + text.size(), 2, index_path);
    OMNI_CHECK(root.is_object(), index_path, ": expected a JSON object, found ", root.type_name());
    const auto meta = root.find("metadata");
    if (meta != root.end() && !meta->is_null()) {
      OMNI_CHECK(meta->is_object(), index_path, ": \"metadata\" must be an object, found ", meta->type_name());
      const auto total = meta->find("total_size");
      if (total != meta->end())
        json_to_unsigned(*total, std::numeric_limits<uint64_t>::max(), index_path, "metadata.total_size");
    }
    const auto wm = root.find("weight_map");
    OMNI_CHECK(wm != root.end(), index_path, ": missing \"weight_map\"");
    OMNI_CHECK(wm->is_object(), index_path, ": \"weight_map\" must be an object, found ", wm->type_name());
    OMNI_CHECK(!wm->empty(), index_path, ": \"weight_map\" is empty");
    std::unordered_set<std::string> seen;
    for (const auto& [name, shard] : wm->items()) {
      OMNI_CHECK(shard.is_string(), index_path, ": weight_map entry ", in_quotes(name),
                 " must be a shard file name, found ", clipped_dump(shard));
      const std::string& s = shard.get_ref<const std::string&>();
      check_shard_name(s, name, index_path);
      weight_map.emplace(name, s);
      if (seen.insert(s).second) shard_names.push_back(s);
    }
    std::sort(shard_names.begin(), shard_names.end());
    for (const auto& [name, shard] : weight_map)
      OMNI_CHECK(file_exists((fs::path(dir) / shard).string()), index_path, ": shard ", in_quotes(shard),
                 " (listed for tensor ", in_quotes(name), ") does not exist in ", dir);
  } else {
    // Something named STEM.safetensors that is not a readable regular file: say what it is, rather than that
    // there is none.
    const fs::file_status link = fs::symlink_status(single_path, ec);
    if (!ec && fs::exists(link)) {
      const fs::file_status target = fs::status(single_path, ec);
      OMNI_CHECK(!ec || ec == std::errc::no_such_file_or_directory, single_path, ": cannot be opened (",
                 ec.message(), ")");
      OMNI_CHECK(!(fs::is_symlink(link) && !fs::exists(target)), single_path, " is a symbolic link to ",
                 fs::read_symlink(single_path, ec).string(), ", which does not exist");
      OMNI_FAIL(single_path, " is not a regular file (it is ",
                fs::is_directory(target) ? "a directory" : fs::is_fifo(target) ? "a FIFO" : "a special file",
                "); expected the checkpoint's weights");
    }
    const std::vector<std::string> found = safetensors_files_in(dir);
    if (found.size() != 1) {
      std::string listing;
      for (const auto& f : found) {
        if (!listing.empty()) listing += ", ";
        listing += f;
      }
      OMNI_FAIL(dir, ": no ", single_name, " and no ", index_name, "; ",
                found.empty() ? std::string("no .safetensors file found")
                              : str_cat(found.size(), " .safetensors files found (", listing,
                                        ") and no index saying how they fit together"));
    }
    shard_names = found;
  }

  std::map<std::string, size_t> shard_index;
  for (const std::string& s : shard_names) {
    shard_index.emplace(s, ckpt.files_.size());
    ckpt.files_.push_back(SafetensorsFile::open((fs::path(dir) / s).string()));
  }
  for (size_t fi = 0; fi < ckpt.files_.size(); ++fi) {
    for (const TensorInfo& t : ckpt.files_[fi]->header().tensors) {
      const auto [it, inserted] = ckpt.where_.emplace(t.name, fi);
      OMNI_CHECK(inserted, dir, ": tensor ", in_quotes(t.name), " is present in two shards, ",
                 ckpt.files_[it->second]->path(), " and ", ckpt.files_[fi]->path());
    }
  }
  for (const auto& [name, shard] : weight_map) {
    const size_t fi = shard_index.at(shard);
    OMNI_CHECK(ckpt.files_[fi]->contains(name), index_path, ": tensor ", in_quotes(name), " is mapped to shard ",
               in_quotes(shard), " but that file has no such tensor");
  }
  return ckpt;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, fi] : where_) out.push_back(name);  // std::map: already sorted
  return out;
}

bool SafetensorsCheckpoint::contains(std::string_view name) const { return where_.find(name) != where_.end(); }

const TensorInfo& SafetensorsCheckpoint::info(std::string_view name) const {
  const auto it = where_.find(name);
  OMNI_CHECK(it != where_.end(), dir_, ": checkpoint has no tensor named ", in_quotes(name));
  return files_[it->second]->info(name);
}

Tensor SafetensorsCheckpoint::tensor(std::string_view name) const {
  const auto it = where_.find(name);
  OMNI_CHECK(it != where_.end(), dir_, ": checkpoint has no tensor named ", in_quotes(name));
  return files_[it->second]->tensor(name);
}

Tensor SafetensorsCheckpoint::weight(std::string_view name) const {
  Tensor t = tensor(name);
  require_finite(t, str_cat(dir_, ": tensor ", in_quotes(name)));
  return t;
}

uint64_t SafetensorsCheckpoint::total_file_bytes() const {
  uint64_t total = 0;
  for (const auto& f : files_) total += f->file_bytes();
  return total;
}

// ---- writing ---------------------------------------------------------------------------------------------

namespace {

std::string json_string(const std::string& s, const std::string& context) {
  try {
    return Json(s).dump();
  } catch (const Json::exception& e) {  // invalid UTF-8
    OMNI_FAIL(context, ": cannot be written as JSON: ", e.what());
  }
}

// The header text, padded with spaces so that the data section starts at a multiple of 8.
std::string build_header(const std::string& path, const std::vector<NamedTensor>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  std::string h = "{";
  bool first = true;
  if (!metadata.empty()) {
    h += str_cat('"', kMetadataKey, "\":{");
    for (const auto& [k, v] : metadata) {
      if (!first) h += ',';
      first = false;
      h += json_string(k, str_cat(path, ": metadata key ", in_quotes(k))) + ':' +
           json_string(v, str_cat(path, ": metadata value of ", in_quotes(k)));
    }
    h += '}';
    first = false;
  }
  std::unordered_set<std::string_view> seen;
  uint64_t offset = 0;
  for (const NamedTensor& nt : tensors) {
    const std::string where = str_cat(path, ": tensor ", in_quotes(nt.name));
    OMNI_CHECK(nt.name != kMetadataKey, where, ": this name is reserved for the metadata");
    OMNI_CHECK(seen.insert(nt.name).second, where, ": name given twice");
    OMNI_CHECK(nt.tensor.defined(), where, ": undefined tensor");
    OMNI_CHECK(nt.tensor.device() == Device::CPU, where, ": only CPU tensors can be written");
    const uint64_t bytes = nt.tensor.nbytes();
    if (!first) h += ',';
    first = false;
    h += json_string(nt.name, where) + str_cat(":{\"dtype\":\"", dtype_name(nt.tensor.dtype()), "\",\"shape\":[");
    for (size_t i = 0; i < nt.tensor.shape().size(); ++i) {
      if (i) h += ',';
      h += std::to_string(nt.tensor.shape()[i]);
    }
    h += str_cat("],\"data_offsets\":[", offset, ',', offset + bytes, "]}");
    offset += bytes;
  }
  h += '}';
  h.append((8 - h.size() % 8) % 8, ' ');
  return h;
}

uint64_t tensor_bytes(const std::vector<NamedTensor>& tensors) {
  uint64_t total = 0;
  for (const NamedTensor& nt : tensors) total += nt.tensor.defined() ? nt.tensor.nbytes() : 0;
  return total;
}

void remove_if_present(const fs::path& p) {
  std::error_code ec;
  fs::remove(p, ec);
  OMNI_CHECK(!ec, "cannot remove the stale ", p.string(), ": ", ec.message());
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string header = build_header(path, tensors, metadata);
  uint8_t length[8];
  const uint64_t n = header.size();
  std::memcpy(length, &n, 8);  // little-endian host (static_assert above)
  AtomicFileWriter out(path);
  out.write(length, 8);
  out.write(header);
  // Straight from the tensor memory: no staging copy of multi-GB weights.
  for (const NamedTensor& nt : tensors)
    if (nt.tensor.nbytes() > 0) out.write(nt.tensor.raw(), nt.tensor.nbytes());
  out.commit();
}

std::vector<std::string> write_safetensors_sharded(const std::string& dir, const std::vector<NamedTensor>& tensors,
                                                   uint64_t max_shard_bytes,
                                                   const std::map<std::string, std::string>& metadata,
                                                   const std::string& stem) {
  const std::string single_name = stem + ".safetensors", index_name = stem + ".safetensors.index.json";
  OMNI_CHECK(max_shard_bytes > 0, dir, ": max_shard_bytes must be positive");
  std::error_code ec;
  fs::create_directories(dir, ec);
  OMNI_CHECK(!ec, "cannot create checkpoint directory ", dir, ": ", ec.message());
  const fs::path d(dir);
  const uint64_t total = tensor_bytes(tensors);

  if (total <= max_shard_bytes) {
    write_safetensors((d / single_name).string(), tensors, metadata);
    // A leftover index would describe some other checkpoint.
    remove_if_present(d / index_name);
    return {single_name};
  }

  // Greedy in the given order; a tensor larger than the limit gets a shard of its own (as transformers does).
  std::vector<std::vector<NamedTensor>> shards(1);
  uint64_t current = 0;
  for (const NamedTensor& nt : tensors) {
    const uint64_t b = nt.tensor.defined() ? nt.tensor.nbytes() : 0;
    if (!shards.back().empty() && current + b > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(nt);
    current += b;
  }
  // Check names across shards before writing anything (each shard's writer only sees its own).
  std::unordered_set<std::string_view> seen;
  for (const NamedTensor& nt : tensors)
    OMNI_CHECK(seen.insert(nt.name).second, dir, ": tensor ", in_quotes(nt.name), ": name given twice");

  std::vector<std::string> written;
  Json weight_map = Json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char number[64];
    std::snprintf(number, sizeof number, "-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    const std::string name = stem + number;
    write_safetensors((d / name).string(), shards[i], metadata);
    for (const NamedTensor& nt : shards[i]) weight_map[nt.name] = name;
    written.push_back(name);
  }
  // transformers prefers model.safetensors over an index, so a stale one would shadow these shards. Removed
  // before the index appears: a crash in between leaves no loadable checkpoint rather than the old one.
  remove_if_present(d / single_name);
  Json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  std::string text;
  try {
    text = index.dump(2) + "\n";
  } catch (const Json::exception& e) {
    OMNI_FAIL(dir, ": cannot write the index: ", e.what());
  }
  write_file_atomic((d / index_name).string(), text);
  written.push_back(index_name);
  return written;
}

}  // namespace omni
