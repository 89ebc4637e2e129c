#include "backends/cuda/cuda_backend.h"

#include <cmath>

#include <cstdlib>
#include <cstring>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_runtime_info.h"
#include "backends/cuda/kernels/kernels.h"
#include "backends/cuda/w4a16/w4a16_repack.h"

namespace omni::cuda {
namespace {

bool is_activation_dtype(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

cudaDataType_t cuda_type(DType d) {
  switch (d) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    default: OMNI_FAIL("cuBLAS: no matrix type for ", dtype_name(d));
  }
}

int as_int(int64_t v, const char* what) {
  OMNI_CHECK(v >= 0 && v <= INT32_MAX, "cuBLAS: ", what, " = ", v, " exceeds the 32-bit sizes cuBLAS takes");
  return static_cast<int>(v);
}

// A graph instantiated from one capture, with the device memory allocated inside it.
class CudaCapturedWork : public CapturedWork {
 public:
  ~CudaCapturedWork() override {
    // No throwing here. A replay may still be queued: let it finish before the graph and its blocks go.
    cudaSetDevice(device);
    if (stream) cudaStreamSynchronize(stream);
    if (exec) cudaGraphExecDestroy(exec);
  }
  int device = 0;
  cudaStream_t stream = nullptr;
  cudaGraphExec_t exec = nullptr;
  std::shared_ptr<CapturePool> pool;
};

const CudaPreparedLinear& prepared(const PreparedLinear& w) {
  const auto* p = dynamic_cast<const CudaPreparedLinear*>(&w);
  OMNI_CHECK(p != nullptr, "linear: weight was not prepared by a CUDA backend");
  return *p;
}

}  // namespace

CudaBackend::CudaBackend(int device, DType activation_dtype) : Backend(activation_dtype), device_(device) {
  const int n = device_count();
  OMNI_CHECK(n > 0, "CUDA backend: no CUDA device on this machine");
  OMNI_CHECK(device >= 0 && device < n, "CUDA backend: device cuda:", device, " does not exist (", n,
             " device(s) present)");
  OMNI_CUDA(cudaSetDevice(device_));
  OMNI_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  OMNI_CUBLAS(cublasCreate(&cublas_));
  OMNI_CUBLAS(cublasSetStream(cublas_, stream_));
  allocator_ = DeviceAllocator::create(device_);
  OMNI_CUDA(cudaMalloc(&fault_, sizeof(DeviceFault)));
  OMNI_CUDA(cudaMemset(fault_, 0, sizeof(DeviceFault)));
  OMNI_CUDA(cudaMallocHost(&fault_host_, sizeof(DeviceFault)));
  std::memset(static_cast<void*>(fault_host_), 0, sizeof(DeviceFault));
  OMNI_CUDA(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device_));
  attention_counters_ = alloc({kAttentionCounters}, DType::I32);
  OMNI_CUDA(cudaMemset(attention_counters_.raw(), 0, attention_counters_.nbytes()));
  // 32 MiB, cuBLAS's recommendation for Hopper; after cublasSetStream, which resets the workspace.
  // (OMNI_CUBLAS_WORKSPACE=default keeps cuBLAS's own pool, for comparisons.)
  const char* ws = std::getenv("OMNI_CUBLAS_WORKSPACE");
  if (!ws || std::strcmp(ws, "default") != 0) {
    constexpr int64_t kCublasWorkspace = int64_t{32} << 20;
    cublas_workspace_ = alloc({kCublasWorkspace}, DType::U8);
    OMNI_CUBLAS(cublasSetWorkspace(cublas_, cublas_workspace_.raw(), static_cast<size_t>(kCublasWorkspace)));
  }
  const char* graphs = std::getenv("OMNI_CUDA_GRAPHS");
  if (graphs && std::strcmp(graphs, "0") == 0) set_capture_enabled(false);
}

CudaBackend::~CudaBackend() {
  // No throwing here: a destructor may run while an error unwinds.
  abort_capture();
  cudaSetDevice(device_);
  if (stream_) cudaStreamSynchronize(stream_);
  if (cublas_) cublasDestroy(cublas_);
  if (fault_) cudaFree(fault_);
  if (fault_host_) cudaFreeHost(fault_host_);
  if (stage_) cudaFreeHost(stage_);
  if (stream_) cudaStreamDestroy(stream_);
}

std::string CudaBackend::name() const {
  const std::string dev = "cuda:" + std::to_string(device_);
  return activation_dtype() == DType::F32 ? dev : dev + "-" + std::string(dtype_name(activation_dtype()));
}

bool CudaBackend::supports(Op op, DType dtype) const {
  switch (op) {
    case Op::Linear:
    case Op::Embedding:
    case Op::RmsNorm:
    case Op::Rope:
    case Op::Attention:
    case Op::SiluMul:
    case Op::Add:
    case Op::Softmax:
    case Op::LayerNorm:
    case Op::GeluTanh:
    case Op::Modulate:
    // The diffusion-transformer, text-encoder and VAE ops (cuda_backend_diffusion.cpp).
    case Op::Silu:
    case Op::GatedAdd:
    case Op::RopeInterleaved:
    case Op::Conv2d:
    case Op::GroupNorm:
    case Op::QuickGelu:
    case Op::Mul:
    case Op::AttentionWithBias: return is_activation_dtype(dtype);
    case Op::UpsampleNearest2x:
    case Op::Transpose:  // bits copied
    case Op::Copy:
    case Op::CopyRows: return true;
    case Op::LayerNormBackward: return false;
    case Op::GeluTanhBackward: return false;
    case Op::ModulateBackward: return false;
    case Op::GatedAddBackward: return false;
    case Op::RopeInterleavedBackward: return false;
    case Op::AttentionFullBackward: return false;
    default: return dtype == DType::F32;  // training and AutoRound ops
  }
}

void CudaBackend::not_capturing(const char* what) const {
  OMNI_CHECK(!capturing_, what, " inside a capture (work is being recorded, not run: no host transfer or "
             "synchronisation until end_capture)");
}

void CudaBackend::begin_capture() {
  OMNI_CHECK(supports_capture(), "begin_capture: capture is disabled on ", name(), " (OMNI_CUDA_GRAPHS=0)");
  not_capturing("begin_capture");
  OMNI_CUDA(cudaSetDevice(device_));
  allocator_->begin_capture();
  const cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    allocator_->end_capture();
    check_cuda(e, "cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal)");
  }
  capturing_ = true;
}

std::unique_ptr<CapturedWork> CudaBackend::end_capture() {
  OMNI_CHECK(capturing_, "end_capture without begin_capture");
  capturing_ = false;
  auto work = std::make_unique<CudaCapturedWork>();
  work->device = device_;
  work->stream = stream_;
  work->pool = allocator_->end_capture();
  cudaGraph_t graph = nullptr;
  auto fail = [&](cudaError_t e, const char* call) -> std::unique_ptr<CapturedWork> {
    cudaGetLastError();  // not sticky: clear it so that the eager rerun starts clean
    if (graph) cudaGraphDestroy(graph);
    ++capture_failures_;
    last_capture_failure_ = std::string(call) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
    work->stream = nullptr;  // nothing queued to wait for
    return nullptr;
  };
  cudaError_t e = cudaStreamEndCapture(stream_, &graph);
  if (e != cudaSuccess) return fail(e, "cudaStreamEndCapture");
  e = cudaGraphInstantiate(&work->exec, graph, 0);
  if (e != cudaSuccess) return fail(e, "cudaGraphInstantiate");
  OMNI_CUDA(cudaGraphDestroy(graph));
  ++captures_;
  return work;
}

void CudaBackend::abort_capture() noexcept {
  if (!capturing_) return;
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(stream_, &graph);
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
  allocator_->end_capture();  // the blocks go back to the pool: nothing ran, nothing holds them
  ++capture_failures_;
  last_capture_failure_ = "aborted (an error inside the capture)";
}

void CudaBackend::replay(const CapturedWork& work) {
  not_capturing("replay");
  const auto* w = dynamic_cast<const CudaCapturedWork*>(&work);
  OMNI_CHECK(w != nullptr && w->exec != nullptr && w->stream == stream_,
             "replay: the work was not captured by this CUDA backend");
  OMNI_CUDA(cudaGraphLaunch(w->exec, stream_));
  ++replays_;
}

void CudaBackend::synchronize() {
  not_capturing("synchronize");
  // The fault record comes back on the stream, behind the work it may describe: one wait for both.
  OMNI_CUDA(cudaMemcpyAsync(fault_host_, fault_, sizeof(DeviceFault), cudaMemcpyDeviceToHost, stream_));
  OMNI_CUDA(cudaStreamSynchronize(stream_));
  check_faults();
}

void CudaBackend::check_faults() {
  if (fault_host_->code == 0) return;
  const DeviceFault f = *fault_host_;
  fault_host_->code = 0;
  OMNI_CUDA(cudaMemset(fault_, 0, sizeof(DeviceFault)));
  OMNI_FAIL(describe_fault(f));
}

Tensor CudaBackend::alloc(const Shape& shape, DType dtype) {
  const int64_t n = shape_numel(shape);
  OMNI_CHECK(n >= 0, "alloc: negative size ", shape_str(shape));
  std::shared_ptr<void> block = allocator_->allocate(static_cast<size_t>(n) * dtype_size(dtype));
  void* p = block.get();
  return Tensor::borrow(p, shape, dtype, std::move(block), device());
}

Tensor CudaBackend::upload_impl(const Tensor& host) {
  not_capturing("upload");
  Tensor t = alloc(host.shape(), host.dtype());
  copy_from_cpu_impl(t, host);
  return t;
}

void CudaBackend::copy_from_cpu_impl(Tensor& dst, const Tensor& src) {
  not_capturing("copy_from_cpu");
  // From pageable memory the call returns once the bytes are staged, so the host tensor may go away after it.
  OMNI_CUDA(cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), cudaMemcpyHostToDevice, stream_));
}

Tensor CudaBackend::download_impl(const Tensor& x) {
  not_capturing("download");
  Tensor src = x;
  if (x.dtype() == DType::BF16 || x.dtype() == DType::F16) {
    src = alloc(x.shape(), DType::F32);
    launch_convert(src.raw(), DType::F32, x.raw(), x.dtype(), x.numel(), stream_);
  }
  Tensor host = Tensor::empty(src.shape(), src.dtype());
  const size_t n = src.nbytes();
  constexpr size_t kMaxStage = size_t{4} << 20;
  if (n > kMaxStage) {  // large: straight into the pageable result
    OMNI_CUDA(cudaMemcpyAsync(host.raw(), src.raw(), n, cudaMemcpyDeviceToHost, stream_));
    synchronize();
    return host;
  }
  // Small (a step's logits): through pinned memory, a plain DMA and one wait.
  if (stage_bytes_ < n) {
    if (stage_) OMNI_CUDA(cudaFreeHost(stage_));
    stage_ = nullptr;
    stage_bytes_ = 0;
    OMNI_CUDA(cudaMallocHost(&stage_, n));
    stage_bytes_ = n;
  }
  OMNI_CUDA(cudaMemcpyAsync(stage_, src.raw(), n, cudaMemcpyDeviceToHost, stream_));
  synchronize();
  std::memcpy(host.raw(), stage_, n);
  return host;
}

std::shared_ptr<const PreparedLinear> CudaBackend::prepare_linear(const LinearWeight& w) {
  auto p = std::make_shared<CudaPreparedLinear>();
  const DType dt = activation_dtype();
  p->in_features = w.in_features();
  p->out_features = w.out_features();
  const int64_t N = p->out_features, K = p->in_features;
  if (w.is_quantized) {
    const GroupedIntWeight& q = w.quantized;
    // The W4A16 kernels take 16-bit activations and the shapes w4a16_kernel_supports accepts; anything else is
    // dequantized below (correct, 4x the memory, cuBLAS speed).
    std::string why = "f32 activations";
    if ((dt == DType::BF16 || dt == DType::F16) && w4a16_kernel_supports(q, &why)) {
      const W4A16Repacked r = repack_w4a16(q);
      const W4A16DeviceSizes sz = w4a16_device_sizes(r);
      void* ptr[4] = {nullptr, nullptr, nullptr, nullptr};
      const size_t bytes[4] = {sz.qweight, sz.scales, sz.zeros, sz.perm};
      for (int i = 0; i < 4; ++i) {
        if (bytes[i] == 0) continue;
        p->buffers.push_back(alloc({static_cast<int64_t>(bytes[i])}, DType::U8));
        ptr[i] = p->buffers.back().raw();
      }
      p->w4 = w4a16_upload(r, ptr[0], ptr[1], ptr[2], ptr[3], stream_);
      p->w4a16 = true;
      synchronize();  // the host vectors of r go away on return
      ++w4a16_linears_;
    } else {
      p->fallback_reason = why;
      ++dequantized_linears_;
    }
  }
  if (w.is_quantized && !p->w4a16) {
    const GroupedIntWeight& q = w.quantized;
    OMNI_CHECK(q.bits == 2 || q.bits == 3 || q.bits == 4 || q.bits == 8, "prepare_linear: ", q.bits,
               "-bit weights are not supported");
    OMNI_CHECK(q.qweight.dtype() == DType::I32 && q.qweight.numel() == K * q.bits / 32 * N && K * q.bits % 32 == 0,
               "prepare_linear: qweight expected I32 [", K * q.bits / 32, ", ", N, "], found ",
               dtype_name(q.qweight.dtype()), " ", shape_str(q.qweight.shape()));
    const int64_t G = q.num_groups();
    OMNI_CHECK(q.scales.dtype() == DType::F16 && q.scales.numel() == G * N, "prepare_linear: scales expected F16 [",
               G, ", ", N, "]");
    OMNI_CHECK(q.zeros.dtype() == DType::U8 && q.zeros.numel() == G * N, "prepare_linear: zeros expected U8 [", G,
               ", ", N, "]");
    Tensor g_idx;
    if (q.g_idx.defined()) {
      OMNI_CHECK(q.g_idx.dtype() == DType::I32 && q.g_idx.numel() == K, "prepare_linear: g_idx expected I32 [", K,
                 "]");
      const int32_t* gi = q.g_idx.data<int32_t>();
      for (int64_t k = 0; k < K; ++k)
        OMNI_CHECK(gi[k] >= 0 && gi[k] < G, "prepare_linear: g_idx[", k, "] = ", gi[k], " is outside the ", G,
                   " groups");
      g_idx = upload(q.g_idx);
    }
    const Tensor qw = upload(q.qweight), sc = upload(q.scales), zp = upload(q.zeros);
    p->dense = alloc({N, K}, dt);
    launch_dequantize_gptq(p->dense.raw(), dt, qw.data<int32_t>(), sc.data<uint16_t>(), zp.data<uint8_t>(),
                           g_idx.defined() ? g_idx.data<int32_t>() : nullptr, q.bits, K, N, q.group_size, stream_);
    synchronize();  // the packed copies are freed on return
  } else if (!w.is_quantized) {
    OMNI_CHECK(w.dense.defined() && w.dense.device().is_cpu(), "prepare_linear: dense weight must be a CPU tensor");
    OMNI_CHECK(w.dense.ndim() == 2 && N > 0 && K > 0, "prepare_linear: dense weight expected 2 non-empty dims [N, K], found ",
               shape_str(w.dense.shape()));
    OMNI_CHECK(is_activation_dtype(w.dense.dtype()), "prepare_linear: dense weight expected F32, BF16 or F16, found ",
               dtype_name(w.dense.dtype()));
    const Tensor staged = upload(w.dense);
    if (staged.dtype() == dt) {
      p->dense = staged;
    } else {
      p->dense = alloc({N, K}, dt);
      launch_convert(p->dense.raw(), dt, staged.raw(), staged.dtype(), N * K, stream_);
      synchronize();
    }
  }
  if (w.bias.defined()) {
    OMNI_CHECK(w.bias.device().is_cpu() && w.bias.numel() == N && is_activation_dtype(w.bias.dtype()),
               "prepare_linear: bias expected F32, BF16 or F16 [", N, "], found ", dtype_name(w.bias.dtype()), " ",
               shape_str(w.bias.shape()));
    p->bias = upload(w.bias.to(DType::F32));
    p->has_bias = true;
  }
  if (p->w4a16) {
    for (const Tensor& b : p->buffers) p->weight_bytes += static_cast<int64_t>(b.nbytes());
  } else {
    p->weight_bytes = static_cast<int64_t>(p->dense.nbytes());
  }
  return p;
}

void CudaBackend::gemm_xwt(void* y, const void* x, const void* w, int64_t M, int64_t N, int64_t K, DType dt,
                           float beta) {
  if (M == 0) return;
  // Row-major y[M, N] = x[M, K] · w[N, K]ᵀ is column-major yᵀ[N, M] = w · xᵀ with w read transposed.
  const float alpha = 1.f;
  const cudaDataType_t t = cuda_type(dt);
  OMNI_CUBLAS(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, as_int(N, "N"), as_int(M, "M"), as_int(K, "K"), &alpha,
                           w, t, as_int(K, "K"), x, t, as_int(K, "K"), &beta, y, t, as_int(N, "N"),
                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::linear_impl(Tensor& y, const Tensor& x, const PreparedLinear& w) {
  const CudaPreparedLinear& p = prepared(w);
  const int64_t K = p.in_features, N = p.out_features, M = x.numel() / K;
  if (p.w4a16) {
    OMNI_CHECK(x.dtype() == DType::BF16 || x.dtype() == DType::F16, "linear: a W4A16 weight takes BF16 or F16 x, found ",
               dtype_name(x.dtype()));
    const size_t ws = w4a16_workspace_bytes(M, p.w4);
    Tensor workspace;
    if (ws > 0) workspace = alloc({static_cast<int64_t>(ws)}, DType::U8);
    w4a16_gemm(p.w4, x.raw(), y.raw(), M, x.dtype() == DType::BF16 ? ActDType::BF16 : ActDType::F16,
               p.has_bias ? p.bias.data<float>() : nullptr, ws > 0 ? workspace.raw() : nullptr, ws, stream_);
    return;
  }
  OMNI_CHECK(x.dtype() == p.dense.dtype(), "linear: x is ", dtype_name(x.dtype()), " but the weight was prepared as ",
             dtype_name(p.dense.dtype()));
  gemm_xwt(y.raw(), x.raw(), p.dense.raw(), M, N, K, x.dtype(), 0.f);
  if (p.has_bias) launch_add_bias(y.raw(), p.bias.data<float>(), M, N, y.dtype(), stream_);
}

void CudaBackend::linear_dense_impl(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) {
  const int64_t K = w.dim(1), N = w.dim(0), M = x.numel() / K;
  gemm_xwt(y.raw(), x.raw(), w.raw(), M, N, K, DType::F32, 0.f);
  if (bias) launch_add_bias(y.raw(), bias->data<float>(), M, N, DType::F32, stream_);
}

void CudaBackend::embedding_impl(Tensor& y, const Tensor& ids, const Tensor& table) {
  launch_embedding(y.raw(), y.dtype(), ids.data<int32_t>(), ids.numel(), table.raw(), table.dtype(), table.dim(0),
                   table.dim(1), fault_, stream_);
}

void CudaBackend::rms_norm_impl(Tensor& y, const Tensor& x, const Tensor& weight, float eps, Tensor* rstd) {
  const int64_t D = x.dim(-1);
  launch_rms_norm(y.raw(), x.raw(), x.dtype(), weight.raw(), weight.dtype(), x.numel() / D, D, eps,
                  rstd ? rstd->data<float>() : nullptr, stream_);
}

void CudaBackend::rope_impl(Tensor& x, const Tensor& positions, const RopeParams& params, bool inverse) {
  const int64_t hd = x.dim(-1), H = x.dim(-2);
  launch_rope(x.raw(), x.dtype(), positions.data<int32_t>(), x.numel() / (H * hd), H, hd, params.theta, inverse,
              fault_, stream_);
}

void CudaBackend::attention_impl(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                                 const AttentionRows& rows, Tensor* lse) {
  const int64_t hd = q.dim(-1), Hq = q.dim(-2);
  const AttentionShape sh{q.numel() / (Hq * hd), Hq, k.dim(2), hd, k.dim(0), k.dim(1),
                          rows.mask == AttentionMask::Causal};
  // Long runs of query rows in one sequence, known from host facts alone (the rows stay on the device): whole
  // sequences, or a single-slot cache with a prefill's worth of rows (every valid row is then in slot 0). Batches
  // mixing many slots keep the per-row kernels: the flash kernel's cost grows with the slots a tile of rows spans.
  constexpr int64_t kFlashMinRows = 64;
  if (!lse && flash_attention_supported(q.dtype(), hd) &&
      (rows.whole_sequences || (sh.S == 1 && sh.N >= kFlashMinRows))) {
    launch_flash_attention(out.raw(), q.raw(), k.raw(), v.raw(), q.dtype(), rows.slot.data<int32_t>(),
                           rows.position.data<int32_t>(), sh, fault_, stream_);
    return;
  }
  // Heads wider than the per-row kernels take (a VAE mid-block's single head of 512): whole sequences with every key
  // visible are the bias-free case of attention_with_bias's warp-per-row kernel ([S, C, H, hd] rows in order).
  constexpr int64_t kPerRowMaxHd = 256;
  if (!lse && hd > kPerRowMaxHd && rows.whole_sequences && rows.mask == AttentionMask::Full && Hq == sh.Hkv) {
    launch_attention_with_bias(out.raw(), q.raw(), k.raw(), v.raw(), nullptr, sh.S, sh.C, sh.C, Hq, hd, false,
                               1.0f / std::sqrt(static_cast<float>(hd)), q.dtype(), stream_);
    return;
  }
  const AttentionSplitPlan plan = plan_attention_split(sh, sm_count_);
  if (lse || plan.units >= 2 * static_cast<int64_t>(sm_count_)) {
    // Training (lse saved), and batches whose (row, head) pairs alone fill the chip: a warp per pair.
    launch_attention(out.raw(), q.raw(), k.raw(), v.raw(), q.dtype(), rows.slot.data<int32_t>(),
                     rows.position.data<int32_t>(), sh, lse ? lse->data<float>() : nullptr, fault_, stream_);
    return;
  }
  // Few rows (decode): each block reads a kv head's keys once for its query heads, the keys split over blocks.
  const int64_t floats = attention_split_scratch_floats(sh, plan);
  Tensor scratch;
  if (floats > 0) scratch = alloc({floats}, DType::F32);
  launch_attention_split(out.raw(), q.raw(), k.raw(), v.raw(), q.dtype(), rows.slot.data<int32_t>(),
                         rows.position.data<int32_t>(), sh, plan, floats > 0 ? scratch.data<float>() : nullptr,
                         attention_counters_.data<int32_t>(), fault_, stream_);
}

void CudaBackend::silu_mul_impl(Tensor& y, const Tensor& gate, const Tensor& up) {
  launch_silu_mul(y.raw(), gate.raw(), up.raw(), y.numel(), y.dtype(), stream_);
}

void CudaBackend::add_impl(Tensor& y, const Tensor& a, const Tensor& b) {
  launch_add(y.raw(), a.raw(), b.raw(), y.numel(), y.dtype(), stream_);
}

void CudaBackend::copy_impl(Tensor& dst, const Tensor& src) {
  if (dst.raw() == src.raw()) return;
  OMNI_CUDA(cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::convert_impl(Tensor& dst, const Tensor& src) {
  launch_convert(dst.raw(), dst.dtype(), src.raw(), src.dtype(), src.numel(), stream_);
}

void CudaBackend::add_rms_norm_impl(Tensor& sum, Tensor& y, const Tensor& a, const Tensor& b, const Tensor& weight,
                                    float eps) {
  const int64_t D = a.dim(-1);
  launch_add_rms_norm(sum.raw(), y.raw(), a.raw(), b.raw(), a.dtype(), weight.raw(), weight.dtype(), a.numel() / D,
                      D, eps, stream_);
}

void CudaBackend::rms_norm_rope_impl(Tensor& y, const Tensor& x, const Tensor& weight, float eps,
                                     const Tensor& positions, const RopeParams& params, const Tensor* rows) {
  const int64_t hd = x.dim(-1), H = x.dim(-2), N = x.numel() / (H * hd);
  launch_rms_norm_rope(y.raw(), x.raw(), x.dtype(), weight.raw(), weight.dtype(), positions.data<int32_t>(),
                       rows ? rows->data<int32_t>() : nullptr, y.numel() / (H * hd), N, H, hd, eps, params.theta,
                       fault_, stream_);
}

void CudaBackend::copy_rows_impl(Tensor& dst, const Tensor& src, const Tensor& index) {
  const int64_t W = src.dim(-1);
  launch_copy_rows(dst.raw(), src.raw(), index.data<int32_t>(), src.numel() / W, dst.numel() / W,
                   W * static_cast<int64_t>(dtype_size(src.dtype())), fault_, stream_);
}

void CudaBackend::softmax_impl(Tensor& x) {
  const int64_t D = x.dim(-1);
  launch_softmax(x.raw(), x.dtype(), x.numel() / D, D, stream_);
}

void CudaBackend::layer_norm_impl(Tensor& y, const Tensor& x, float eps, const Tensor* weight, const Tensor* bias) {
  const int64_t D = x.dim(-1);
  launch_layer_norm(y.raw(), x.raw(), x.dtype(), weight ? weight->raw() : nullptr, bias ? bias->raw() : nullptr,
                    weight ? weight->dtype() : DType::F32, x.numel() / D, D, eps, stream_);
}

void CudaBackend::gelu_tanh_impl(Tensor& y, const Tensor& x) {
  launch_gelu_tanh(y.raw(), x.raw(), y.numel(), y.dtype(), stream_);
}

void CudaBackend::modulate_impl(Tensor& y, const Tensor& x, const Tensor& scale, const Tensor& shift) {
  launch_modulate(y.raw(), x.raw(), scale.raw(), shift.raw(), x.dim(0), x.dim(1), x.dim(2), y.dtype(), stream_);
}

void CudaBackend::linear_backward_impl(Tensor* dx, Tensor* dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                                       bool accumulate_dx, bool accumulate_dw) {
  const int64_t K = w.dim(1), N = w.dim(0), M = x.numel() / K;
  if (M == 0) return;
  const float one = 1.f;
  if (dx) {  // column-major dxᵀ[K, M] = w[K, N] (column-major view of row-major [N, K]) · dyᵀ[N, M]
    const float beta = accumulate_dx ? 1.f : 0.f;
    OMNI_CUBLAS(cublasGemmEx(cublas_, CUBLAS_OP_N, CUBLAS_OP_N, as_int(K, "K"), as_int(M, "M"), as_int(N, "N"), &one,
                             w.raw(), CUDA_R_32F, as_int(K, "K"), dy.raw(), CUDA_R_32F, as_int(N, "N"), &beta,
                             dx->raw(), CUDA_R_32F, as_int(K, "K"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  if (dw) {  // column-major dwᵀ[K, N] = xᵀ[K, M] · dy[M, N]
    const float beta = accumulate_dw ? 1.f : 0.f;
    OMNI_CUBLAS(cublasGemmEx(cublas_, CUBLAS_OP_N, CUBLAS_OP_T, as_int(K, "K"), as_int(N, "N"), as_int(M, "M"), &one,
                             x.raw(), CUDA_R_32F, as_int(K, "K"), dy.raw(), CUDA_R_32F, as_int(N, "N"), &beta,
                             dw->raw(), CUDA_R_32F, as_int(K, "K"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

void CudaBackend::rms_norm_backward_impl(Tensor& dx, Tensor* dweight, const Tensor& dy, const Tensor& x,
                                         const Tensor& weight, const Tensor& rstd, bool accumulate_dx) {
  const int64_t D = x.dim(-1);
  launch_rms_norm_backward(dx.data<float>(), dweight ? dweight->data<float>() : nullptr, dy.data<float>(),
                           x.data<float>(), weight.data<float>(), rstd.data<float>(), x.numel() / D, D, accumulate_dx,
                           stream_);
}

void CudaBackend::attention_backward_impl(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                          const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                          const AttentionRows&) {
  const int64_t hd = q.dim(-1), Hq = q.dim(-2);
  const AttentionShape sh{q.numel() / (Hq * hd), Hq, k.dim(2), hd, k.dim(0), k.dim(1), /*causal=*/true};
  Tensor delta = alloc({sh.N, Hq}, DType::F32);
  launch_attention_backward(dq.data<float>(), dk.data<float>(), dv.data<float>(), dout.data<float>(), q.data<float>(),
                            k.data<float>(), v.data<float>(), out.data<float>(), lse.data<float>(),
                            delta.data<float>(), sh, stream_);
}

void CudaBackend::silu_mul_backward_impl(Tensor& dgate, Tensor& dup, const Tensor& dy, const Tensor& gate,
                                         const Tensor& up) {
  launch_silu_mul_backward(dgate.data<float>(), dup.data<float>(), dy.data<float>(), gate.data<float>(),
                           up.data<float>(), gate.numel(), stream_);
}

double CudaBackend::masked_mse_loss_impl(const Tensor& y, const Tensor& ref, const Tensor& mask, Tensor* dy,
                                         double dloss) {
  const int64_t D = y.dim(-1), rows = y.numel() / D;
  Tensor acc = alloc({2}, DType::F64);
  OMNI_CUDA(cudaMemsetAsync(acc.raw(), 0, 2 * sizeof(double), stream_));
  launch_masked_sq_error(acc.data<double>(), y.data<float>(), ref.data<float>(), mask.data<uint8_t>(), rows, D,
                         stream_);
  double host[2];
  OMNI_CUDA(cudaMemcpyAsync(host, acc.raw(), sizeof host, cudaMemcpyDeviceToHost, stream_));
  synchronize();
  const double count = host[1];
  OMNI_CHECK(count > 0, "masked_mse_loss: every one of the ", rows, " rows is masked out");
  if (dy)
    launch_masked_mse_grad(dy->data<float>(), y.data<float>(), ref.data<float>(), mask.data<uint8_t>(), rows, D,
                           static_cast<float>(2.0 * dloss / (count * static_cast<double>(D))), stream_);
  return host[0] / (count * static_cast<double>(D));
}

void CudaBackend::fake_quant_impl(Tensor& w_hat, const Tensor& w, const Tensor& v, const Tensor& alpha,
                                  const Tensor& beta, const QuantScheme& scheme) {
  launch_fake_quant(w_hat.data<float>(), w.data<float>(), v.data<float>(), alpha.data<float>(), beta.data<float>(),
                    w.dim(0), w.dim(1), scheme, stream_);
}

void CudaBackend::fake_quant_backward_impl(Tensor& grad_v, Tensor& grad_alpha, Tensor& grad_beta,
                                           const Tensor& grad_w_hat, const Tensor& w, const Tensor& v,
                                           const Tensor& alpha, const Tensor& beta, const QuantScheme& scheme) {
  launch_fake_quant_backward(grad_v.data<float>(), grad_alpha.data<float>(), grad_beta.data<float>(),
                             grad_w_hat.data<float>(), w.data<float>(), v.data<float>(), alpha.data<float>(),
                             beta.data<float>(), w.dim(0), w.dim(1), scheme, stream_);
}

void CudaBackend::clamp_impl(Tensor& x, float lo, float hi) { launch_clamp(x.data<float>(), lo, hi, x.numel(), stream_); }

void CudaBackend::sign_step_impl(Tensor& p, const Tensor& g, float lr) {
  launch_sign_step(p.data<float>(), g.data<float>(), lr, p.numel(), stream_);
}

void CudaBackend::fill_impl(Tensor& x, float value) { launch_fill(x.data<float>(), value, x.numel(), stream_); }

}  // namespace omni::cuda
