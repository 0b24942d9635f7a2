"""The encode spec: what one job makes, as typed records.

``options.build_spec`` turns a validated create-video request into a
:class:`Spec`; the agent writes it to the job's ``spec.json``
(:meth:`Spec.to_json`) and the runner reads it back (:meth:`Spec.from_json`).
The file is internal to the agent (the runner always comes from the same
zipapp as the agent that wrote it); docs/protocol.md describes its fields.
"""

from typing import Any, Dict, List, Optional, Tuple  # noqa: F401 (type comments)


class Record(object):
    """Equality and repr from the ``__slots__`` of the class and its bases."""

    __slots__ = ()  # type: Tuple[str, ...]

    def _values(self):
        # type: () -> List[Tuple[str, Any]]
        names = []  # type: List[str]
        for cls in reversed(type(self).__mro__):
            names.extend(getattr(cls, "__slots__", ()))
        return [(name, getattr(self, name)) for name in names]

    def __eq__(self, other):
        # type: (object) -> bool
        return isinstance(other, Record) and type(other) is type(self) \
            and other._values() == self._values()

    def __repr__(self):
        # type: () -> str
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % item for item in self._values()))


class Frame(Record):
    """One image of a source, and for how many output frames it is shown."""

    __slots__ = ("path", "kind", "width", "height", "layout", "repeat")

    def __init__(self, path, kind, width, height, layout, repeat=1):
        # type: (str, str, int, int, str, int) -> None
        self.path = path
        self.kind = kind  # "png" or "jpeg"
        self.width = width
        self.height = height
        self.layout = layout  # what decides the decoder's pixel format (images.ImageInfo)
        self.repeat = repeat

    def to_json(self):
        # type: () -> Dict[str, Any]
        return {"path": self.path, "kind": self.kind, "width": self.width,
                "height": self.height, "layout": self.layout, "repeat": self.repeat}

    @classmethod
    def from_json(cls, data):
        # type: (Dict[str, Any]) -> Frame
        return cls(data["path"], data["kind"], data["width"], data["height"], data["layout"],
                   data["repeat"])


class Canvas(Record):
    """The frame every image is fitted onto, and every output starts from."""

    __slots__ = ("width", "height", "fit", "background")

    def __init__(self, width, height, fit, background):
        # type: (int, int, str, str) -> None
        self.width = width
        self.height = height
        self.fit = fit  # contain, cover or stretch
        self.background = background  # as ffmpeg writes colours: black, 0x336699

    def to_json(self):
        # type: () -> Dict[str, Any]
        return {"width": self.width, "height": self.height, "fit": self.fit,
                "background": self.background}

    @classmethod
    def from_json(cls, data):
        # type: (Dict[str, Any]) -> Canvas
        return cls(data["width"], data["height"], data["fit"], data["background"])


class Region(Record):
    """Where a layout source goes on the canvas, in canvas pixels; ``z`` orders overlaps."""

    __slots__ = ("x", "y", "z", "width", "height", "fit", "background")

    def __init__(self, x, y, z, width, height, fit, background):
        # type: (int, int, int, int, int, str, str) -> None
        self.x = x
        self.y = y
        self.z = z
        self.width = width
        self.height = height
        self.fit = fit
        self.background = background

    def to_json(self):
        # type: () -> Dict[str, Any]
        return {"x": self.x, "y": self.y, "z": self.z, "width": self.width,
                "height": self.height, "fit": self.fit, "background": self.background}

    @classmethod
    def from_json(cls, data):
        # type: (Dict[str, Any]) -> Region
        return cls(data["x"], data["y"], data["z"], data["width"], data["height"], data["fit"],
                   data["background"])


class Source(Record):
    """An image sequence: the only one (no region), or one cell or region of a layout."""

    __slots__ = ("frames", "region", "label")

    def __init__(self, frames, region=None, label=None):
        # type: (List[Frame], Optional[Region], Optional[str]) -> None
        self.frames = frames
        self.region = region
        self.label = label  # text drawn in the region's corner

    def frame_count(self):
        # type: () -> int
        """Output frames this source fills (each image held for its ``repeat``)."""
        return sum(frame.repeat for frame in self.frames)

    def to_json(self):
        # type: () -> Dict[str, Any]
        return {"frames": [frame.to_json() for frame in self.frames],
                "region": self.region.to_json() if self.region is not None else None,
                "label": self.label}

    @classmethod
    def from_json(cls, data):
        # type: (Dict[str, Any]) -> Source
        region = data["region"]
        return cls([Frame.from_json(frame) for frame in data["frames"]],
                   Region.from_json(region) if region is not None else None, data["label"])


class Output(Record):
    """One file the job writes; the kinds below add what they need.

    ``width`` and ``height`` are the size of what the output's encoder gets
    (a contact sheet's cell); :meth:`size` is the size of the file's image.
    """

    kind = ""
    __slots__ = ("name", "content_type", "extension", "width", "height", "fit", "background")

    def __init__(self, name, content_type, extension, width, height, fit, background):
        # type: (str, str, str, int, int, str, str) -> None
        self.name = name
        self.content_type = content_type
        self.extension = extension  # the output file is NAME.EXTENSION
        self.width = width
        self.height = height
        self.fit = fit
        self.background = background

    def size(self):
        # type: () -> Tuple[int, int]
        return self.width, self.height

    def _common_json(self):
        # type: () -> Dict[str, Any]
        return {"name": self.name, "kind": self.kind, "content_type": self.content_type,
                "extension": self.extension, "width": self.width, "height": self.height,
                "fit": self.fit, "background": self.background}

    @staticmethod
    def _common_args(data):
        # type: (Dict[str, Any]) -> Dict[str, Any]
        return {key: data[key] for key in ("name", "content_type", "extension", "width",
                                           "height", "fit", "background")}

    def to_json(self):
        # type: () -> Dict[str, Any]
        return self._common_json()

    @classmethod
    def from_json(cls, data):
        # type: (Dict[str, Any]) -> Output
        """The output of the kind ``data["kind"]`` names."""
        return OUTPUT_KINDS[data["kind"]].from_json(data)


class VideoOutput(Output):
    kind = "video"
    __slots__ = ("codec", "encoder", "crf", "bitrate", "preset", "speed", "pixel_format", "gop")

    def __init__(self, name, content_type, extension, width, height, fit, background,
                 codec, encoder, crf, bitrate, preset, speed, pixel_format, gop):
        # type: (str, str, str, int, int, str, str, str, str, Optional[int], Optional[str], Optional[str], Optional[int], str, Optional[int]) -> None  # noqa: E501
        Output.__init__(self, name, content_type, extension, width, height, fit, background)
        self.codec = codec  # h264, vp9 or av1
        self.encoder = encoder  # the ffmpeg encoder for it, e.g. libx264
        self.crf = crf  # None with a bitrate
        self.bitrate = bitrate  # bits per second as a string, or None
        self.preset = preset  # h264 only
        self.speed = speed  # vp9 and av1 only
        self.pixel_format = pixel_format
        self.gop = gop

    def to_json(self):
        # type: () -> Dict[str, Any]
        data = self._common_json()
        data.update({"codec": self.codec, "encoder": self.encoder, "crf": self.crf,
                     "bitrate": self.bitrate, "preset": self.preset, "speed": self.speed,
                     "pixel_format": self.pixel_format, "gop": self.gop})
        return data

    @classmethod
    def from_json(cls, data):
        # type: (Dict[str, Any]) -> VideoOutput
        return cls(codec=data["codec"], encoder=data["encoder"], crf=data["crf"],
                   bitrate=data["bitrate"], preset=data["preset"], speed=data["speed"],
                   pixel_format=data["pixel_format"], gop=data["gop"],
                   **cls._common_args(data))


class PosterOutput(Output):
    """One frame as a still image."""

    kind = "poster"
    __slots__ = ("frame",)

    def __init__(self, name, content_type, extension, width, height, fit, background, frame):
        # type: (str, str, str, int, int, str, str, int) -> None
        Output.__init__(self, name, content_type, extension, width, height, fit, background)
        self.frame = frame  # its number, from 0

    def to_json(self):
        # type: () -> Dict[str, Any]
        data = self._common_json()
        data["frame"] = self.frame
        return data

    @classmethod
    def from_json(cls, data):
        # type: (Dict[str, Any]) -> PosterOutput
        return cls(frame=data["frame"], **cls._common_args(data))


class ContactSheetOutput(Output):
    """Frames tiled ``columns`` x ``rows`` into one image; ``width``/``height`` are a cell's."""

    kind = "contact-sheet"
    __slots__ = ("frames", "columns", "rows")

    def __init__(self, name, content_type, extension, width, height, fit, background,
                 frames, columns, rows):
        # type: (str, str, str, int, int, str, str, List[int], int, int) -> None
        Output.__init__(self, name, content_type, extension, width, height, fit, background)
        self.frames = frames  # frame numbers, ascending
        self.columns = columns
        self.rows = rows

    def size(self):
        # type: () -> Tuple[int, int]
        return self.width * self.columns, self.height * self.rows

    def to_json(self):
        # type: () -> Dict[str, Any]
        data = self._common_json()
        data.update({"frames": self.frames, "columns": self.columns, "rows": self.rows})
        return data

    @classmethod
    def from_json(cls, data):
        # type: (Dict[str, Any]) -> ContactSheetOutput
        return cls(frames=data["frames"], columns=data["columns"], rows=data["rows"],
                   **cls._common_args(data))


class GifOutput(Output):
    kind = "gif"
    __slots__ = ("loop", "frame_rate", "step")

    def __init__(self, name, content_type, extension, width, height, fit, background,
                 loop, frame_rate, step):
        # type: (str, str, str, int, int, str, str, int, str, int) -> None
        Output.__init__(self, name, content_type, extension, width, height, fit, background)
        self.loop = loop  # GIF loop count: 0 for ever, -1 once
        self.frame_rate = frame_rate  # as Spec.frame_rate
        self.step = step

    def to_json(self):
        # type: () -> Dict[str, Any]
        data = self._common_json()
        data.update({"loop": self.loop, "frame_rate": self.frame_rate, "step": self.step})
        return data

    @classmethod
    def from_json(cls, data):
        # type: (Dict[str, Any]) -> GifOutput
        return cls(loop=data["loop"], frame_rate=data["frame_rate"], step=data["step"],
                   **cls._common_args(data))


OUTPUT_KINDS = {kind.kind: kind for kind in (VideoOutput, PosterOutput, ContactSheetOutput,
                                             GifOutput)}


class BurnIn(Record):
    """Text drawn on every frame: the frame number and/or the image's file name."""

    __slots__ = ("frame_number", "filename", "position", "size")

    def __init__(self, frame_number, filename, position, size):
        # type: (bool, bool, str, Optional[int]) -> None
        self.frame_number = frame_number
        self.filename = filename
        self.position = position  # top-left, top-right, bottom-left or bottom-right
        self.size = size  # font size in pixels; None for the default

    def to_json(self):
        # type: () -> Dict[str, Any]
        return {"frame-number": self.frame_number, "filename": self.filename,
                "position": self.position, "size": self.size}

    @classmethod
    def from_json(cls, data):
        # type: (Dict[str, Any]) -> BurnIn
        return cls(data["frame-number"], data["filename"], data["position"], data["size"])


class Placement(Record):
    """Where the job's work runs: ``local`` (a detached process on the agent's host)
    or ``slurm`` (a batch job), with the batch job's resources (Slurm's own words:
    ``time`` such as ``"00:30:00"``, ``mem`` such as ``"4G"``) and the extra
    ``sbatch`` options the server's administrator set for the host."""

    __slots__ = ("kind", "partition", "time", "cpus", "mem", "account", "qos", "options",
                 "parallel")

    def __init__(self, kind="local", partition=None, time=None, cpus=None, mem=None,
                 account=None, qos=None, options=None, parallel=None):
        # type: (str, Optional[str], Optional[str], Optional[int], Optional[str], Optional[str], Optional[str], Optional[List[str]], Optional[int]) -> None  # noqa: E501
        self.kind = kind
        self.partition = partition
        self.time = time
        self.cpus = cpus
        self.mem = mem
        self.account = account
        self.qos = qos
        self.options = list(options or [])
        self.parallel = parallel  # a chunked job's tasks at once (Slurm's array %M)

    def to_json(self):
        # type: () -> Dict[str, Any]
        return {"kind": self.kind, "partition": self.partition, "time": self.time,
                "cpus": self.cpus, "mem": self.mem, "account": self.account,
                "qos": self.qos, "options": list(self.options), "parallel": self.parallel}

    @classmethod
    def from_json(cls, data):
        # type: (Optional[Dict[str, Any]]) -> Placement
        if not data:
            return cls()  # a spec written before placements: the local executor
        return cls(data.get("kind", "local"), data.get("partition"), data.get("time"),
                   data.get("cpus"), data.get("mem"), data.get("account"), data.get("qos"),
                   data.get("options"), data.get("parallel"))


class Chunking(Record):
    """How a job's output timeline is split: ``ranges`` of output frames ``[start,
    end)``, in timeline order (one range: not split); ``requested`` is what the
    request asked for (a number or ``"auto"``), ``note`` why the job runs with
    fewer chunks than that (or unchunked), ``parallel`` how many run at once."""

    __slots__ = ("ranges", "requested", "note", "parallel")

    def __init__(self, ranges=None, requested=1, note=None, parallel=None):
        # type: (Optional[List[List[int]]], Any, Optional[str], Optional[int]) -> None
        self.ranges = [list(item) for item in ranges or []]
        self.requested = requested
        self.note = note
        self.parallel = parallel

    def count(self):
        # type: () -> int
        return max(1, len(self.ranges))

    def to_json(self):
        # type: () -> Dict[str, Any]
        return {"ranges": [list(item) for item in self.ranges], "requested": self.requested,
                "note": self.note, "parallel": self.parallel}

    @classmethod
    def from_json(cls, data):
        # type: (Optional[Dict[str, Any]]) -> Chunking
        if not data:
            return cls()
        return cls(data.get("ranges"), data.get("requested", 1), data.get("note"),
                   data.get("parallel"))


class Spec(Record):
    """Everything the runner needs to make one job's outputs.

    ``job``, ``ffmpeg``, ``ffmpeg_fps_mode`` and ``nice`` are set by the job
    store when the job is created; the rest comes from the request.
    """

    __slots__ = ("frame_rate", "frames_total", "canvas", "sources", "outputs", "burn_in",
                 "notes", "job", "ffmpeg", "ffmpeg_fps_mode", "nice", "placement", "chunks",
                 "threads", "frame_offset", "intermediate", "preview")

    def __init__(self, frame_rate, frames_total, canvas, sources, outputs, burn_in=None,
                 notes=None, job="", ffmpeg="", ffmpeg_fps_mode=False, nice=0,
                 placement=None, chunks=None, threads=None, frame_offset=0,
                 intermediate=False, preview=False):
        # type: (str, int, Canvas, List[Source], List[Output], Optional[BurnIn], Optional[List[str]], str, str, bool, int, Optional[Placement], Optional[Chunking], Optional[int], int, bool, bool) -> None  # noqa: E501
        self.frame_rate = frame_rate  # exact: "25", "30000/1001", "1/5"
        self.frames_total = frames_total
        self.canvas = canvas
        self.sources = sources
        self.outputs = outputs  # in output order; never empty
        self.burn_in = burn_in
        self.notes = notes if notes is not None else []  # sizes changed rather than refused
        self.job = job
        self.ffmpeg = ffmpeg  # the path of the ffmpeg to run
        self.ffmpeg_fps_mode = ffmpeg_fps_mode  # whether it has -fps_mode (5.1 and later)
        self.nice = nice  # the CPU priority the runner sets for itself, and so for ffmpeg
        self.placement = placement or Placement()  # where the work runs
        self.chunks = chunks or Chunking()  # how the frames are split (one range: not)
        self.threads = threads  # ffmpeg's -threads for each encode; None: ffmpeg's choice
        # A chunk's spec (agent/chunks.py): where its first frame is in the whole
        # video, and that its videos are intermediates (IVF, Annex B) for the join.
        self.frame_offset = frame_offset
        self.intermediate = intermediate
        # Whether the first video is also written as a growing preview (agent/preview.py).
        self.preview = preview

    def composed(self):
        # type: () -> bool
        """Whether the sources are laid out on the canvas (a layout) or one fills it."""
        return len(self.sources) > 1 or self.sources[0].region is not None

    def to_json(self):
        # type: () -> Dict[str, Any]
        return {
            "frame_rate": self.frame_rate,
            "frames_total": self.frames_total,
            "canvas": self.canvas.to_json(),
            "sources": [source.to_json() for source in self.sources],
            "outputs": [output.to_json() for output in self.outputs],
            "burn_in": self.burn_in.to_json() if self.burn_in is not None else None,
            "notes": list(self.notes),
            "job": self.job,
            "ffmpeg": self.ffmpeg,
            "ffmpeg_fps_mode": self.ffmpeg_fps_mode,
            "nice": self.nice,
            "placement": self.placement.to_json(),
            "chunks": self.chunks.to_json(),
            "threads": self.threads,
            "frame_offset": self.frame_offset,
            "intermediate": self.intermediate,
            "preview": self.preview,
        }

    @classmethod
    def from_json(cls, data):
        # type: (Dict[str, Any]) -> Spec
        burn_in = data["burn_in"]
        return cls(data["frame_rate"], data["frames_total"], Canvas.from_json(data["canvas"]),
                   [Source.from_json(source) for source in data["sources"]],
                   [Output.from_json(output) for output in data["outputs"]],
                   BurnIn.from_json(burn_in) if burn_in is not None else None,
                   list(data["notes"]), data["job"], data["ffmpeg"], data["ffmpeg_fps_mode"],
                   data["nice"], Placement.from_json(data.get("placement")),
                   Chunking.from_json(data.get("chunks")), data.get("threads"),
                   data.get("frame_offset", 0), data.get("intermediate", False),
                   data.get("preview", False))
