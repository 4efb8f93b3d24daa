"""The Python API: :func:`load`, :func:`random_model` and :class:`LSegModel`.

One model-spec grammar everywhere (API and every CLI verb): a checkpoint path, or
``random:VARIANT[:seedK]`` for seeded random weights of a variant (``random:vit_l16`` = seed 0).

The network code (timm, open_clip) is imported on first use, so ``import lsegrt`` stays light.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .devices import check_device
from .errors import LsegError
from .model.config import LSegConfig, get_config
from .segmentation import EncodeFn, logits, multiscale_logits, multiscale_windows, resize_logits

if TYPE_CHECKING:
    from .model.net import LSegNet

DEFAULT_VARIANT = "vit_l16"
RANDOM_PREFIX = "random:"
_RANDOM_SPEC = re.compile(r"^random:([A-Za-z0-9_]+)(?::seed(\d+))?$")
TEXT_CACHE_SIZE = 64  # label lists whose text features a model keeps (least recently used dropped first)


def _device(device: str | torch.device) -> torch.device:
    return check_device(device)


def parse_random_spec(spec: Any) -> tuple[str, int] | None:
    """``"random:VARIANT[:seedK]"`` → ``(variant, seed)``; any other string → None (a file path).

    A string that starts with ``random:`` but is not of that form is an :class:`LsegError`.
    """
    text = str(spec)
    if not text.startswith(RANDOM_PREFIX):
        return None
    m = _RANDOM_SPEC.match(text)
    if not m:
        raise LsegError(f"bad model spec {text!r}: expected random:VARIANT or random:VARIANT:seedK, "
                        "e.g. random:vit_l16:seed1")
    variant = get_config(m.group(1)).name  # unknown variants: one line naming the known ones
    return variant, int(m.group(2) or 0)


def check_model_spec(spec: Any) -> None:
    """Fail fast, before loading anything: a malformed ``random:`` spec or a missing checkpoint file."""
    if isinstance(spec, LSegModel) or parse_random_spec(spec) is not None:
        return
    path = Path(spec)
    if not path.exists():
        raise LsegError(f"checkpoint not found: {spec}")
    if not path.is_file():
        raise LsegError(f"checkpoint is not a file: {spec}")


class LSegModel:
    """A loaded LSeg checkpoint: image encoder, text encoder, preprocessing and segmentation.

    Attributes: ``variant`` (e.g. "vit_l16"), ``mean``/``std`` (input normalization), ``net`` (the
    torch module, the checkpoint's whole tree), ``source`` (checkpoint path or "random:<variant>:seed<k>"),
    ``device``.

    The text tower is built when it is first needed (``net``, :meth:`encode_text`): image-only work
    (:meth:`encode_image`, :meth:`image_encoder`, every backend) never imports open_clip, whose package
    import pulls in Hugging Face transformers wherever that is installed.
    """

    def __init__(self, net: LSegNet, cfg: LSegConfig, source: str, device: torch.device, file: Path | None = None,
                 sha256: str | None = None, text_state: dict[str, torch.Tensor] | None = None):
        self._net = net
        # the validated `clip_pretrained.*` tensors (on the model's device) while the text tower is not built
        self._text_state = None if net.has_text_tower else text_state
        self.config = cfg
        self.source = source
        self.device = device
        self.file = file
        self._sha256 = sha256
        self._text_cache: OrderedDict[tuple[str, ...], torch.Tensor] = OrderedDict()

    @property
    def variant(self) -> str:
        return self.config.name

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.config.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.config.std

    @property
    def is_random(self) -> bool:
        return self.file is None

    @property
    def sha256(self) -> str:
        """Identity of the weights: :func:`lsegrt.model.checkpoint.weights_sha256` of the inference
        weights for a checkpoint (the same for a `.ckpt` and its converted `.safetensors`), a hash of
        the recipe for random weights. Engines are bound to it."""
        if self._sha256 is None:
            if self.file is not None:
                from .model.checkpoint import checkpoint_identity

                self._sha256 = checkpoint_identity(self.file)
            else:
                self._sha256 = hashlib.sha256(self.source.encode()).hexdigest()
        return self._sha256

    @property
    def name(self) -> str:
        return self.file.stem if self.file is not None else self.source.replace(":", "-")

    def __repr__(self) -> str:
        return f"LSegModel(variant={self.variant!r}, source={self.source!r}, device={str(self.device)!r})"

    def to(self, device: str | torch.device) -> "LSegModel":
        self.device = _device(device)
        self._net.to(self.device)
        if self._text_state is not None:
            self._text_state = {k: v.to(self.device) for k, v in self._text_state.items()}
        self._text_cache.clear()
        return self

    # -- images ---------------------------------------------------------------------------------
    def preprocess(self, image: Any, size: int | tuple[int, int] = 480) -> torch.Tensor:
        """PIL image or HxWx3 uint8 RGB → normalized (1,3,H,W) float32 on the model's device.

        ``size``: an int (long side, aspect kept, sides rounded to multiples of 32) or (H, W).
        """
        from .images import as_rgb_array
        from .sizes import target_size, to_model_input

        array = as_rgb_array(image)
        hw = target_size(array.shape[:2], size)
        return to_model_input(array, hw, self.mean, self.std).to(self.device)

    @torch.inference_mode()
    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) normalized float → (B,512,H/2,W/2) float32, unit L2 norm per pixel (fp32 norm)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise LsegError(f"expected a (B,3,H,W) image tensor, got shape {tuple(x.shape)}")
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise LsegError(f"image size {x.shape[-2]}x{x.shape[-1]}: H and W must be multiples of 32")
        return self._net(x.to(self.device, torch.float32))

    def image_encoder(self):
        """The image path alone (:class:`lsegrt.model.net.ImageEncoder`), sharing this model's weights."""
        return self._net.image_encoder()

    # -- text -----------------------------------------------------------------------------------
    @property
    def net(self) -> LSegNet:
        """The whole network (image encoder and text tower: the checkpoint's module tree)."""
        self.text_tower  # noqa: B018 (built on first use)
        return self._net

    @property
    def text_tower(self):
        """The CLIP text tower (`net.clip_pretrained`), built on first use."""
        if not self._net.has_text_tower:
            from .model.checkpoint import attach_text_tower

            if self._text_state is None:
                raise LsegError(f"{self.name}: built without its text tower's weights")
            with torch.inference_mode(False):  # ordinary parameters, even when first asked for under it
                attach_text_tower(self._net, self._text_state, self.device)
            self._text_state = None
        return self._net.clip_pretrained

    @torch.inference_mode()
    def encode_text(self, labels: list[str] | str) -> torch.Tensor:
        """Labels (raw strings, no prompt template) → (N,512) float32 unit vectors on the model's device.

        The last :data:`TEXT_CACHE_SIZE` label lists are cached (least recently used dropped first).
        """
        from .model.layers import l2_normalize
        from .model.text import encode_tokens, tokenize

        labels = split_labels(labels) if isinstance(labels, str) else list(labels)
        key = tuple(labels)
        if key in self._text_cache:
            self._text_cache.move_to_end(key)
            return self._text_cache[key]
        ids = tokenize(labels, self.config.text.context_length).to(self.device)
        self._text_cache[key] = l2_normalize(encode_tokens(self.text_tower, ids), dim=-1)
        while len(self._text_cache) > TEXT_CACHE_SIZE:
            self._text_cache.popitem(last=False)
        return self._text_cache[key]

    # -- segmentation ---------------------------------------------------------------------------
    @torch.inference_mode()
    def segment_logits(
        self, image: Any, labels: list[str] | str, size: int | tuple[int, int] = 480,
        encoder: EncodeFn | None = None, multiscale: bool = False, progress: bool = True,
    ) -> torch.Tensor:
        """(N,h0,w0) float32 logits at the original image size (bilinear, align_corners=True).

        ``multiscale``: the official evaluator (slow); ``progress`` reports its windows (see
        :mod:`lsegrt.progress`).
        """
        from .images import as_rgb_array

        array = as_rgb_array(image)
        text = self.encode_text(labels)
        encode = encoder or self.encode_image
        if multiscale:
            from .progress import Progress
            from .sizes import to_model_input

            full = to_model_input(array, array.shape[:2], self.mean, self.std).to(self.device)
            black = torch.tensor([-m / s for m, s in zip(self.mean, self.std)], device=self.device)
            with Progress("multiscale windows", total=multiscale_windows(*array.shape[:2]), unit="windows",
                          enabled=progress) as bar:
                out = multiscale_logits(encode, text, full, black, on_window=bar.advance)
        else:
            x = self.preprocess(array, size)
            out = logits(encode(x), text)
        return resize_logits(out, array.shape[:2])[0]

    def segment(
        self, image: Any, labels: list[str] | str, size: int | tuple[int, int] = 480,
        encoder: EncodeFn | None = None, multiscale: bool = False, progress: bool = True,
    ) -> np.ndarray:
        """Per-pixel label ids (h0,w0) int32 at the original image size.

        logits = 14.2857·⟨pixel, text⟩, ×2 bilinear (align_corners=True), resized to the image, argmax.
        ``encoder`` may be any :class:`lsegrt.Encoder` (default: this model's eager network).
        """
        out = self.segment_logits(image, labels, size, encoder=encoder, multiscale=multiscale, progress=progress)
        return out.argmax(0).to(torch.int32).cpu().numpy()


def split_labels(text: str) -> list[str]:
    """'dog, grass, other' → ['dog', 'grass', 'other'] (the demo's rule: split on commas, strip)."""
    labels = [part.strip() for part in text.split(",")]
    labels = [label for label in labels if label]
    if not labels:
        raise LsegError("empty label list: pass labels like 'dog, grass, other'")
    return labels


def text_part(sd: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The text tower's tensors of a validated state dict, kept on ``device`` (where the built tower would
    have held them: no more host or GPU memory than before) until text is first encoded."""
    from .model.checkpoint import TEXT

    return {k: v.to(device) for k, v in sd.items() if k.startswith(TEXT)}


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> LSegModel:
    """Load an official Lightning `.ckpt`, a plain state_dict `.pt/.pth`, or `.safetensors` (strictly);
    ``"random:VARIANT[:seedK]"`` gives :func:`random_model` instead.

    The variant is detected from the keys; mismatched keys raise :class:`LsegError` naming them.
    """
    from .hashcache import stamp
    from .model.checkpoint import build_net, checkpoint_identity, detect_variant, read_state_dict, validate

    device = _device(device)
    spec = parse_random_spec(path)
    if spec is not None:
        return random_model(spec[0], spec[1], device)
    path = Path(path)
    at = stamp(path) if path.is_file() else None
    sd = read_state_dict(path)
    cfg = detect_variant(sd, path.name)
    sd = validate(sd, cfg, source=path.name)
    identity = checkpoint_identity(path, sd, at)  # of the CPU tensors just read, before the device move
    net = build_net(cfg, sd, device, text=False)
    return LSegModel(net, cfg, str(path), device, file=path, sha256=identity, text_state=text_part(sd, device))


def random_model(variant: str = DEFAULT_VARIANT, seed: int = 0, device: str | torch.device = "cpu") -> LSegModel:
    """Same architecture as ``variant`` with seeded random weights (the embedded default)."""
    from .model.checkpoint import build_net, random_state_dict

    device = _device(device)
    cfg = get_config(variant)
    sd = random_state_dict(cfg, seed)
    net = build_net(cfg, sd, device, text=False)
    return LSegModel(net, cfg, f"random:{variant}:seed{seed}", device, text_state=text_part(sd, device))


def model_from_spec(spec: Any, device: str | torch.device = "cpu") -> LSegModel:
    """A checkpoint path, ``random:VARIANT[:seedK]`` or an :class:`LSegModel` → an LSegModel on ``device``."""
    if isinstance(spec, LSegModel):
        return spec if spec.device == _device(device) else spec.to(device)
    return load(spec, device)


def load_or_random(checkpoint: str | os.PathLike | None, variant: str = DEFAULT_VARIANT, device="cpu",
                   say=print) -> LSegModel:
    """The CLI's rule: a checkpoint (or model spec) if given, else the embedded random default, announced
    in one line."""
    if checkpoint:
        return load(checkpoint, device)
    say(f"no checkpoint given: using the embedded default, random {variant} weights (seed 0): "
        "outputs are not meaningful; pass --checkpoint demo_e200.ckpt for real ones")
    return random_model(variant, 0, device)
