import io

import numpy as np
import pytest
from PIL import Image

from lsegrt.errors import LsegError
from lsegrt.images import SAMPLES, load_image, resolve_images, sample_image


def _save(path, arr, **kw):
    Image.fromarray(arr).save(path, **kw)
    return path


def _rgb(h=10, w=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_png_roundtrip_exact(tmp_path):
    arr = _rgb()
    out = load_image(_save(tmp_path / "a.png", arr))
    assert out.dtype == np.uint8 and out.shape == (10, 20, 3)
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "1"])
def test_modes_become_rgb(tmp_path, mode):
    img = Image.fromarray(_rgb()).convert(mode)
    img.save(tmp_path / "m.png")
    out = load_image(tmp_path / "m.png")
    assert out.shape == (10, 20, 3) and out.dtype == np.uint8
    if mode == "L":
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_16bit_grayscale_is_rescaled(tmp_path):
    arr = np.full((4, 6), 65535, dtype=np.uint16)
    arr[0, 0] = 0
    Image.fromarray(arr).save(tmp_path / "g16.png")
    out = load_image(tmp_path / "g16.png")
    assert out.shape == (4, 6, 3) and out[1, 1, 0] == 255 and out[0, 0, 0] == 0


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255  # white left half
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    out = load_image(tmp_path / "r.jpg")
    assert out.shape == (20, 10, 3)
    # After a clockwise turn the stored left half ends up on top.
    assert out[:8].mean() > 200 and out[12:].mean() < 50


def test_missing_dir_corrupt_truncated(tmp_path):
    with pytest.raises(LsegError, match="not an image or unreadable: .*nope.png"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(LsegError, match="not an image or unreadable"):
        load_image(tmp_path)
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(LsegError, match="x.png") as err:
        load_image(bad)
    assert "\n" not in str(err.value)

    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, format="JPEG")
    trunc = tmp_path / "t.jpg"
    trunc.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(LsegError, match="not an image or unreadable: .*t.jpg") as err:
        load_image(trunc)
    assert "\n" not in str(err.value)


def test_samples():
    assert set(SAMPLES) == {"chelsea", "astronaut", "coffee"}
    img = sample_image()
    assert img.shape == (300, 451, 3) and img.dtype == np.uint8
    with pytest.raises(LsegError, match="astronaut, chelsea, coffee"):
        sample_image("dog")


def test_resolve_images(tmp_path):
    (name, img), = resolve_images([])
    assert name == "sample:chelsea" and img.shape == (300, 451, 3)

    folder = tmp_path / "imgs"
    folder.mkdir()
    _save(folder / "b.PNG", _rgb(8, 8))
    _save(folder / "a.jpg", _rgb(8, 8))
    (folder / "notes.txt").write_text("hi")
    (folder / "._a.jpg").write_bytes(b"resource fork")
    single = _save(tmp_path / "c.bmp", _rgb(5, 7))

    out = resolve_images([str(single), str(folder), "sample:coffee"])
    names = [n for n, _ in out]
    assert names == [str(single), str(folder / "a.jpg"), str(folder / "b.PNG"), "sample:coffee"]
    assert out[0][1].shape == (5, 7, 3) and out[3][1].shape == (400, 600, 3)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LsegError, match="folder has no images: .*empty"):
        resolve_images([str(empty)])
    with pytest.raises(LsegError, match="unknown sample"):
        resolve_images(["sample:nope"])
    with pytest.raises(LsegError, match="not an image or unreadable"):
        resolve_images([str(tmp_path / "missing.jpg")])
