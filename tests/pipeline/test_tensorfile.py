"""safetensors written from views of one buffer, read back by the safetensors library."""

import numpy as np
import torch
from safetensors import safe_open

from lsegrt.pipeline.tensorfile import StreamingTensorFile, write_tensors


def test_views_of_one_buffer_every_dtype(tmp_path):
    buf = torch.arange(256, dtype=torch.uint8)
    tensors = {"a/features": buf[0:64].view(torch.bfloat16).view(4, 8), "b/x": buf[64:96].view(torch.float16),
               "c": buf[96:100], "d": np.arange(6, dtype=np.float32).reshape(2, 3), "e": torch.zeros(0)}
    n = write_tensors(tmp_path / "t.safetensors", tensors, {"k": "v"})
    assert n == (tmp_path / "t.safetensors").stat().st_size
    with safe_open(str(tmp_path / "t.safetensors"), framework="pt") as f:
        assert f.metadata() == {"k": "v"} and sorted(f.keys()) == sorted(tensors)
        for k, v in tensors.items():
            assert torch.equal(f.get_tensor(k), torch.as_tensor(v))


def test_streaming_file_holds_nothing(tmp_path):
    s = StreamingTensorFile(tmp_path / "s.safetensors")
    arrays = {f"img{k}": np.full((1, 3, k + 1, 2), k, np.float32) for k in range(3)}
    for k, v in arrays.items():
        s.add(k, v)
    s.finish(tmp_path / "s.safetensors", {"m": "1"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.safetensors"]  # body file gone
    with safe_open(str(tmp_path / "s.safetensors"), framework="np") as f:
        assert all(np.array_equal(f.get_tensor(k), v) for k, v in arrays.items())
