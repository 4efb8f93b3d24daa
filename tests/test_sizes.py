import numpy as np
import pytest
import torch

from lsegrt.errors import LsegError
from lsegrt.sizes import parse_size, target_size, to_model_input


def test_parse_size_valid():
    assert parse_size("384") == 384
    assert parse_size("33") == 33
    assert parse_size("480x640") == (480, 640)
    assert parse_size(" 480 X 640 ") == (480, 640)


@pytest.mark.parametrize(
    "text, match",
    [
        ("400x400", r"size 400x400: H and W must be multiples of 32 .*try 384x384 or 416x416"),
        ("480x400", r"try 480x384 or 480x416"),
        ("abc", r"expected a long side"),
        ("0", r"at least 32"),
        ("-5", r"at least 32"),
        ("16", r"at least 32"),
        ("0x480", r"positive"),
        ("480x", r"expected a long side"),
        ("", r"expected a long side"),
        ("3.5", r"expected a long side"),
    ],
)
def test_parse_size_errors(text, match):
    with pytest.raises(LsegError, match=match) as err:
        parse_size(text)
    assert "\n" not in str(err.value)


def test_small_exact_suggests_at_least_32():
    with pytest.raises(LsegError, match="try 32x32$"):
        parse_size("10x10")


@pytest.mark.parametrize(
    "hw, size", [((300, 451), 480), ((451, 300), 480), ((1000, 1000), 384), ((20, 2000), 512),
                 ((480, 640), 640), ((7, 9), 33)],
)
def test_target_size_long_side(hw, size):
    h, w = target_size(hw, size)
    assert h % 32 == 0 and w % 32 == 0 and h >= 32 and w >= 32
    long_out = max(h, w)
    assert abs(long_out - size) <= 16  # the long side lands on the multiple of 32 nearest to S
    if min(h, w) > 32:  # aspect kept within rounding of both sides
        assert abs(h / w - hw[0] / hw[1]) <= (h / w) * (16 / min(h, w) + 16 / max(h, w)) + 1e-9
    assert (h >= w) == (hw[0] >= hw[1]) or h == w


def test_target_size_examples():
    assert target_size((300, 451), 480) == (320, 480)
    assert target_size((480, 640), 640) == (480, 640)
    assert target_size((20, 2000), 512) == (32, 512)
    assert target_size((300, 451), (480, 480)) == (480, 480)
    with pytest.raises(LsegError, match="multiples of 32"):
        target_size((300, 451), (400, 400))
    with pytest.raises(LsegError, match="at least 32"):
        target_size((300, 451), 8)


def test_to_model_input():
    img = np.zeros((30, 45, 3), np.uint8)
    img[..., 0] = 255
    x = to_model_input(img, (64, 96), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert x.shape == (1, 3, 64, 96) and x.dtype == torch.float32
    assert torch.allclose(x[0, 0], torch.ones(64, 96)) and torch.allclose(x[0, 1], -torch.ones(64, 96))

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = to_model_input(img, (32, 64), mean, std)  # same size: no resampling at all
    ref = (img.astype(np.float32) / 255 - np.array(mean, np.float32)) / np.array(std, np.float32)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), ref, atol=1e-6)

    with pytest.raises(LsegError, match="uint8"):
        to_model_input(img.astype(np.float32), (32, 32), mean, std)


def test_to_model_input_matches_pil_bilinear():
    from PIL import Image

    img = np.random.default_rng(1).integers(0, 256, (100, 150, 3), dtype=np.uint8)
    x = to_model_input(img, (64, 96), (0, 0, 0), (1 / 255, 1 / 255, 1 / 255))
    pil = np.asarray(Image.fromarray(img).resize((96, 64), Image.BILINEAR), np.float32)
    # Same antialiased triangle filter; PIL rounds to uint8 and treats borders slightly differently.
    assert np.abs(x[0].permute(1, 2, 0).numpy() - pil).mean() < 1.0


def test_sizes_are_capped_before_anything_is_allocated():
    from lsegrt.sizes import MAX_SIDE, target_size

    assert MAX_SIDE == 4096 and parse_size("4096") == 4096 and parse_size("4096x32") == (4096, 32)
    for text in ("4097", "99999", "4128x32", "32x99968"):
        with pytest.raises(LsegError, match="at most 4096"):
            parse_size(text)
    with pytest.raises(LsegError, match="at most 4096"):
        target_size((300, 451), 99999)
