"""lsegrt: fast, checkpoint-faithful LSeg encoders.

    import lsegrt
    model = lsegrt.load("demo_e200.ckpt")            # or lsegrt.random_model("vit_l16"), lsegrt.load("random:vit_l16")
    labels = model.segment(image, "dog, grass, other", size=480)
    with lsegrt.Encoder.open("onnxruntime", checkpoint=model) as enc:
        feats = enc(model.preprocess(image, 480))    # (1,512,H/2,W/2) float32 unit vectors

The public names load on first access (PEP 562), so ``import lsegrt`` itself imports neither torch nor
the network libraries.
"""

__version__ = "0.1.0"

__all__ = ["Encoder", "LSegModel", "LsegError", "extract", "extract_ray", "load", "open_features", "random_model",
           "split_labels", "__version__"]
# name → module that defines it; everything loads on first use, so `import lsegrt` stays light (the
# pipeline brings DataLoader, threads and safetensors; the model brings timm and open_clip).
_HOME = {"LSegModel": "api", "load": "api", "random_model": "api", "split_labels": "api",
         "Encoder": "backends.base", "LsegError": "errors", "extract": "pipeline.run",
         "extract_ray": "pipeline.ray_extract", "open_features": "pipeline.read"}


def __getattr__(name: str):
    if name in _HOME:
        import importlib

        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
