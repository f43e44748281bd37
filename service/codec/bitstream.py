"""The bitstream container (spec: docs/bitstream.md).

::

    "RGIC" | format version u8 | name_len u8 | model name | model version u32 | width u32 | height u32
    | colour u8 | cell u8 | bits_per_cell u8 | patch u16 | tile u16
    | patch iteration counts: u8 × (patches_y · patches_x)                  (formats 1, 2)
    |                         counts len u16 | zlib(u8 × patches_y · patches_x) (format 3)
    | coder id u8 | coder params len u8 | coder params | payload len u32 | payload
    | refinement len u32 | refinement                                      (formats 4-7)
    | crc32 u32

Big-endian integers. The CRC-32 covers every byte before it. Parsing checks every length and
value against what the header implies, so corrupt, truncated or foreign input raises
``InvalidBitstream`` and never anything else.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from service.codec import refinement
from service.codec.entropy import CODER_CONTEXT, CODER_LEARNED, CODER_RAW
from service.codec.patches import CELL_SIZE, Geometry
from service.codec.postfilters import Postfilters
from service.errors import InvalidBitstream

__all__ = [
    "COLOUR_SRGB",
    "DEBLOCKED_FORMAT_VERSION",
    "FORMAT_VERSION",
    "MAGIC",
    "NETWORK_ONLY_FORMAT",
    "REFINED_FORMAT_VERSION",
    "Bitstream",
    "declared_pixels",
]

MAGIC = b"RGIC"
#: Written by this version. 1: raw bits only; 2: adds the context-adaptive range coder;
#: 3: the per-patch iteration counts are zlib-compressed, and the learned context coder;
#: 4: format 3 plus the refinement layer (service/codec/refinement.py), its coefficients LZMA-coded;
#: 5: as 4, the coefficients range-coded (service/codec/coefficient_coder.py); 6: as 5, the layer's
#: block means at a finer step; 7: as 6, the means' step capped for coarse layers and, for MS-SSIM
#: targets, an adaptive quantiser; 8: format 3 and 9: format 7, the network's image deblocked on the 8-px
#: grid wherever the receiver shows it (service/codec/deblocking.py); 10: format 8 and 11: format 9, the
#: receiver's image, whichever coder made it, chroma-filtered with its luma as the guide
#: (service/codec/postfilters.py). 11 is written when the layer is used, 10 otherwise; 8 (9 with a layer over
#: the network's iterations) where the chroma filter would lower the network's quality (decision 43); 1-7
#: are read, no longer written.
FORMAT_VERSION = 10
DEBLOCKED_FORMAT_VERSION = 8
FIRST_REFINED_FORMAT_VERSION = 4
REFINED_FORMAT_VERSION = 11
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
#: formats whose bitstreams carry the refinement layer's field
_LAYERED = (4, 5, 6, 7, 9, 11)
#: the refinement layer's own format in each layered bitstream format
_LAYER_FORMAT = {4: 4, 5: 5, 6: 6, 7: 7, 9: 7, 11: refinement.FORMAT}
#: the layered format of a network-only one (a bitstream given a layer), and the network-only format of a
#: layered one (a bitstream cut to the network's iterations): the same filters at the receiver
_WITH_LAYER = {8: 9, 10: 11}
NETWORK_ONLY_FORMAT = {9: 8, 11: 10}
#: Entropy coders each format version may name.
_CODERS = {
    1: (CODER_RAW,),
    2: (CODER_RAW, CODER_CONTEXT),
    3: (CODER_RAW, CODER_CONTEXT, CODER_LEARNED),
    4: (CODER_RAW, CODER_CONTEXT, CODER_LEARNED),
    5: (CODER_RAW, CODER_CONTEXT, CODER_LEARNED),
    6: (CODER_RAW, CODER_CONTEXT, CODER_LEARNED),
    7: (CODER_RAW, CODER_CONTEXT, CODER_LEARNED),
    8: (CODER_RAW, CODER_CONTEXT, CODER_LEARNED),
    9: (CODER_RAW, CODER_CONTEXT, CODER_LEARNED),
    10: (CODER_RAW, CODER_CONTEXT, CODER_LEARNED),
    11: (CODER_RAW, CODER_CONTEXT, CODER_LEARNED),
}
COLOUR_SRGB = 0
MAX_DIMENSION = 1 << 20
MAX_ITERATIONS = 64


@dataclass(frozen=True)
class Bitstream:
    """A parsed bitstream: everything a decoder needs, and the payload."""

    model_name: str
    model_version: int
    width: int
    height: int
    patch_size: int
    tile_size: int
    bits_per_cell: int
    patch_iterations: np.ndarray  # uint8 [patches_y, patches_x]
    payload: bytes
    coder_id: int = CODER_RAW
    format_version: int = FORMAT_VERSION
    coder_params: bytes = b""
    colour: int = COLOUR_SRGB
    #: the refinement layer's payload (formats 4-7, 9 and 11; empty: none)
    refinement: bytes = b""

    def __post_init__(self) -> None:
        if self.refinement and self.format_version not in _LAYERED:
            object.__setattr__(self, "format_version", _WITH_LAYER.get(self.format_version, 7))

    @property
    def network_deblocked(self) -> bool:
        """The receiver deblocks the network's image (formats 8 and up)."""
        return self.format_version >= 8

    @property
    def postfilters(self) -> Postfilters:
        """What the receiver does to the network's image before showing it (or the layer over it)."""
        if self.format_version >= 10:
            return Postfilters.DEBLOCK_AND_CHROMA
        return Postfilters.DEBLOCK if self.network_deblocked else Postfilters.NONE

    @property
    def layer_format(self) -> int:
        """The refinement layer's own format (what ``refinement.decode`` is told)."""
        return _LAYER_FORMAT.get(self.format_version, 0)

    @property
    def steps(self) -> int:
        """What a progressive receiver shows in turn: the network's iterations, then the refinement
        layer's (format 7: its block means, then the rest)."""
        layer = refinement.steps(self.refinement, self.layer_format) if self.refinement else 0
        return int(self.patch_iterations.max(initial=0)) + layer

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.width, self.height, self.patch_size, self.tile_size)

    def to_bytes(self) -> bytes:
        """Serialise, appending the CRC-32."""
        name = self.model_name.encode("utf-8")
        head = (
            MAGIC
            + struct.pack(">BB", self.format_version, len(name))
            + name
            + struct.pack(
                ">IIIBBBHH",
                self.model_version,
                self.width,
                self.height,
                self.colour,
                CELL_SIZE,
                self.bits_per_cell,
                self.patch_size,
                self.tile_size,
            )
        )
        counts = self.patch_iterations.astype(np.uint8).tobytes()
        if self.format_version >= 3:
            packed = zlib.compress(counts, 9)
            counts = struct.pack(">H", len(packed)) + packed
        body = (
            head
            + counts
            + struct.pack(">BB", self.coder_id, len(self.coder_params))
            + self.coder_params
            + struct.pack(">I", len(self.payload))
            + self.payload
        )
        if self.format_version in _LAYERED:
            body += struct.pack(">I", len(self.refinement)) + self.refinement
        return body + struct.pack(">I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> Bitstream:
        """Parse and validate; raises ``InvalidBitstream`` with the reason."""
        reader = _Reader(data)
        if len(data) < 8 or data[:4] != MAGIC:
            raise InvalidBitstream("not a bitstream of this codec (bad magic)")
        stored_crc = struct.unpack(">I", data[-4:])[0]
        if zlib.crc32(data[:-4]) != stored_crc:
            raise InvalidBitstream("checksum mismatch: the bitstream is corrupt or truncated")
        reader.take(4)
        (version,) = reader.unpack(">B")
        if version not in READABLE_VERSIONS:
            raise InvalidBitstream(f"unsupported bitstream format version {version}")
        (name_len,) = reader.unpack(">B")
        try:
            name = reader.take(name_len).decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidBitstream("model name is not UTF-8") from error
        model_version, width, height, colour, cell, bits_per_cell, patch, tile = reader.unpack(">IIIBBBHH")
        if colour != COLOUR_SRGB:
            raise InvalidBitstream(f"unknown colour mode {colour}")
        if cell != CELL_SIZE:
            raise InvalidBitstream(f"cell size {cell} is not {CELL_SIZE}")
        if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
            raise InvalidBitstream(f"implausible image size {width}x{height}")
        if bits_per_cell == 0:
            raise InvalidBitstream("zero bits per cell")
        try:
            geometry = Geometry(width, height, patch, tile)
        except ValueError as error:
            raise InvalidBitstream(f"bad patch geometry: {error}") from error
        patches_y, patches_x = geometry.patches
        if version >= 3:
            (packed_len,) = reader.unpack(">H")
            raw_counts = _inflate(reader.take(packed_len), patches_y * patches_x)
        else:
            raw_counts = reader.take(patches_y * patches_x)
        counts = np.frombuffer(raw_counts, dtype=np.uint8).reshape(patches_y, patches_x)
        if counts.max(initial=0) > MAX_ITERATIONS:
            raise InvalidBitstream(f"iteration count above {MAX_ITERATIONS}")
        coder_id, params_len = reader.unpack(">BB")
        if coder_id not in _CODERS[version]:
            raise InvalidBitstream(f"entropy coder {coder_id} is not defined for format version {version}")
        params = reader.take(params_len)
        (payload_len,) = reader.unpack(">I")
        payload = reader.take(payload_len)
        refinement = b""
        if version in _LAYERED:
            (refinement_len,) = reader.unpack(">I")
            refinement = reader.take(refinement_len)
        if reader.remaining != 4:
            raise InvalidBitstream("trailing bytes after the payload")
        return cls(
            model_name=name,
            model_version=model_version,
            width=width,
            height=height,
            patch_size=patch,
            tile_size=tile,
            bits_per_cell=bits_per_cell,
            patch_iterations=counts.copy(),
            payload=payload,
            coder_id=coder_id,
            coder_params=params,
            colour=colour,
            format_version=version,
            refinement=refinement,
        )


def declared_pixels(data: bytes) -> int:
    """The pixel count a bitstream's header declares, read without validating anything (0 if there is
    no header): what admission control charges a decode before it runs; the decode validates."""
    if len(data) < 6 or data[:4] != MAGIC:
        return 0
    start = 6 + data[5] + 4  # magic, format version, name length, name, model version
    if len(data) < start + 8:
        return 0
    width, height = struct.unpack(">II", data[start : start + 8])
    return min(width, MAX_DIMENSION) * min(height, MAX_DIMENSION)


def _inflate(packed: bytes, size: int) -> bytes:
    """zlib-decompress exactly ``size`` bytes, refusing anything longer, shorter or malformed."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(packed, size)
    except zlib.error as error:
        raise InvalidBitstream(f"iteration counts do not decompress: {error}") from error
    if len(data) != size or not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise InvalidBitstream(f"iteration counts hold other than the {size} patches the header implies")
    return data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def take(self, count: int) -> bytes:
        if count > self.remaining - 4:  # the CRC is never part of a field
            raise InvalidBitstream("truncated bitstream")
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))
