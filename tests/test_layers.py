"""Structure: the import layers of pyproject's [tool.importlinter] hold, and `import lsegrt` stays light."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    # Analyse this checkout's source, whatever copy of lsegrt the environment has installed.
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def test_import_layers_hold():
    """cli > pipeline | profile | compare > bench | wordfree > backends : export > api > model: no module
    imports a higher layer, directly or through other modules, and compare does not borrow from bench
    (`lint-imports`, from the test extra)."""
    exe = Path(sys.executable).parent / "lint-imports"
    exe = str(exe) if exe.exists() else shutil.which("lint-imports")
    assert exe, "lint-imports not found: pip install -e '.[test]' (import-linter)"
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in proc.stdout


def test_import_lsegrt_is_light():
    """The package imports its heavy dependencies on first use: `import lsegrt` loads none of them, and the
    API module loads torch but not the network libraries (timm, open_clip) or the picture ones; a model
    loads timm, and open_clip only once text is encoded (tests/model/test_checkpoint.py)."""
    heavy = ["torch", "timm", "open_clip", "torchvision", "skimage", "matplotlib", "rich"]
    code = ("import sys, lsegrt; a = [m for m in HEAVY if m in sys.modules]; import lsegrt.api; "
            "b = [m for m in HEAVY if m in sys.modules]; lsegrt.random_model('vit_tiny'); "
            "c = [m for m in HEAVY if m in sys.modules]; print(a, b, c, sep='|')").replace("HEAVY", repr(heavy))
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    after_import, after_api, after_model = (eval(part) for part in proc.stdout.strip().split("|"))
    assert after_import == []
    assert after_api == ["torch"]
    assert "timm" in after_model and "open_clip" not in after_model  # first use; text on its own first use
