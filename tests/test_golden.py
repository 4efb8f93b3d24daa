"""Golden outputs (open_clip style): seeded tiny models on a seeded input against stored values.

Regenerate with `python tests/data/make_goldens.py` only for an intended numerical change. The goldens ship
with the repository, so a missing file fails the test (a skip would let a lost golden pass forever).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


def _goldens():
    spec = importlib.util.spec_from_file_location("make_goldens", DATA / "make_goldens.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("variant", ["vit_tiny", "rn_tiny"])
def test_golden(variant):
    goldens = _goldens()
    path = goldens.path(variant)
    assert path.is_file(), f"{path} is missing: restore it from git (tests/data/make_goldens.py regenerates it)"
    stored = np.load(path)
    got = goldens.compute(variant)
    assert set(stored.files) == set(got)
    for key in stored.files:
        assert got[key].shape == stored[key].shape, key
        np.testing.assert_allclose(got[key], stored[key], rtol=0, atol=1e-5, err_msg=f"{variant} {key}")
