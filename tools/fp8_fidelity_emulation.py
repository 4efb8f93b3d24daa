"""FP8 (e4m3) block linears of ViT-L/16, emulated on the CPU: would they pass the fidelity gate?

    python tools/fp8_fidelity_emulation.py mlp 384     # fc1 + fc2 of every block
    python tools/fp8_fidelity_emulation.py all 384     # qkv, proj, fc1, fc2

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


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "mlp"
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 384
    names = {"mlp": ["mlp.fc1", "mlp.fc2"], "all": ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"]}[which]
    model = lsegrt.random_model("vit_l16")
    x = model.preprocess(data.chelsea(), size=(size, size))
    text = model.encode_text("person, animal, plant, sky, building, road, water, other")
    t = time.time()
    ref = model.encode_image(x)
    for block in model.net.pretrained.model.blocks:
        for name in names:
            parent, attr = name.split(".")
            setattr(getattr(block, parent), attr, FP8Linear(getattr(getattr(block, parent), attr)))
    out = model.encode_image(x)
    s = summarize([map_metrics(ref, out, label_map(ref, text), label_map(out, text))])
    print(which, size, f"{time.time() - t:.0f} s", {k: round(v, 6) for k, v in s.items()})


if __name__ == "__main__":
    main()
