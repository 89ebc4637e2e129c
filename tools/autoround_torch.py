"""A small PyTorch model of AutoRound (SignRound), written from docs/AUTOROUND.md (sections 1 and 2).

Used by the reference tools (block-gradient fixtures, the reference tuning loop); never at run time.
Everything is float32. Pieces:

  qdq_sym / qdq_asym      the section-2 quantize-dequantize of a weight with the straight-through estimator
  WrappedLinear           nn.Linear replacement: W frozen, V / alpha / beta trainable, alpha/beta clamped to
                          [0, 1] in place before every forward
  wrap_decoder_layer      replaces every nn.Linear of a transformers Qwen3DecoderLayer by a WrappedLinear
  masked_mse_mean         the loss of the shared contract (last token of every sample masked out)
  SplitMix64, IndexSampler  the seeded sample order shared with the C++ tuner

Gradient conventions (they are what the C++ backward must reproduce):
  * round:      round-half-to-even forward (torch.round), identity backward (STE).
  * fp16 cast of the scale: forward rounds to the nearest fp16 value, backward passes the gradient unchanged.
  * |s| < 1e-5: the scale is replaced by +-1e-5 (sign kept; s == +-0 becomes +1e-5) and gets zero gradient.
  * clamp of the integer code: zero gradient where the (rounded) value lies outside [lo, hi], identity inside
    (boundaries count as inside: a code that rounds exactly to 7 keeps its gradient).
  * sym branch choice: s = +m/maxq if M < m else -M/maxq, so the gradient reaches beta only in the first branch
    and alpha only in the second (ties go to the alpha branch).
  * asym: zp = round_ste(-wmin*beta / s) carries gradient to s and beta as well (STE through its rounding).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

SCALE_FLOOR = 1e-5
LINEAR_NAMES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


# ---------------------------------------------------------------------------------------------------------
# Straight-through building blocks
# ---------------------------------------------------------------------------------------------------------

class _RoundSTE(torch.autograd.Function):
    # A custom Function rather than the usual `x + (round(x) - x).detach()`: that expression is not exactly
    # round(x) in floating point (7.3 + (7 - 7.3) can give 7.0000005), which makes Ŵ differ from s*q by an ulp
    # and, worse, puts codes that land exactly on a clamp bound randomly inside or outside the clamp's
    # gradient mask. Here the forward value is the exact integer and the backward is the identity.
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


class _Fp16STE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.to(torch.float16).to(torch.float32)

    @staticmethod
    def backward(ctx, g):
        return g


def round_ste(x):
    """Round half to even in the forward pass (exact integers), identity gradient."""
    return _RoundSTE.apply(x)


def fp16_ste(x):
    """Round to the nearest fp16 value (kept in f32), identity gradient (not rounded to fp16)."""
    return _Fp16STE.apply(x)


def clamp_ste(r, lo, hi):
    """clamp(r, lo, hi) whose gradient is the identity where lo <= r <= hi (bounds included) and 0 outside.
    Written out because torch.clamp's backward with scalar bounds drops the gradient AT the bounds in recent
    torch (2.15: d/dx clamp(x, 0, 1) at x = 1 is 0), while AUTOROUND.md counts a code equal to a bound as
    inside the range."""
    inside = (r >= lo) & (r <= hi)
    return torch.where(inside, r, r.detach().clamp(lo, hi))


def floor_scale(s):
    """|s| < 1e-5 -> +-1e-5 with zero gradient there; elsewhere s unchanged (identity gradient)."""
    small = s.abs() < SCALE_FLOOR
    floor = torch.where(s < 0, torch.full_like(s, -SCALE_FLOOR), torch.full_like(s, SCALE_FLOOR))
    return torch.where(small, floor, s)


def group_minmax(weight, group_size):
    """wmin = min(min W, 0), wmax = max(max W, 0) per (output row, group): two [N, G] tensors."""
    n, k = weight.shape
    gs = k if group_size == -1 else group_size
    if k % gs != 0:
        raise ValueError(f"in_features {k} is not a multiple of group_size {gs}")
    g = weight.reshape(n, k // gs, gs)
    return g.amin(-1).clamp(max=0.0), g.amax(-1).clamp(min=0.0)


def _expand(per_group, k):
    """[N, G] -> [N, K] by repeating each group's value over its group_size inputs."""
    n, g = per_group.shape
    return per_group.repeat_interleave(k // g, dim=1)


# ---------------------------------------------------------------------------------------------------------
# Section-2 QDQ
# ---------------------------------------------------------------------------------------------------------

def sym_scale(wmin, wmax, alpha, beta, bits):
    """Full-range symmetric scale per group (may be negative), after the fp16 cast and the 1e-5 floor."""
    maxq = 2 ** (bits - 1)
    m = -wmin * beta
    big_m = wmax * alpha
    s = torch.where(big_m < m, m / maxq, -big_m / maxq)
    return floor_scale(fp16_ste(s))


def qdq_sym(weight, v, alpha, beta, wmin, wmax, bits):
    """Full-range symmetric QDQ: q = clamp(round(W/s + V), -maxq, maxq-1), W^ = s*q. Returns (W^, s, q)."""
    maxq = 2 ** (bits - 1)
    k = weight.shape[1]
    s = sym_scale(wmin, wmax, alpha, beta, bits)
    s_full = _expand(s, k)
    q = clamp_ste(round_ste(weight / s_full + v), -maxq, maxq - 1)
    return s_full * q, s, q


def asym_scale_zero(wmin, wmax, alpha, beta, bits):
    """Asymmetric scale (fp16, floored) and zero point round(-wmin*beta/s) (STE), both [N, G]."""
    maxq = 2 ** bits - 1
    lo = wmin * beta
    hi = wmax * alpha
    s = floor_scale(fp16_ste((hi - lo) / maxq))
    zp = round_ste(-lo / s)
    return s, zp


def qdq_asym(weight, v, alpha, beta, wmin, wmax, bits):
    """Asymmetric QDQ: q = clamp(round(W/s + V) + zp, 0, 2^b-1), W^ = s*(q - zp). Returns (W^, s, zp, q)."""
    maxq = 2 ** bits - 1
    k = weight.shape[1]
    s, zp = asym_scale_zero(wmin, wmax, alpha, beta, bits)
    s_full = _expand(s, k)
    zp_full = _expand(zp, k)
    q = clamp_ste(round_ste(weight / s_full + v) + zp_full, 0, maxq)
    return s_full * (q - zp_full), s, zp, q


# ---------------------------------------------------------------------------------------------------------
# Wrapped Linear
# ---------------------------------------------------------------------------------------------------------

class WrappedLinear(nn.Module):
    """A Linear whose weight is fake-quantized from trainable V (per weight) and alpha/beta (per group)."""

    def __init__(self, linear, bits=4, group_size=128, sym=True, enable_minmax_tuning=True):
        super().__init__()
        weight = linear.weight.detach().to(torch.float32).clone()
        n, k = weight.shape
        gs = k if group_size == -1 else group_size
        self.bits, self.group_size, self.sym = bits, gs, sym
        self.in_features, self.out_features = k, n
        self.register_buffer("weight", weight)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())
        wmin, wmax = group_minmax(weight, gs)
        self.register_buffer("wmin", wmin)
        self.register_buffer("wmax", wmax)
        self.v = nn.Parameter(torch.zeros(n, k))
        self.alpha = nn.Parameter(torch.ones(n, k // gs), requires_grad=enable_minmax_tuning)
        self.beta = nn.Parameter(torch.ones(n, k // gs), requires_grad=enable_minmax_tuning)

    def clamp_minmax_(self):
        with torch.no_grad():
            self.alpha.clamp_(0.0, 1.0)
            self.beta.clamp_(0.0, 1.0)

    def qdq_weight(self):
        if self.sym:
            return qdq_sym(self.weight, self.v, self.alpha, self.beta, self.wmin, self.wmax, self.bits)[0]
        return qdq_asym(self.weight, self.v, self.alpha, self.beta, self.wmin, self.wmax, self.bits)[0]

    def forward(self, x):
        self.clamp_minmax_()
        w_hat = self.qdq_weight()
        if self.keep_weight_grad and w_hat.requires_grad:
            w_hat.retain_grad()
            self.last_weight_qdq = w_hat
        return F.linear(x, w_hat, self.bias)

    keep_weight_grad = False  # set True to keep dL/dW^ (last_weight_qdq.grad) for explicit_grads()


def explicit_grads(wl, grad_w):
    """The section-2 gradients written out by hand from G = dL/dW^ (no autograd through the QDQ):
    returns (dV, dalpha, dbeta). Used to check the autograd graph against the formulas the C++ implements."""
    n, k = wl.weight.shape
    ng = k // wl.group_size
    e = lambda t: t.repeat_interleave(wl.group_size, dim=1)  # noqa: E731
    gsum = lambda t: t.reshape(n, ng, wl.group_size).sum(-1)  # noqa: E731
    w, v = wl.weight, wl.v.detach()
    a, b = wl.alpha.detach().clamp(0, 1), wl.beta.detach().clamp(0, 1)
    if wl.sym:
        maxq = 2 ** (wl.bits - 1)
        m, big_m = -wl.wmin * b, wl.wmax * a
        s0 = torch.where(big_m < m, m / maxq, -big_m / maxq).half().float()
        floored = s0.abs() < SCALE_FLOOR
        s = torch.where(floored, torch.where(s0 < 0, -SCALE_FLOOR, SCALE_FLOOR), s0)
        r = torch.round(w / e(s) + v)
        inside = ((r >= -maxq) & (r <= maxq - 1)).float()
        q = r.clamp(-maxq, maxq - 1)
        dv = grad_w * e(s) * inside
        ds = torch.where(floored, 0.0, gsum(grad_w * (q - inside * w / e(s))))
        da = torch.where(big_m < m, 0.0, ds * (-wl.wmax / maxq))
        db = torch.where(big_m < m, ds * (-wl.wmin / maxq), 0.0)
    else:
        maxq = 2 ** wl.bits - 1
        lo, hi = wl.wmin * b, wl.wmax * a
        s0 = ((hi - lo) / maxq).half().float()
        floored = s0.abs() < SCALE_FLOOR
        s = torch.where(floored, SCALE_FLOOR, s0)
        zp = torch.round(-lo / s)
        r = torch.round(w / e(s) + v)
        inside = ((r + e(zp) >= 0) & (r + e(zp) <= maxq)).float()
        q = (r + e(zp)).clamp(0, maxq)
        dv = grad_w * e(s) * inside
        dzp = gsum(grad_w * e(s) * (inside - 1))
        ds = gsum(grad_w * ((q - e(zp)) - inside * w / e(s))) + dzp * lo / s ** 2
        ds = torch.where(floored, 0.0, ds)
        dlo = dzp * (-1.0 / s)
        da = ds * wl.wmax / maxq
        db = ds * (-wl.wmin / maxq) + dlo * wl.wmin
    return dv, da, db


def wrap_decoder_layer(layer, bits=4, group_size=128, sym=True, enable_minmax_tuning=True):
    """Replace every nn.Linear of a Qwen3DecoderLayer in place; returns {relative name: WrappedLinear}."""
    wrapped = {}
    for name in LINEAR_NAMES:
        parent_name, attr = name.rsplit(".", 1)
        parent = layer.get_submodule(parent_name)
        lin = getattr(parent, attr)
        if not isinstance(lin, nn.Linear):
            raise TypeError(f"{name} is {type(lin).__name__}, expected nn.Linear")
        w = WrappedLinear(lin, bits, group_size, sym, enable_minmax_tuning)
        setattr(parent, attr, w)
        wrapped[name] = w
    for p in layer.parameters():
        # Everything the block owns (norm weights) stays frozen; only V/alpha/beta are trained.
        if not any(p is q for w in wrapped.values() for q in (w.v, w.alpha, w.beta)):
            p.requires_grad_(False)
    return wrapped


# ---------------------------------------------------------------------------------------------------------
# Loss, block inputs
# ---------------------------------------------------------------------------------------------------------

def masked_mse_mean(y_q, y_ref):
    """sum over b, t < T-1, d of (y_q - y_ref)^2 / (B*(T-1)*D): last token of every sample masked out."""
    d = (y_q[:, :-1, :] - y_ref[:, :-1, :])
    return (d * d).mean()


def causal_mask(batch, seq):
    """Additive eager-attention mask [B, 1, T, T]: 0 on and below the diagonal, f32 min above."""
    m = torch.full((seq, seq), torch.finfo(torch.float32).min).triu(1)
    return m[None, None].expand(batch, 1, seq, seq)


def block_kwargs(config, batch, seq):
    """position_embeddings (cos, sin) for positions 0..T-1 and the causal mask for a Qwen3DecoderLayer."""
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RotaryEmbedding
    rotary = Qwen3RotaryEmbedding(config)
    pos = torch.arange(seq)[None].expand(batch, seq)
    cos, sin = rotary(torch.zeros(1, dtype=torch.float32), pos)
    return {"position_embeddings": (cos.float(), sin.float()), "attention_mask": causal_mask(batch, seq),
            "position_ids": pos}


def run_block(layer, x, kwargs):
    out = layer(x, **kwargs)
    return out[0] if isinstance(out, tuple) else out


# ---------------------------------------------------------------------------------------------------------
# Sample order (shared contract with the C++ tuner)
# ---------------------------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


def fisher_yates(a, rng):
    """In-place shuffle from the end: for i = n-1..1: j = next() % (i+1); swap a[i], a[j]."""
    for i in range(len(a) - 1, 0, -1):
        j = rng.next() % (i + 1)
        a[i], a[j] = a[j], a[i]


class IndexSampler:
    """[0, n) shuffled once at construction; next_batch() hands out the next batch_size indices; when fewer
    remain, the current list is shuffled again in place (same generator) and reading restarts at 0."""

    def __init__(self, n, batch_size, seed):
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} > number of samples {n}")
        self.rng = SplitMix64(seed)
        self.order = list(range(n))
        fisher_yates(self.order, self.rng)
        self.batch_size = batch_size
        self.pos = 0

    def next_batch(self):
        if len(self.order) - self.pos < self.batch_size:
            fisher_yates(self.order, self.rng)
            self.pos = 0
        idx = self.order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx
