"""Recognise PNG and JPEG files from their headers, without decoding them."""

import struct
from typing import NamedTuple, Optional  # noqa: F401 (type comments)

ImageInfo = NamedTuple("ImageInfo", [
    ("kind", str),        # "png" or "jpeg"
    ("width", int),
    ("height", int),
    ("layout", str),      # what decides the decoder's pixel format
])

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}
EXTENSIONS = {"png": "png", "jpeg": "jpg"}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_HEADER_LIMIT = 1 << 20


def sniff(path):
    # type: (str) -> Optional[ImageInfo]
    """The image's kind, size and pixel layout, or None if it is not PNG/JPEG.

    Raises OSError when the file cannot be opened or read.
    """
    with open(path, "rb") as handle:
        head = handle.read(33)
        if head.startswith(_PNG_SIGNATURE):
            return _png(head)
        if head.startswith(b"\xff\xd8\xff"):
            handle.seek(2)
            return _jpeg(handle)
    return None


def _png(head):
    # type: (bytes) -> Optional[ImageInfo]
    if len(head) < 29 or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    if width == 0 or height == 0:
        return None
    return ImageInfo("png", width, height, "png-%d-%d" % (colour, depth))


def _jpeg(handle):
    # type: (...) -> Optional[ImageInfo]
    read = 2
    while read < _HEADER_LIMIT:
        byte = handle.read(1)
        if not byte:
            return None
        if byte != b"\xff":
            continue
        marker = handle.read(1)
        while marker == b"\xff":
            marker = handle.read(1)
        if not marker:
            return None
        code = marker[0]
        if code == 0xD8 or code == 0x01 or 0xD0 <= code <= 0xD7:
            continue
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            return None
        (length,) = struct.unpack(">H", length_bytes)
        if code in _JPEG_SOF:
            body = handle.read(length - 2)
            if len(body) < 6:
                return None
            precision, height, width, components = struct.unpack(">BHHB", body[:6])
            if width == 0 or height == 0:
                return None
            factors = ",".join(
                "%d" % body[7 + 3 * i] for i in range(components) if 7 + 3 * i < len(body)
            )
            return ImageInfo("jpeg", width, height,
                             "jpeg-%d-%d-%d-%s" % (code, precision, components, factors))
        handle.seek(length - 2, 1)
        read += length + 2
    return None


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_TAIL = 4096


def complete(path, kind):
    # type: (str, str) -> bool
    """Whether the file ends as a whole image does: a cheap check for truncation.

    A PNG ends with its IEND chunk; a JPEG's end-of-image marker sits at the
    end (some writers pad a little after it).  Frames still being written by a
    running simulation fail this check.
    """
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        if kind == "png":
            handle.seek(max(0, size - len(_PNG_END)))
            return handle.read() == _PNG_END
        handle.seek(max(0, size - _JPEG_TAIL))
        return b"\xff\xd9" in handle.read()


def content_type(kind):
    # type: (str) -> str
    return CONTENT_TYPES[kind]
