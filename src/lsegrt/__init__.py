"""lsegrt: fast, checkpoint-faithful LSeg encoders.

    import lsegrt
    model = lsegrt.load("demo_e200.ckpt")            # or lsegrt.random_model("vit_l16")
    labels = model.segment(image, "dog, grass, other", size=480)
    with lsegrt.Encoder.open("onnxruntime", checkpoint=model) as enc:
        feats = enc(model.preprocess(image, 480))    # (1,512,240,H/2...) float32 unit vectors
"""

__version__ = "0.1.0"

from .api import LSegModel, load, random_model, split_labels  # noqa: E402
from .backends.base import Encoder  # noqa: E402
from .errors import LsegError  # noqa: E402

__all__ = ["Encoder", "LSegModel", "LsegError", "extract", "extract_ray", "load", "open_features", "random_model",
           "split_labels", "__version__"]

_LAZY = {"extract": "lsegrt.pipeline.run", "extract_ray": "lsegrt.pipeline.ray_extract",
         "open_features": "lsegrt.pipeline.read"}


def __getattr__(name: str):
    # The pipeline (DataLoader, threads, safetensors) loads on first use: `import lsegrt` stays light.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lsegrt' has no attribute {name!r}")
