#include "nn/decoder_lm.h"

#include <limits>
#include <optional>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "io/safetensors.h"
#include "nn/decoder_block.h"
#include "nn/decoder_tensors.h"
#include "quant/checkpoint_reader.h"
#include "quant/quant_config.h"
#include "quant/quant_summary.h"

namespace omni {
namespace {

bool is_float_dtype(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

struct LayerWeights {
  std::unordered_map<std::string, Tensor> params;
  std::unordered_map<std::string, std::shared_ptr<const PreparedLinear>> linears;
};

struct DecoderWeights {
  Tensor embed_tokens;  // [V, D]
  Tensor final_norm;    // [D]
  std::shared_ptr<const PreparedLinear> lm_head;
  std::vector<LayerWeights> layers;
};

class Loader {
 public:
  Loader(const std::string& dir, const DecoderSpec& spec, Backend& backend, LoadReport& report)
      : dir_(dir), spec_(spec), backend_(backend), report_(report), ckpt_(SafetensorsCheckpoint::open_dir(dir)) {
    quant_ = read_quantization_config(dir);
    if (quant_) {
      report_.quant_format = describe_quantization(*quant_);
      zero_convention_ = detect_checkpoint_zero_point_convention(ckpt_, *quant_);
    }
  }

  // A float tensor of the expected shape, on the backend.
  Tensor dense(const std::string& name, const Shape& shape) {
    OMNI_CHECK(ckpt_.contains(name), dir_, ": tensor \"", name, "\" is missing from the checkpoint");
    used_.insert(name);
    Tensor t = ckpt_.weight(name);
    OMNI_CHECK(is_float_dtype(t.dtype()), dir_, ": tensor \"", name, "\" has dtype ", dtype_name(t.dtype()),
               ", expected F32, BF16 or F16");
    OMNI_CHECK(t.shape() == shape, dir_, ": tensor \"", name, "\" has shape ", shape_str(t.shape()), ", expected ",
               shape_str(shape));
    return t;
  }

  std::shared_ptr<const PreparedLinear> linear(const std::string& prefix, int64_t in, int64_t out, bool bias) {
    LinearWeight w;
    if (ckpt_.contains(prefix + ".qweight")) {
      OMNI_CHECK(quant_.has_value(), dir_, ": tensor \"", prefix,
                 ".qweight\" is present but config.json has no quantization_config");
      w.quantized = read_quantized_linear(ckpt_, prefix, *quant_, {in, out, zero_convention_});
      w.is_quantized = true;
      for (const char* part : {".qweight", ".qzeros", ".scales", ".g_idx"}) used_.insert(prefix + part);
      ++report_.quantized_linears;
    } else {
      w.dense = dense(prefix + ".weight", {out, in});
      ++report_.dense_linears;
    }
    if (bias) w.bias = dense(prefix + ".bias", {out});
    auto prepared = backend_.prepare_linear(w);
    ++report_.linear_layouts[prepared->layout()];
    report_.linear_weight_bytes += prepared->weight_bytes;
    return prepared;
  }

  DecoderWeights load() {
    const DecoderSpec& s = spec_;
    const DecoderNames& n = s.names;
    const DecoderBlock block(s);
    DecoderWeights w;
    w.embed_tokens = backend_.upload(dense(n.embed_tokens, {s.vocab_size, s.hidden_size}));
    w.final_norm = backend_.upload(dense(n.final_norm, {s.hidden_size}));
    for (int64_t l = 0; l < s.num_hidden_layers; ++l) {
      const std::string prefix = n.block_prefix(l) + ".";
      LayerWeights lw;
      for (const ParamDesc& p : block.params()) lw.params[p.name] = backend_.upload(dense(prefix + p.name, p.shape));
      for (const LinearDesc& d : block.linears())
        lw.linears[d.name] = linear(prefix + d.name, d.in_features, d.out_features, d.has_bias);
      w.layers.push_back(std::move(lw));
    }
    // A tied head reuses the embedding table as its weight.
    if (s.tie_word_embeddings && !ckpt_.contains(n.lm_head)) {
      LinearWeight head;
      head.dense = dense(n.embed_tokens, {s.vocab_size, s.hidden_size});
      w.lm_head = backend_.prepare_linear(head);
      ++report_.linear_layouts[w.lm_head->layout()];
      report_.linear_weight_bytes += w.lm_head->weight_bytes;
    } else {
      const std::string head = n.lm_head.substr(0, n.lm_head.size() - std::string(".weight").size());
      w.lm_head = linear(head, s.hidden_size, s.vocab_size, false);
    }
    check_all_tensors_used();
    return w;
  }

  // Tensors the model did not read mean config.json and the checkpoint disagree: blocks past
  // num_hidden_layers (the model would silently run fewer), a dense weight beside a quantized one, a stray name.
  // transformers only warns about unused weights; here they are an error, since the numbers would be wrong
  // without a sign.
  void check_all_tensors_used() const {
    std::vector<std::string> unused;
    for (const std::string& name : ckpt_.names())
      if (!used_.count(name)) unused.push_back(name);
    refuse_unused_tensors(dir_, spec_, unused);
  }

 private:
  std::string dir_;
  const DecoderSpec& spec_;
  Backend& backend_;
  LoadReport& report_;
  SafetensorsCheckpoint ckpt_;
  std::optional<QuantizationConfig> quant_;
  ZeroPointConvention zero_convention_ = ZeroPointConvention::Unknown;
  std::set<std::string> used_;  // every tensor name the model read
};

// A reused buffer per name: grown when a larger shape is asked for, otherwise the same pages every forward.
class Arena {
 public:
  explicit Arena(Backend& be) : be_(be) {}
  Tensor get(std::string_view name, const Shape& shape, DType dtype) {
    Tensor& storage = buffers_[std::string(name)];
    const int64_t n = shape_numel(shape);
    if (!storage.defined() || storage.numel() < n || storage.dtype() != dtype) {
      storage = be_.alloc({n}, dtype);
      ++generation_;
    }
    return storage.slice_rows(0, n).view(shape);
  }
  // Changes whenever a buffer is (re)allocated: recorded work that used the old buffers is stale.
  uint64_t generation() const { return generation_; }

 private:
  Backend& be_;
  std::unordered_map<std::string, Tensor> buffers_;
  uint64_t generation_ = 0;
};

// A decode step recorded by the backend (a CUDA graph) for one batch shape: replayed while the shape, the KV
// cache's memory and the arena's buffers stay those it was recorded with. The inputs that change per step (ids,
// slots, positions, cache rows) live in `inputs`, written before each run; the logits land in `logits`.
struct StepGraph {
  int64_t tokens = 0, capacity = 0, slots = 0;
  std::vector<const void*> cache;  // k and v of every layer
  uint64_t arena_generation = 0;
  Tensor inputs;  // I32 [4, N]: ids, slots, positions, cache rows
  Tensor logits;  // [N, V] in the activation dtype
  Tensor logits_f32;  // [N, V] F32, converted inside the recording (undefined when activations are F32)
  bool warm = false;    // one eager step ran with these buffers (the arena and the allocator's cache are warm)
  bool failed = false;  // the capture failed: this shape runs eagerly
  std::unique_ptr<CapturedWork> work;
};

// Batches of at most this many tokens, all with logits, are recorded (decode steps; a prefill runs once).
constexpr int64_t kMaxRecordedTokens = 16;

// The inference side of the block seam: prepared weights, arena activations, the KV cache of the batch.
class InferenceContext : public BlockContext {
 public:
  InferenceContext(Backend& be, Arena& arena) : be_(be), arena_(arena) {}

  // The token rows of this forward: positions, and where each row's keys go in the cache.
  void set_batch(const Tensor& positions, const AttentionRows& rows, const Tensor& cache_rows) {
    positions_ = positions;
    rows_ = rows;
    cache_rows_ = cache_rows;
  }
  void set_layer(const LayerWeights& w, Tensor& k_cache, Tensor& v_cache) {
    w_ = &w;
    k_cache_ = &k_cache;
    v_cache_ = &v_cache;
    const int64_t R = k_cache.dim(0) * k_cache.dim(1);
    kv_rows_.k = k_cache.view({R, k_cache.dim(2), k_cache.dim(3)});
    kv_rows_.v = v_cache.view({R, v_cache.dim(2), v_cache.dim(3)});
    kv_rows_.index = cache_rows_;
  }

  Backend& backend() override { return be_; }
  bool training() const override { return false; }
  Tensor act(std::string_view name, const Shape& shape) override {
    return arena_.get(name, shape, be_.activation_dtype());
  }
  Tensor stat(std::string_view name, const Shape& shape) override { return arena_.get(name, shape, DType::F32); }
  const Tensor& param(std::string_view name) override {
    const auto it = w_->params.find(std::string(name));
    OMNI_CHECK(it != w_->params.end(), "block parameter \"", name, "\" was not loaded");
    return it->second;
  }
  void linear(std::string_view name, Tensor& y, const Tensor& x) override {
    const auto it = w_->linears.find(std::string(name));
    OMNI_CHECK(it != w_->linears.end(), "block Linear \"", name, "\" was not loaded");
    be_.linear(y, x, *it->second);
  }
  void linear_backward(std::string_view name, Tensor*, const Tensor&, const Tensor&, bool) override {
    OMNI_FAIL("linear_backward(\"", name, "\") in an inference context");
  }
  const Tensor& positions() override { return positions_; }
  // Writes this step's keys and values into the cache rows of their sequences, then attends there.
  void attention(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v, Tensor* lse) override {
    OMNI_CHECK(lse == nullptr, "attention: an inference context saves no lse");
    const int64_t S = k_cache_->dim(0), C = k_cache_->dim(1), W = k_cache_->dim(2) * k_cache_->dim(3);
    Tensor k_rows = k_cache_->view({S * C, W}), v_rows = v_cache_->view({S * C, W});
    be_.copy_rows(k_rows, k.view({k.dim(0), W}), cache_rows_);
    be_.copy_rows(v_rows, v.view({v.dim(0), W}), cache_rows_);
    be_.attention(out, q, *k_cache_, *v_cache_, rows_);
  }
  const KvRows* kv_rows() override { return &kv_rows_; }
  void attention_cached(Tensor& out, const Tensor& q) override { be_.attention(out, q, *k_cache_, *v_cache_, rows_); }
  void attention_backward(Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                          const Tensor&, const Tensor&) override {
    OMNI_FAIL("attention_backward in an inference context");
  }

 private:
  Backend& be_;
  Arena& arena_;
  const LayerWeights* w_ = nullptr;
  Tensor* k_cache_ = nullptr;
  Tensor* v_cache_ = nullptr;
  Tensor positions_, cache_rows_;
  AttentionRows rows_;
  KvRows kv_rows_;
};

class DecoderLm : public CausalLM {
 public:
  DecoderLm(const DecoderSpec& spec, DecoderWeights w, Backend& be, LoadReport report)
      : spec_(spec), block_(spec), w_(std::move(w)), be_(be), report_(std::move(report)), arena_(be) {
    info_.architecture = spec.architecture;
    info_.vocab_size = spec.vocab_size;
    info_.hidden_size = spec.hidden_size;
    info_.num_layers = spec.num_hidden_layers;
    info_.max_positions = spec.max_position_embeddings;
    info_.eos_token_ids = spec.eos_token_ids;
    info_.bos_token_id = spec.bos_token_id;
  }

  const CausalLmInfo& info() const override { return info_; }
  const LoadReport& load_report() const override { return report_; }

  KvCache new_cache(int64_t capacity, int64_t slots) const override {
    OMNI_CHECK(capacity > 0 && slots > 0, "KV cache capacity and slots must be positive, got ", capacity, " and ",
               slots);
    OMNI_CHECK(capacity <= spec_.max_position_embeddings, "KV cache capacity ", capacity,
               " exceeds the model's context of ", spec_.max_position_embeddings, " positions");
    const int64_t row = spec_.num_key_value_heads * spec_.head_dim;
    const int64_t limit = std::numeric_limits<int32_t>::max();  // rows are indexed with I32
    OMNI_CHECK(slots <= limit / capacity && slots * capacity <= limit / row, "KV cache of ", slots, " × ", capacity,
               " positions is too large");
    KvCache c;
    c.capacity = capacity;
    c.length.assign(static_cast<size_t>(slots), 0);
    const DType dt = be_.activation_dtype();
    for (int64_t l = 0; l < spec_.num_hidden_layers; ++l) {
      c.k.push_back(be_.alloc({slots, capacity, spec_.num_key_value_heads, spec_.head_dim}, dt));
      c.v.push_back(be_.alloc({slots, capacity, spec_.num_key_value_heads, spec_.head_dim}, dt));
    }
    return c;
  }

  Tensor forward(const TokenBatch& batch, KvCache& cache, std::vector<Tensor>* hidden_states) override {
    const int64_t N = batch.size(), D = spec_.hidden_size;
    OMNI_CHECK(N > 0, "forward needs at least one token");
    OMNI_CHECK(static_cast<int64_t>(batch.seq.size()) == N && static_cast<int64_t>(batch.pos.size()) == N &&
                   static_cast<int64_t>(batch.output.size()) == N,
               "forward: the batch's tokens, seq, pos and output lists differ in length");
    OMNI_CHECK(static_cast<int64_t>(cache.k.size()) == spec_.num_hidden_layers, "forward: the KV cache has ",
               cache.k.size(), " layers, the model ", spec_.num_hidden_layers);
    // Each sequence's tokens must continue it in order, within the capacity.
    std::vector<int64_t> next = cache.length;
    std::vector<int32_t> cache_rows(static_cast<size_t>(N));
    int64_t outputs = 0;
    for (int64_t i = 0; i < N; ++i) {
      const auto u = static_cast<size_t>(i);
      const int32_t id = batch.tokens[u], s = batch.seq[u], p = batch.pos[u];
      OMNI_CHECK(id >= 0 && id < spec_.vocab_size, "token id ", id, " is outside the vocabulary (", spec_.vocab_size,
                 ")");
      OMNI_CHECK(s >= 0 && s < cache.slots(), "batch token ", i, " names sequence ", s, "; the cache has ",
                 cache.slots(), " slots");
      auto& n = next[static_cast<size_t>(s)];
      OMNI_CHECK(p == n, "batch token ", i, " of sequence ", s, " is at position ", p, ", expected ", n,
                 " (tokens must continue their sequence in order)");
      OMNI_CHECK(p < cache.capacity, "KV cache full: sequence ", s, " needs position ", p, ", capacity ",
                 cache.capacity);
      ++n;
      cache_rows[u] = static_cast<int32_t>(static_cast<int64_t>(s) * cache.capacity + p);
      outputs += batch.output[u] ? 1 : 0;
    }

    if (!hidden_states && outputs == N && N <= kMaxRecordedTokens && be_.supports_capture()) {
      Tensor logits = forward_recorded(batch, cache, cache_rows);
      cache.length = next;
      return logits;
    }

    const Tensor ids = be_.upload(Tensor::from_i32(batch.tokens, {N}));
    AttentionRows rows;
    rows.slot = be_.upload(Tensor::from_i32(batch.seq, {N}));
    rows.position = be_.upload(Tensor::from_i32(batch.pos, {N}));
    const Tensor x = body(ids, rows, be_.upload(Tensor::from_i32(cache_rows, {N})), cache, hidden_states);
    cache.length = next;

    const DType dt = be_.activation_dtype();
    Tensor last = x;
    if (outputs < N) {  // gather the rows whose logits are wanted
      last = arena_.get("output_rows", {outputs, D}, dt);
      std::vector<int32_t> src;
      for (int64_t i = 0; i < N; ++i)
        if (batch.output[static_cast<size_t>(i)]) src.push_back(static_cast<int32_t>(i));
      gather_rows(last, x, src);
    }
    Tensor logits = be_.alloc({outputs, spec_.vocab_size}, dt);
    if (outputs > 0) be_.linear(logits, last, *w_.lm_head);
    return be_.download(logits).clone();
  }

 private:
  // Embeddings, the blocks and the final norm over device inputs: the normed hidden states [N, D] (an arena
  // buffer). Queues work only (no host transfer) unless hidden_states is given.
  Tensor body(const Tensor& ids, const AttentionRows& rows, const Tensor& cache_rows, KvCache& cache,
              std::vector<Tensor>* hidden_states) {
    const int64_t N = ids.numel(), D = spec_.hidden_size;
    InferenceContext ctx(be_, arena_);
    ctx.set_batch(rows.position, rows, cache_rows);
    // The residual stream ping-pongs between two buffers: a block reads one and writes the other.
    const DType dt = be_.activation_dtype();
    Tensor x = arena_.get("residual.0", {N, D}, dt), y = arena_.get("residual.1", {N, D}, dt);
    be_.embedding(x, ids, w_.embed_tokens);
    if (hidden_states) {
      hidden_states->clear();
      hidden_states->push_back(be_.download(x).clone());
    }
    NamedTensors in, out;
    for (int64_t l = 0; l < spec_.num_hidden_layers; ++l) {
      ctx.set_layer(w_.layers[static_cast<size_t>(l)], cache.k[static_cast<size_t>(l)],
                    cache.v[static_cast<size_t>(l)]);
      in.set("hidden", x);
      out.set("hidden", y);
      block_.forward(ctx, in, out);
      std::swap(x, y);
      if (hidden_states) hidden_states->push_back(be_.download(x).clone());
    }
    be_.rms_norm(x, x, w_.final_norm, static_cast<float>(spec_.rms_norm_eps));
    return x;
  }

  // A small batch with every row's logits, through recorded work: the first step at a shape runs eagerly on
  // fixed input and logits buffers (warming the arena and the allocator's cache), the second records the same
  // ops and replays them, later ones replay. Attention and the cache writes read positions and rows from device
  // memory, so one recording serves every position. A capture that fails leaves the shape eager. The batch has
  // been checked; the caller advances cache.length.
  Tensor forward_recorded(const TokenBatch& batch, KvCache& cache, const std::vector<int32_t>& cache_rows) {
    const int64_t N = batch.size();
    std::vector<const void*> cache_mem;
    for (size_t l = 0; l < cache.k.size(); ++l) {
      cache_mem.push_back(cache.k[l].raw());
      cache_mem.push_back(cache.v[l].raw());
    }
    const bool same = step_ && step_->tokens == N && step_->capacity == cache.capacity &&
                      step_->slots == cache.slots() && step_->cache == cache_mem &&
                      step_->arena_generation == arena_.generation();
    if (!same) {
      step_.reset();  // its recording and buffers go first
      step_ = std::make_unique<StepGraph>();
      step_->tokens = N;
      step_->capacity = cache.capacity;
      step_->slots = cache.slots();
      step_->cache = cache_mem;
      step_->inputs = be_.alloc({4, N}, DType::I32);
      step_->logits = be_.alloc({N, spec_.vocab_size}, be_.activation_dtype());
      if (be_.activation_dtype() != DType::F32) step_->logits_f32 = be_.alloc({N, spec_.vocab_size}, DType::F32);
    }
    StepGraph& g = *step_;
    std::vector<int32_t> host;
    host.reserve(static_cast<size_t>(4 * N));
    host.insert(host.end(), batch.tokens.begin(), batch.tokens.end());
    host.insert(host.end(), batch.seq.begin(), batch.seq.end());
    host.insert(host.end(), batch.pos.begin(), batch.pos.end());
    host.insert(host.end(), cache_rows.begin(), cache_rows.end());
    be_.copy_from_cpu(g.inputs, Tensor::from_i32(host, {4, N}));

    const auto input = [&](int64_t r) { return g.inputs.slice_rows(r, r + 1).view({N}); };
    const Tensor ids = input(0), cache_rows_dev = input(3);
    AttentionRows rows;
    rows.slot = input(1);
    rows.position = input(2);
    const auto step = [&] {
      const Tensor x = body(ids, rows, cache_rows_dev, cache, nullptr);
      be_.linear(g.logits, x, *w_.lm_head);
      if (g.logits_f32.defined()) be_.copy(g.logits_f32, g.logits);  // the download then only copies
    };
    if (g.work) {
      be_.replay(*g.work);
    } else if (!g.warm || g.failed) {
      step();
      g.warm = true;
      g.arena_generation = arena_.generation();
    } else {
      std::unique_ptr<CapturedWork> work;
      try {
        be_.begin_capture();
        step();
        work = be_.end_capture();
      } catch (...) {
        be_.abort_capture();  // recorded, not run: the eager step below does the work
        work.reset();
      }
      // An arena buffer reallocated inside the capture would leave the recording pointing at a freed one.
      if (work && arena_.generation() != g.arena_generation) work.reset();
      if (work) {
        g.work = std::move(work);
        be_.replay(*g.work);
      } else {
        g.failed = true;
        step();
        g.arena_generation = arena_.generation();
      }
    }
    return be_.download(g.logits_f32.defined() ? g.logits_f32 : g.logits).clone();
  }

  // dst[j] = src[rows[j]], through copy (few rows: the last token of each sequence).
  void gather_rows(Tensor& dst, const Tensor& src, const std::vector<int32_t>& rows) {
    for (size_t j = 0; j < rows.size(); ++j) {
      Tensor d = dst.slice_rows(static_cast<int64_t>(j), static_cast<int64_t>(j) + 1);
      be_.copy(d, src.slice_rows(rows[j], rows[j] + 1));
    }
  }

  DecoderSpec spec_;
  DecoderBlock block_;
  DecoderWeights w_;
  Backend& be_;
  LoadReport report_;
  Arena arena_;
  CausalLmInfo info_;
  std::unique_ptr<StepGraph> step_;  // declared after the arena and weights: destroyed before them
};

}  // namespace

std::unique_ptr<CausalLM> load_decoder_lm(const std::string& dir, const DecoderSpec& spec, Backend& backend) {
  try {
    LoadReport report;
    DecoderWeights w = Loader(dir, spec, backend, report).load();
    return std::make_unique<DecoderLm>(spec, std::move(w), backend, std::move(report));
  } catch (const Error&) {
    rethrow_with_context("loading " + dir);
  }
}

}  // namespace omni
