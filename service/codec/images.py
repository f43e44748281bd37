"""Turn uploaded bytes into an sRGB uint8 array, safely, and arrays back into PNG bytes.

What happens to each kind of input (stated in the API docs too):
- grayscale, palette, CMYK, 16-bit: converted to 8-bit RGB;
- EXIF orientation: applied; embedded ICC profile: converted to sRGB;
- alpha: refused with a clear error unless fully opaque (then dropped, and said so);
- animated: the first frame is encoded, and said so.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from service.errors import NotAnImage, PayloadTooLarge

__all__ = ["DecodedImage", "decode_image", "encode_png"]

# We enforce our own pixel limit before decoding; Pillow's warning threshold would only add noise.
Image.MAX_IMAGE_PIXELS = None
_SRGB = ImageCms.createProfile("sRGB")


@dataclass
class DecodedImage:
    rgb: np.ndarray  # uint8 [H, W, 3]
    source_format: str
    notes: list[str] = field(default_factory=list)


def _to_srgb(im: Image.Image, notes: list[str]) -> Image.Image:
    icc = im.info.get("icc_profile")
    if not icc:
        return im
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGB" if im.mode not in ("RGB", "CMYK", "L") else im.mode
        converted = ImageCms.profileToProfile(im.convert(mode), source, _SRGB, outputMode="RGB")
        notes.append("embedded ICC profile converted to sRGB")
        return converted
    except (ImageCms.PyCMSError, OSError, ValueError):
        notes.append("embedded ICC profile could not be read; pixels taken as sRGB")
        return im


def _drop_opaque_alpha(im: Image.Image, notes: list[str]) -> Image.Image:
    rgba = im.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"))
    if alpha.min() < 255:
        raise NotAnImage(
            "the image has transparency; this codec encodes RGB only and will not drop alpha silently. "
            "Flatten it onto a background first.",
        )
    notes.append("alpha channel was fully opaque and has been dropped")
    return rgba.convert("RGB")


def _sixteen_bit_to_rgb(im: Image.Image, notes: list[str]) -> Image.Image:
    values = np.asarray(im, dtype=np.float64)
    peak = 65535.0 if im.mode.startswith("I;16") or values.max() > 255 else 255.0
    gray = np.clip(np.round(values * 255.0 / peak), 0, 255).astype(np.uint8)
    notes.append("16-bit samples reduced to 8 bits")
    return Image.fromarray(gray, "L").convert("RGB")


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    """Decode ``data`` into RGB, refusing non-images, truncated files and images over ``max_pixels``."""
    if not data:
        raise NotAnImage("the upload is empty")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            width, height = im.size  # header only: nothing decoded yet
            if width * height > max_pixels:
                raise PayloadTooLarge(
                    f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
                )
            fmt = im.format or "unknown"
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                im.seek(0)
                notes.append(f"animated image: the first of {frames} frames was encoded")
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                im = _sixteen_bit_to_rgb(im, notes)
            im = _to_srgb(im, notes)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = _drop_opaque_alpha(im, notes)
            elif im.mode != "RGB":
                notes.append(f"{im.mode} image converted to RGB")
                im = im.convert("RGB")
            rgb = np.asarray(im, dtype=np.uint8)
    except UnidentifiedImageError as error:
        raise NotAnImage(
            "not a supported image: its format is not one Pillow reads (PNG, JPEG, WebP, ...)"
        ) from error
    except Image.DecompressionBombError as error:
        raise NotAnImage(f"not a supported image: {error}") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise NotAnImage(f"the image could not be decoded (truncated or corrupt?): {error}") from error
    return DecodedImage(np.ascontiguousarray(rgb), fmt, notes)


def encode_png(rgb: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes of a uint8 [H,W,3] array (fast compression: these are transient responses)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()
