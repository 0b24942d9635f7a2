"""The preview of a running encode: what is encoded so far, playable while it grows.

The same ffmpeg that writes a job's first video writes a second copy of its
packets (the tee muxer: one encode, two files) as a stream that a browser's
MediaSource can take piece by piece: fragmented MP4 (an empty ``moov``, then
a ``moof`` + ``mdat`` fragment about every second) for MP4, live Matroska
(no cues, a cluster about every second) for WebM.  The final output is
written exactly as without a preview.

:class:`PreviewReader` says how much of the growing file is complete: the
frames of its whole fragments, the bytes up to the end of the last one, and
the codec string read from the file's own header.  Each look parses only
what was added since the last, and never past complete data.
"""

import os
import struct
from typing import Any, BinaryIO, Dict, List, Optional, Tuple  # noqa: F401 (type comments)

from .spec import Spec, VideoOutput  # noqa: F401 (type comments)

FRAGMENT_MICROSECONDS = 1000000  # a fragment (MP4) or cluster (WebM) about every second
CLUSTER_BYTES = 8 << 20  # unless it gets this big first (the muxer holds one in memory)
FILE_PREFIX = "partial.preview."  # a temporary: removed with the partial outputs

# Top-level MP4 boxes and the ones on the way to the sample entry and the runs.
_CONTAINERS = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"traf")

# Matroska element ids (EBML variable-length ids, marker bits kept).
EBML = 0x1A45DFA3
SEGMENT = 0x18538067
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TRACK_TYPE = 0x83
CODEC_ID = 0x86
CODEC_PRIVATE = 0x63A2
CLUSTER = 0x1F43B675
SIMPLE_BLOCK = 0xA3
BLOCK_GROUP = 0xA0
_UNKNOWN = -1  # an element whose size the muxer left open


def previewed(spec):
    # type: (Spec) -> Optional[VideoOutput]
    """The output a job previews (its first video), or None: no preview was asked
    for, the job has no video, or it is a chunk (chunked jobs have none)."""
    if not spec.preview or spec.intermediate:
        return None
    for output in spec.outputs:
        if isinstance(output, VideoOutput):
            return output
    return None


def file_name(output):
    # type: (VideoOutput) -> str
    """``partial.preview.mp4``: no output's ``NAME.EXT`` (names have no dot)."""
    return FILE_PREFIX + output.extension


def tee_args(output, final, preview):
    # type: (VideoOutput, str, str) -> List[str]
    """What ends an output's arguments instead of ``-f FORMAT FINAL``: both files
    from the one encode.  The preview's own failure (its disk, say) is ignored, so
    it can never cost the final video.

    The encoder is asked for global headers, as the mp4 and webm muxers
    would ask by themselves (the tee muxer cannot): the final file's bytes
    stay those of an encode without a preview.
    """
    if output.content_type == "video/mp4":
        final_options = "f=mp4:movflags=+faststart"
        preview_options = ("f=mp4:movflags=+frag_keyframe+empty_moov+default_base_moof"
                           ":frag_duration=%d" % FRAGMENT_MICROSECONDS)
    else:
        final_options = "f=webm"
        preview_options = "f=webm:live=1:cluster_time_limit=%d:cluster_size_limit=%d" % (
            FRAGMENT_MICROSECONDS // 1000, CLUSTER_BYTES)
    return ["-flags:v", "+global_header", "-f", "tee",
            "[%s]%s|[%s:onfail=ignore]%s" % (final_options, tee_escape(final),
                                             preview_options, tee_escape(preview))]


def tee_escape(path):
    # type: (str) -> str
    """A file name as one tee slave takes it: ffmpeg splits the list at ``|``,
    unquotes ``'`` and ``\\`` and trims white space, so each of those is escaped."""
    return "".join("\\" + char if char in "\\'|" or char.isspace() else char
                   for char in path)


class PreviewReader(object):
    """How much of a growing preview file is complete, looked at again and again."""

    def __init__(self, path, content_type, flush=False):
        # type: (str, str, bool) -> None
        self.path = path
        self.content_type = content_type
        # On a filesystem other hosts read (a Slurm job's, over NFS), bytes are
        # flushed to it before they are reported: readers elsewhere then find them.
        self.flush = flush
        self.offset = 0  # parsed up to here: the end of the last whole element
        self.size = 0  # the end of the last whole fragment: what a client may read
        self.frames = 0  # the frames of the fragments up to ``size``
        self.codec = None  # type: Optional[str]  # from the header, once it is whole
        self.broken = False  # not a file this reader understands: no preview
        self._in_segment = False  # WebM: past the EBML header and the Segment's own header

    def look(self):
        # type: () -> Optional[Dict[str, Any]]
        """The status's ``preview``: null until there is a whole fragment to play,
        then ``{"path", "frames", "size", "content_type", "mime"}``."""
        if not self.broken:
            try:
                with open(self.path, "rb") as handle:
                    end = os.fstat(handle.fileno()).st_size
                    reported = self.size
                    if self.content_type == "video/mp4":
                        self._mp4(handle, end)
                    else:
                        self._webm(handle, end)
                    if self.flush and self.size > reported:
                        os.fsync(handle.fileno())
            except OSError:
                pass  # not there yet (or gone already): what was known stands
            except ValueError:
                self.broken = True
        if self.broken or not self.frames or self.codec is None:
            return None
        return {"path": self.path, "frames": self.frames, "size": self.size,
                "content_type": self.content_type,
                "mime": '%s; codecs="%s"' % (self.content_type, self.codec)}

    # -- fragmented MP4 ---------------------------------------------------------

    def _mp4(self, handle, end):
        # type: (BinaryIO, int) -> None
        """Whole top-level boxes from ``offset``: the ``moov`` gives the codec, each
        ``moof`` its runs' samples, counted once the ``mdat`` after it is whole."""
        offset = self.offset
        while True:
            header = _read_at(handle, offset, 16)
            if len(header) < 8:
                return
            size, kind, skip = _box_header(header)
            if size == 0:
                return  # runs to the end of a file that is still being written
            if size < skip:
                raise ValueError("a box smaller than its header")
            if offset + size > end:
                return
            if kind == b"moov":
                self.codec = _mp4_codec(_read_at(handle, offset + skip, size - skip))
                self.size = max(self.size, offset + size)
            elif kind == b"moof":
                # A fragment counts once its mdat is whole too (till then this moof
                # is parsed again at each look: it is small).
                following = _read_at(handle, offset + size, 16)
                if len(following) < 8:
                    return
                data_size, data_kind, _ = _box_header(following)
                if data_kind != b"mdat":
                    raise ValueError("a moof without its mdat")
                if data_size == 0 or offset + size + data_size > end:
                    return
                self.frames += _samples(_read_at(handle, offset + skip, size - skip))
                offset += size + data_size
                self.size = offset
                self.offset = offset
                continue
            offset += size
            self.offset = offset

    # -- live WebM --------------------------------------------------------------

    def _webm(self, handle, end):
        # type: (BinaryIO, int) -> None
        """Whole elements from ``offset``: the EBML header, into the Segment, its
        Tracks (the codec), then each Cluster's blocks once the cluster is whole."""
        offset = self.offset
        while True:
            header = _read_at(handle, offset, 12)
            element = _ebml_header(header)
            if element is None:
                return
            ident, size, skip = element
            if not self._in_segment:
                if ident == EBML and size != _UNKNOWN:
                    if offset + skip + size > end:
                        return
                    offset += skip + size
                elif ident == SEGMENT:
                    offset += skip  # its children follow; its size may be open (live)
                    self._in_segment = True
                else:
                    raise ValueError("not a Matroska file")
                self.offset = offset
                continue
            if size == _UNKNOWN:
                return  # an open cluster: its end shows only by what follows
            if offset + skip + size > end:
                return
            if ident == TRACKS:
                self.codec = _webm_codec(_read_at(handle, offset + skip, size))
                self.size = max(self.size, offset + skip + size)
            elif ident == CLUSTER:
                self.frames += _blocks(handle, offset + skip, offset + skip + size)
                self.size = offset + skip + size
            offset += skip + size
            self.offset = offset


def _read_at(handle, offset, length):
    # type: (BinaryIO, int, int) -> bytes
    handle.seek(offset)
    return handle.read(length)


def _box_header(data):
    # type: (bytes) -> Tuple[int, bytes, int]
    """An MP4 box's size (0: to the end of the file), type and header length."""
    size, kind = struct.unpack(">I4s", data[:8])
    if size == 1:
        if len(data) < 16:
            return 0, kind, 16  # the large size is not there yet
        return struct.unpack(">Q", data[8:16])[0], kind, 16
    return size, kind, 8


def _boxes(data):
    # type: (bytes) -> List[Tuple[bytes, bytes]]
    """The boxes in ``data`` (a box's contents), as (type, contents)."""
    found = []
    offset = 0
    while offset + 8 <= len(data):
        size, kind, skip = _box_header(data[offset:offset + 16])
        if size == 0:
            size = len(data) - offset
        if size < skip or offset + size > len(data):
            raise ValueError("a box that overruns its parent")
        found.append((kind, data[offset + skip:offset + size]))
        offset += size
    return found


def _find(data, path):
    # type: (bytes, Tuple[bytes, ...]) -> List[bytes]
    """The contents of every box at ``path`` below ``data``."""
    level = [data]
    for kind in path:
        level = [inner for outer in level for found, inner in _boxes(outer) if found == kind]
    return level


def _samples(moof):
    # type: (bytes) -> int
    """The samples of every run (``trun``) of a ``moof``'s track fragments."""
    total = 0
    for run in _find(moof, (b"traf", b"trun")):
        if len(run) < 8:
            raise ValueError("a short trun")
        total += struct.unpack(">I", run[4:8])[0]
    return total


def _mp4_codec(moov):
    # type: (bytes) -> Optional[str]
    """The RFC 6381 codec string of the video track's sample entry: ``avc1.PPCCLL``
    from its avcC, ``av01.P.LLT.DD`` from its av1C."""
    for stsd in _find(moov, (b"trak", b"mdia", b"minf", b"stbl", b"stsd")):
        # A full box with an entry count; a visual sample entry has 78 bytes of
        # fields before its own boxes.
        for kind, entry in _boxes(stsd[8:]):
            config = dict(_boxes(entry[78:])) if len(entry) > 78 else {}
            if kind in (b"avc1", b"avc3") and len(config.get(b"avcC", b"")) >= 4:
                avcc = bytearray(config[b"avcC"])
                return "%s.%02x%02x%02x" % (kind.decode("ascii"), avcc[1], avcc[2], avcc[3])
            if kind == b"av01" and len(config.get(b"av1C", b"")) >= 3:
                return av1_codec(config[b"av1C"])
    return None


def av1_codec(config):
    # type: (bytes) -> str
    """``av01.P.LLT.DD`` from an AV1CodecConfigurationRecord (av1C; Matroska's
    CodecPrivate too)."""
    data = bytearray(config)
    profile, level = data[1] >> 5, data[1] & 0x1F
    tier = "H" if data[2] & 0x80 else "M"
    depth = (12 if data[2] & 0x20 else 10) if data[2] & 0x40 else 8
    return "av01.%d.%02d%s.%02d" % (profile, level, tier, depth)


def _ebml_vint(data, offset, keep_marker):
    # type: (bytearray, int, bool) -> Optional[Tuple[int, int]]
    """An EBML variable-length integer at ``offset``: its value and length, or None
    when ``data`` ends first.  A size of all ones is ``_UNKNOWN``."""
    if offset >= len(data):
        return None
    first = data[offset]
    length = 1
    mask = 0x80
    while length <= 8 and not first & mask:
        length += 1
        mask >>= 1
    if length > 8:
        raise ValueError("a malformed EBML number")
    if offset + length > len(data):
        return None
    value = first if keep_marker else first & (mask - 1)
    for byte in data[offset + 1:offset + length]:
        value = (value << 8) | byte
    if not keep_marker and value == (1 << (7 * length)) - 1:
        value = _UNKNOWN
    return value, length


def _ebml_header(data):
    # type: (bytes) -> Optional[Tuple[int, int, int]]
    """An element's id, size and header length, or None when ``data`` ends first."""
    buffer = bytearray(data)
    if buffer and buffer[0] < 0x10:
        raise ValueError("an EBML id longer than 4 bytes")
    ident = _ebml_vint(buffer, 0, True)
    if ident is None:
        return None
    size = _ebml_vint(buffer, ident[1], False)
    if size is None:
        return None
    return ident[0], size[0], ident[1] + size[1]


def _elements(data):
    # type: (bytes) -> List[Tuple[int, bytes]]
    """The child elements of an element's contents, as (id, contents)."""
    found = []
    offset = 0
    while offset < len(data):
        element = _ebml_header(data[offset:offset + 12])
        if element is None or element[1] == _UNKNOWN \
                or offset + element[2] + element[1] > len(data):
            raise ValueError("an element that overruns its parent")
        ident, size, skip = element
        found.append((ident, data[offset + skip:offset + skip + size]))
        offset += skip + size
    return found


def _webm_codec(tracks):
    # type: (bytes) -> Optional[str]
    """The codec string of the video track: ``vp9`` (``vp09.PP.LL.DD`` when the
    CodecPrivate has VP9's profile, level and bit depth), ``av01.…``, ``vp8``."""
    for ident, entry in _elements(tracks):
        if ident != TRACK_ENTRY:
            continue
        fields = dict(_elements(entry))
        if _uint(fields.get(TRACK_TYPE, b"")) != 1:
            continue  # not video
        codec = fields.get(CODEC_ID, b"").decode("ascii", "replace")
        private = fields.get(CODEC_PRIVATE, b"")
        if codec == "V_VP9":
            return vp9_codec(private)
        if codec == "V_AV1" and len(private) >= 3:
            return av1_codec(private)
        if codec == "V_VP8":
            return "vp8"
    return None


def _uint(data):
    # type: (bytes) -> int
    return int.from_bytes(data, "big")


def vp9_codec(private):
    # type: (bytes) -> str
    """``vp09.PP.LL.DD`` from VP9's CodecPrivate features (id 1 profile, 2 level,
    3 bit depth), or plain ``vp9`` when the muxer wrote none (ffmpeg before 6)."""
    features = {}  # type: Dict[int, int]
    data = bytearray(private)
    offset = 0
    while offset + 2 <= len(data):
        ident, length = data[offset], data[offset + 1]
        if length == 1 and offset + 3 <= len(data):
            features[ident] = data[offset + 2]
        offset += 2 + length
    if all(features.get(key) for key in (2, 3)) and 1 in features:
        return "vp09.%02d.%02d.%02d" % (features[1], features[2], features[3])
    return "vp9"


def _blocks(handle, start, end):
    # type: (BinaryIO, int, int) -> int
    """The frames of a whole cluster: its SimpleBlocks and BlockGroups, read by their
    headers only."""
    count = 0
    offset = start
    while offset < end:
        element = _ebml_header(_read_at(handle, offset, 12))
        if element is None or element[1] == _UNKNOWN:
            raise ValueError("a cluster that ends early")
        ident, size, skip = element
        if ident in (SIMPLE_BLOCK, BLOCK_GROUP):
            count += 1
        offset += skip + size
    if offset != end:
        raise ValueError("a block that overruns its cluster")
    return count
