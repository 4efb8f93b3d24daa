"""Options that used to end in "internal error" (exit 1, sometimes after minutes or an 80 GB allocation):
each is now one `lsegrt: error:` line, exit 2, before any output is written."""

from __future__ import annotations

import pytest
import torch

SEG = ["segment", "--variant", "vit_tiny", "--labels", "a, b", "--size", "64"]
WF = ["wordfree", "--variant", "vit_tiny", "--size", "64"]
BENCH = ["bench", "--variant", "vit_tiny", "--size", "64", "--device", "cpu"]
CMP = ["compare", "--variant", "vit_tiny", "--candidate", "torch", "--size", "64"]
ABSENT_GPU = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU here (cuda:0 on a CPU machine)
FAST = ["--min-seconds", "0", "--warmup-iters", "0", "--warmup-seconds", "0"]

CASES = {
    # devices: only the CPU and present CUDA GPUs
    **{f"{verb}-device-{dev}": ([*argv, "--device", dev], dev if dev != ABSENT_GPU else "CUDA GPU")
       for verb, argv in (("segment", SEG), ("wordfree", WF), ("compare", CMP))
       for dev in ("meta", "mps", "xpu", ABSENT_GPU)},
    "bench-device-meta": ([*BENCH[:-2], "--device", "meta", *FAST], "meta"),
    # absurd sizes are refused before anything is allocated (4096 is the documented maximum side)
    "segment-size-99968": ([*SEG[:-2], "--size", "99968"], "at most 4096"),
    "compare-size-99999": ([*CMP[:-2], "--size", "99999"], "at most 4096"),
    "bench-size-8192": ([*BENCH[:3], "--size", "8192", "--device", "cpu"], "at most 4096"),
    "segment-size-5000x64": ([*SEG[:-2], "--size", "4992x64"], "at most 4096"),
    # values outside their range
    "segment-alpha-5": ([*SEG, "--alpha", "5"], "--alpha"),
    "segment-alpha-nan": ([*SEG, "--alpha", "nan"], "--alpha"),
    "compare-min-cosine-nan": ([*CMP, "--min-cosine", "nan"], "--min-cosine"),
    "compare-min-agreement-200": ([*CMP, "--min-agreement", "200"], "--min-agreement"),
    "bench-warmup-seconds-inf": ([*BENCH, "--warmup-seconds", "inf"], "warm-up seconds"),
    "bench-min-iters-1": ([*BENCH, "--min-iters", "1"], "at least 2"),
    "bench-batch-0": ([*BENCH, "--batch", "0", *FAST], "--batch 0"),
    # model specs and checkpoints
    "segment-checkpoint-folder": ([*SEG, "--checkpoint", "{tmp}"], "not a file"),
    "segment-random-unknown-variant": ([*SEG, "--checkpoint", "random:vit_huge"], "unknown variant"),
    "compare-random-bad-seed": ([*CMP, "--checkpoint", "random:vit_tiny:seedx"], "random:VARIANT"),
    "compare-checkpoints-missing": (["compare", "--checkpoints", "random:vit_tiny", "{tmp}/nope.ckpt", "--size", "64"],
                                    "checkpoint not found"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_option(tmp_path, run_cli, case, cache_dir):
    argv, match = CASES[case]
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = run_cli(*argv, "--out", out)
    assert code == 2, err
    assert err.startswith("lsegrt: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    assert match in err, err
    assert list(out.iterdir()) == []
