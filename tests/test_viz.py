import json

import numpy as np
import pytest
import torch
from PIL import Image

from lsegrt import viz
from lsegrt.errors import LsegError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _labels(h=60, w=90):
    lab = np.zeros((h, w), np.int64)
    lab[:, w // 3:] = 1
    lab[h // 2:, 2 * w // 3:] = 3  # label 2 absent on purpose
    return lab


def test_palette_distinct_and_stable():
    p = viz.palette(300)
    assert p.shape == (300, 3) and p.dtype == np.uint8
    assert len({tuple(c) for c in p}) == 300
    np.testing.assert_array_equal(viz.palette(5), p[:5])
    assert viz.palette(0).shape == (0, 3)


def test_label_map_png_roundtrip(tmp_path):
    lab = _labels()
    names = ["cat", "sofa", "dog", "wall"]
    out = tmp_path / "labels.png"
    viz.label_map_png(lab, out, names)
    with Image.open(out) as img:
        assert img.mode == "P"
        np.testing.assert_array_equal(np.asarray(img), lab)
        assert json.loads(img.info["labels"]) == names
        pal = np.asarray(img.getpalette()[: 3 * 4], np.uint8).reshape(4, 3)
    np.testing.assert_array_equal(pal, viz.palette(4))
    with pytest.raises(LsegError, match="2 names"):
        viz.label_map_png(lab, tmp_path / "bad.png", ["a", "b"])


def test_overlay_has_legend_and_is_rgb(tmp_path):
    img = np.full((60, 90, 3), 128, np.uint8)
    lab = _labels()
    names = ["cat", "sofa", "dog", "wall"]
    ov = viz.overlay(img, lab, names, alpha=0.5)
    assert ov.mode == "RGB" and ov.width > 90 and ov.height >= 60
    arr = np.asarray(ov)
    colour = viz.palette(4)[1].astype(np.float32)
    np.testing.assert_allclose(arr[5, 45], np.round(0.5 * 128 + 0.5 * colour), atol=1)
    assert (arr[5, 90 // 3 - 1] == 255).all()  # boundary between labels 0 and 1 drawn in white
    legend = arr[:, 90:]
    assert (legend != 255).any()  # text and swatches drawn
    # Swatches of present labels appear in the legend; absent label 2 does not.
    def has(c):
        return (legend.reshape(-1, 3) == c).all(axis=1).any()
    pal = viz.palette(4)
    assert has(pal[0]) and has(pal[1]) and has(pal[3]) and not has(pal[2])

    # Labels at model resolution are resized to the image.
    small = viz.overlay(np.zeros((120, 180, 3), np.uint8), lab, names, coverage={"cat": 0.25})
    assert small.height >= 120 and small.width > 180

    path = tmp_path / "ov.png"
    viz.save_overlay(img, lab, names, path)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_overlay_legend_grows_for_many_labels():
    lab = np.arange(40 * 10).reshape(40, 10) // 10  # 40 labels, each one row of pixels
    ov = viz.overlay(np.zeros((40, 10, 3), np.uint8), lab, [f"l{i}" for i in range(40)])
    assert ov.height > 40 * 14  # one legend row per present label, none cut off


def test_pca_rgb_rank3_distinct_regions():
    rng = np.random.default_rng(0)
    h, w, c = 32, 48, 64
    regions = np.zeros((h, w), np.int64)
    regions[:, 16:32] = 1
    regions[:, 32:] = 2
    regions[16:, :16] = 3
    codes = rng.normal(size=(4, 3)) * 5  # each region a point in a 3-d latent space
    mix = rng.normal(size=(3, c))  # rank-3 embedding into 64 channels
    feats = (codes[regions] @ mix).transpose(2, 0, 1) + 0.01 * rng.normal(size=(c, h, w))
    rgb, basis = viz.pca_rgb(torch.from_numpy(feats).float())
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    means = [rgb[regions == r].astype(float).mean(0) for r in range(4)]
    for i in range(4):
        assert rgb[regions == i].std(0).max() < 10  # uniform within a region
        for j in range(i):
            assert np.abs(means[i] - means[j]).max() > 40  # distinct between regions
    # The same basis renders another map in the same colour space.
    rgb2, basis2 = viz.pca_rgb(feats, basis=basis)
    assert basis2 is basis and np.abs(rgb2.astype(int) - rgb).max() <= 1
    with pytest.raises(LsegError, match="channels"):
        viz.pca_rgb(feats[:10], basis=basis)


def test_side_by_side_and_heatmap(tmp_path):
    a = np.zeros((50, 80, 3), np.uint8)
    b = np.full((100, 100, 3), 255, np.uint8)
    out = viz.side_by_side([a, b], ["pytorch", "tensorrt"])
    assert out.mode == "RGB" and out.height > 100 and out.width >= 160 + 100
    with pytest.raises(LsegError, match="2 images but 1 titles"):
        viz.side_by_side([a, b], ["x"])

    hm = viz.heatmap(np.linspace(0, 1, 30 * 40).reshape(30, 40), "cosine", vmin=0, vmax=1)
    assert hm.mode == "RGB" and hm.width > 100
    assert len(np.unique(np.asarray(hm).reshape(-1, 3), axis=0)) > 50  # a colour ramp was drawn
    viz.save_png(hm, tmp_path / "hm.png")
    assert (tmp_path / "hm.png").read_bytes()[:8] == PNG_MAGIC


def test_latency_plot(tmp_path):
    rows = [
        {"backend": be, "precision": pr, "batch": 1, "size": s, "gpu_ms_p50": t}
        for be, pr, k in [("torch", "fp32", 3.0), ("trt", "fp16", 1.0)]
        for s, t in [(320, k), (480, 2 * k), (640, 4 * k)]
    ]
    rows.append({"backend": "trt", "precision": "fp8", "batch": 1, "size": 480, "gpu_ms_p50": None})
    path = tmp_path / "lat.png"
    viz.latency_plot(rows, path, title="latency")
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as img:
        img.verify()

    cat_rows = [{"backend": "trt", "size": s, "gpu_ms_p50": 1.0} for s in ["480x640", "320x320"]]
    viz.latency_plot(cat_rows, tmp_path / "cat.png", group=("backend",), logy=False)
    with Image.open(tmp_path / "cat.png") as img:  # a real PNG, not just a file
        img.verify()
    with pytest.raises(LsegError, match="no rows"):
        viz.latency_plot([{"size": 1}], tmp_path / "none.png")


def test_missing_output_folder_leaves_nothing(tmp_path):
    missing = tmp_path / "nope"
    img = np.zeros((20, 30, 3), np.uint8)
    lab = np.zeros((20, 30), np.int64)
    with pytest.raises(LsegError, match="output folder does not exist"):
        viz.save_overlay(img, lab, ["a"], missing / "ov.png")
    with pytest.raises(LsegError, match="output folder does not exist"):
        viz.label_map_png(lab, missing / "l.png", ["a"])
    with pytest.raises(LsegError, match="output folder does not exist"):
        viz.latency_plot([{"size": 1, "gpu_ms_p50": 1.0}], missing / "p.png")
    assert not missing.exists() and list(tmp_path.iterdir()) == []


def test_failed_render_leaves_no_file(tmp_path):
    class Boom(Image.Image):
        def save(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        viz.save_png(Boom(), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []
