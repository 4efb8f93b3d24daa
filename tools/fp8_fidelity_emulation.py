"""FP8 (e4m3) in ViT-L/16, emulated on the CPU: would it pass the fidelity gate?

    python tools/fp8_fidelity_emulation.py mlp 384     # fc1 + fc2 of every block
    python tools/fp8_fidelity_emulation.py all 384     # qkv, proj, fc1, fc2
    python tools/fp8_fidelity_emulation.py attn 1024   # the attention: q, k, v and softmax probabilities
    python tools/fp8_fidelity_emulation.py attn-e4m3-out 384   # ... and its output in e4m3 too
    python tools/fp8_fidelity_emulation.py attn+qkv 384        # ... and the qkv projection (as mlp/all)

attn emulates cuDNN's fp8 attention as the ``fp8_attention`` option (branch exp/fp8) feeds it: q, k and v
cast to e4m3 with one scale each, from a bound computed from the weights (:func:`qkv_bounds`, not a measured
maximum); q·kᵀ in fp32; the unnormalized probabilities exp(s − max) ∈ (0, 1] scaled by 448 and rounded to
e4m3 before their product with v; the row sums in fp32.

Weights get one scale per output channel, activations one per row (token), computed on the fly — the
most accurate scaling `torch._scaled_mm` offers short of block-wise — and the products accumulate in
fp32; everything else stays fp32. The result is compared with fp32 eager on the bundled chelsea photo
(mean per-pixel cosine, label agreement over 8 labels), as `lsegrt compare` does. Random weights
(seed 0). Slow on a CPU (two ViT-L/16 forwards, about a minute).
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from skimage import data  # noqa: E402

import lsegrt  # noqa: E402
from lsegrt.compare import label_map, map_metrics, summarize  # noqa: E402

E4M3 = 448.0  # largest finite float8_e4m3fn


def quantize(t: torch.Tensor, dim: int) -> torch.Tensor:
    scale = t.abs().amax(dim=dim, keepdim=True).clamp_min(1e-12) / E4M3
    return (t / scale).to(torch.float8_e4m3fn).float() * scale


class FP8Linear(torch.nn.Module):
    def __init__(self, lin: torch.nn.Linear):
        super().__init__()
        self.w = quantize(lin.weight.detach().float(), 1)
        self.b = lin.bias

    def forward(self, x):
        return torch.nn.functional.linear(quantize(x.float(), -1), self.w, self.b)


class FP8Attention(torch.nn.Module):
    """The block's attention with e4m3 q, k, v and probabilities (see the module docstring)."""

    def __init__(self, attn, norm, e4m3_output: bool = False):
        super().__init__()
        self.e4m3_output = e4m3_output
        self.attn, self.descale = attn, [b / E4M3 for b in qkv_bounds(norm, attn.qkv)]

    def forward(self, x, attn_mask=None, is_causal=False):  # as timm's Block calls it (neither set here)
        a = self.attn
        b, n, c = x.shape
        qkv = a.qkv(x).reshape(b, n, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = (e4m3(t, s) for t, s in zip(qkv.unbind(0), self.descale))
        s = (q @ k.transpose(-2, -1)) * a.scale
        p = torch.exp(s - s.amax(-1, keepdim=True))
        o = (e4m3(p, 1 / E4M3) @ v) / p.sum(-1, keepdim=True)
        if self.e4m3_output:  # |o| ≤ max |v| (a convex combination): v's scale bounds it
            o = e4m3(o, self.descale[2])
        return a.proj(o.transpose(1, 2).reshape(b, n, c))


def qkv_bounds(norm, qkv) -> list[float]:
    """The largest magnitude q, k and v can take after ``qkv(norm(x))`` for any x: each LayerNorm output is at
    most |γⱼ|·√(C−1) + |βⱼ| (a standardized value is at most √(C−1)), so each projected channel at most
    Σⱼ |Wᵢⱼ|·(|γⱼ|·√(C−1) + |βⱼ|) + |bᵢ|. A scale from it never saturates and needs no pass over the data;
    it is about 200× the largest value seen on a photo, which e4m3, a floating-point format, barely feels."""
    c = norm.normalized_shape[-1]
    ln = norm.weight.detach().double().abs() * (c - 1) ** 0.5 + norm.bias.detach().double().abs()
    bound = qkv.weight.detach().double().abs() @ ln + qkv.bias.detach().double().abs()
    return [float(b) for b in bound.reshape(3, -1).amax(dim=1)]


def e4m3(t: torch.Tensor, scale: float) -> torch.Tensor:
    """``t`` rounded to e4m3 in units of ``scale`` (saturating), back in fp32."""
    return (t / scale).clamp(-E4M3, E4M3).to(torch.float8_e4m3fn).float() * scale


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "mlp"
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 384
    names = {"mlp": ["mlp.fc1", "mlp.fc2"], "all": ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"], "attn": [], "attn-e4m3-out": [], "attn+qkv": ["attn.qkv"]}[which]
    model = lsegrt.random_model("vit_l16")
    x = model.preprocess(data.chelsea(), size=(size, size))
    text = model.encode_text("person, animal, plant, sky, building, road, water, other")
    t = time.time()
    ref = model.encode_image(x)
    for block in model.net.pretrained.model.blocks:
        if which.startswith("attn"):
            block.attn = FP8Attention(block.attn, block.norm1, e4m3_output=which == "attn-e4m3-out")
        for name in names:
            parent, attr = name.split(".")
            owner = getattr(block, parent)
            owner = getattr(owner, "attn", owner)  # inside FP8Attention
            setattr(owner, attr, FP8Linear(getattr(owner, attr)))
    out = model.encode_image(x)
    s = summarize([map_metrics(ref, out, label_map(ref, text), label_map(out, text))])
    print(which, size, f"{time.time() - t:.0f} s", {k: round(v, 6) for k, v in s.items()})


if __name__ == "__main__":
    main()
