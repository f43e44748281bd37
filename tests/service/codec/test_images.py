import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from service.codec.images import decode_image
from service.errors import NotAnImage, PayloadTooLarge

LIMIT = 10_000_000


def _save(im: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def test_rgb_png_round_trips() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    decoded = decode_image(_save(Image.fromarray(rgb)), LIMIT)
    np.testing.assert_array_equal(decoded.rgb, rgb)
    assert decoded.notes == []


@pytest.mark.parametrize("data", [b"", b"hello, not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_non_images_are_refused(data: bytes) -> None:
    with pytest.raises(NotAnImage):
        decode_image(data, LIMIT)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_refused(fmt: str) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = _save(Image.fromarray(rgb), fmt)
    with pytest.raises(NotAnImage):
        decode_image(data[: len(data) // 2], LIMIT)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = _save(Image.new("L", (20000, 20000)))
    assert len(bomb) < 1_000_000
    with pytest.raises(PayloadTooLarge, match="pixels"):
        decode_image(bomb, LIMIT)


def test_grayscale_palette_cmyk_and_16_bit_become_rgb() -> None:
    for im in (Image.new("L", (5, 4), 77), Image.new("P", (5, 4)), Image.new("CMYK", (5, 4), (0, 0, 0, 0))):
        decoded = decode_image(_save(im, "JPEG" if im.mode == "CMYK" else "PNG"), LIMIT)
        assert decoded.rgb.shape == (4, 5, 3)
    deep = Image.fromarray(np.full((4, 5), 65535, np.uint16))
    decoded = decode_image(_save(deep), LIMIT)
    assert decoded.rgb.max() == 255 and any("16-bit" in n for n in decoded.notes)


def test_transparent_alpha_is_refused_and_opaque_alpha_is_dropped_with_a_note() -> None:
    with pytest.raises(NotAnImage, match="transparency"):
        decode_image(_save(Image.new("RGBA", (4, 4), (1, 2, 3, 100))), LIMIT)
    decoded = decode_image(_save(Image.new("RGBA", (4, 4), (1, 2, 3, 255))), LIMIT)
    assert decoded.rgb[0, 0].tolist() == [1, 2, 3] and decoded.notes


def test_exif_orientation_is_applied() -> None:
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    decoded = decode_image(_save(im, "JPEG", exif=exif), LIMIT)
    assert decoded.rgb.shape == (40, 20, 3)


@pytest.mark.parametrize(("profile", "note"), [("sRGB", "converted to sRGB"), ("LAB", "could not be read")])
def test_icc_profile_is_converted_or_its_failure_is_stated(profile: str, note: str) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile(profile)).tobytes()
    decoded = decode_image(_save(Image.new("RGB", (8, 8), (200, 100, 50)), icc_profile=icc), LIMIT)
    assert decoded.rgb[0, 0].tolist() == [200, 100, 50]
    assert any(note in n for n in decoded.notes)


def test_animated_images_encode_the_first_frame_and_say_so() -> None:
    frames = [Image.new("RGB", (6, 6), c) for c in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    decoded = decode_image(buffer.getvalue(), LIMIT)
    assert decoded.rgb[0, 0, 0] > 200 and any("first of 2" in n for n in decoded.notes)
