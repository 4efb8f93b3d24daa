"""AOTInductor packages: batch-1 builds, and packages bound to their bytes (two tiny rn_tiny builds, CPU)."""

from __future__ import annotations

import shutil
import types

import pytest
import torch

import lsegrt
from lsegrt.errors import LsegError
from lsegrt.sidecar import read_sidecar


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """seed 0 through `lsegrt build --backend aoti --max-batch 1`, seed 1 through the API (same limits)."""
    from lsegrt.backends.aoti import build_aoti
    from lsegrt.cli import main

    root = tmp_path_factory.mktemp("aoti")
    code = main(["build", "--backend", "aoti", "--variant", "rn_tiny", "--device", "cpu", "--precision", "fp32",
                 "--max-batch", "1", "--max-side", "64", "--out", str(root / "seed0.pt2")])
    assert code == 0
    build_aoti(lsegrt.random_model("rn_tiny", 1), root / "seed1.pt2", max_batch=1, max_side=64)
    return types.SimpleNamespace(root=root, seed0=root / "seed0.pt2", seed1=root / "seed1.pt2")


def test_batch_1_package_builds_and_runs(packages, tiny_rn):
    """torch.export cannot make a batch dimension dynamic over 1..1: batch 1 is built static."""
    assert read_sidecar(packages.seed0)["request"]["profile"] == {"min": [1, 64, 64], "max": [1, 64, 64]}
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with lsegrt.Encoder.open("aoti", engine=packages.seed0, checkpoint=tiny_rn) as enc:
        assert float((enc(x) * tiny_rn.encode_image(x)).sum(1).min()) >= 0.9999
        with pytest.raises(LsegError, match="outside the package's profile"):
            enc(torch.randn(2, 3, 64, 64))


def test_seed1_package_beside_seed0_sidecar_is_refused(packages, tmp_path):
    engine = tmp_path / "model.pt2"
    shutil.copyfile(packages.seed0, engine)
    shutil.copyfile(str(packages.seed0) + ".json", str(engine) + ".json")
    lsegrt.Encoder.open("aoti", engine=engine).close()  # the genuine pair loads
    shutil.copyfile(packages.seed1, engine)  # other weights, same size class, old sidecar kept
    with pytest.raises(LsegError, match="model.pt2 is not the file its sidecar model.pt2.json describes"):
        lsegrt.Encoder.open("aoti", engine=engine)


def test_seed1_package_is_refused_for_the_seed0_checkpoint(packages, tiny_rn):
    with pytest.raises(LsegError, match="built from random:rn_tiny:seed1 .*not from random:rn_tiny:seed0"):
        lsegrt.Encoder.open("aoti", engine=packages.seed1, checkpoint=tiny_rn)


@pytest.mark.parametrize("max_batch, max_side, message", [
    (0, 64, "max batch 0: expected an integer from 1"),
    (-3, 64, "max batch -3"),
    (2, 100, "max side 100: expected a multiple of 32"),
    (2, 0, "max side 0"),
    (2, 99968, "max side 99968"),
    (5000, 64, "max batch 5000"),
])
def test_nonsensical_limits_are_refused_before_work(tmp_path, tiny_rn, max_batch, max_side, message):
    from lsegrt.backends.aoti import build_aoti

    with pytest.raises(LsegError, match=message):
        build_aoti(tiny_rn, tmp_path / "x.pt2", max_batch=max_batch, max_side=max_side)
    assert list(tmp_path.iterdir()) == []
