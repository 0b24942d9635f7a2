"""Thumbnails in batches: many images shrunk to JPEG by few ffmpeg runs, kept in a
bounded cache in the work directory that several agents may share.

A cache entry (``thumbs/HASH.jpg``) is named by a hash of the image's real path,
size and modification time and the thumbnail's size, so an image that changes
gets new entries and the old ones age out.  Entries are written under a
temporary name (``….part``) and renamed into place, so a reader never sees half
of one.  When the entries pass the cap they are trimmed oldest first, by
modification time, which a hit refreshes.
"""

import base64
import hashlib
import json
import os
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Tuple  # noqa: F401 (type comments)

from . import ffmpeg, files, protocol

MAX_PATHS = 200
MIN_SIZE = 16
MAX_SIZE = 1024
DEFAULT_SIZE = 96
CONTENT_TYPE = "image/jpeg"
QUALITY = 4  # ffmpeg's -q:v for mjpeg, 2 (best) to 31
# What a conversion makes, in every entry's name: change it and the cache starts afresh.
RECIPE = "scale=lanczos mjpeg q=%d yuvj444p" % QUALITY

# One ffmpeg run converts many images (a process start costs more than shrinking a
# small frame), two runs at a time.  ffmpeg reads every input whole before it
# starts, so a run is bounded by its files' total size too.  Measured in
# bench/browse.py.
GROUP_INPUTS = 48
GROUP_BYTES = 64 << 20
SPLIT_FROM = 16  # a batch of fewer misses is converted by one run
PARALLEL_RUNS = 2
BATCH_SECONDS = 120.0  # for all of a request's conversions

CACHE_DIR = "thumbs"
CACHE_CAP = 64 << 20  # bytes
TRIM_TO = 0.75  # a trim leaves the entries at this fraction of the cap
RESCAN_SECONDS = 10.0  # while storing, count every agent's entries this often
PART_MAX_AGE = 3600.0  # a temporary this old was left by an agent that died


def fit_within(width, height, args):
    # type: (int, int, Dict[str, Any]) -> Tuple[int, int]
    """Shrink (never enlarge) to honour max-size, max-width and max-height."""
    scale = 1.0
    for key in ("max-size", "max-width", "max-height"):
        value = args.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise protocol.AgentError(protocol.BAD_REQUEST,
                                      "%s must be a positive integer." % key, {"field": key})
        if key == "max-size":
            current = max(width, height)
        elif key == "max-width":
            current = width
        else:
            current = height
        scale = min(scale, float(value) / current)
    if scale >= 1.0:
        return width, height
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def conversion_error(path, stderr):
    # type: (str, str) -> protocol.AgentError
    """Why ffmpeg could not convert the image at ``path``: its disk, else the image."""
    details = {"path": path, "stderr": stderr[-2000:]}
    if "No space left on device" in stderr:
        return protocol.AgentError(protocol.NO_SPACE, "The remote disk is full: no room to "
                                   "convert %s." % path, dict(details, hint="Free space in "
                                   "the agent's work directory on the remote host."))
    reasons = [re.sub(r"^\[[^\]]*\]\s*", "", line).strip() for line in stderr.splitlines()
               if line.strip()]
    return protocol.AgentError(protocol.UNDECODABLE_IMAGE, "Cannot decode the image %s%s."
                               % (path, " (%s)" % reasons[0] if reasons else ""), details)


def batch_argv(ffmpeg_path, conversions):
    # type: (str, List[Tuple[str, int, int, str]]) -> List[str]
    """One ffmpeg run that shrinks each ``(source, width, height, output)`` to a JPEG:
    input N through its own scale filter to output N (as ``ffmpeg.thumbnail_argv``
    does for one).  One thread per decoder, filter and encoder: the images are
    small and many, and a host with 64 cores would otherwise start 64 threads for
    each input."""
    argv = [ffmpeg_path, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-filter_complex_threads", "1"]
    for source, _, _, _ in conversions:
        argv += ["-threads", "1", "-f", "image2", "-pattern_type", "none", "-i", source]
    argv += ["-filter_complex", ";".join(
        "[%d:v]scale=%d:%d:flags=lanczos[o%d]" % (index, width, height, index)
        for index, (_, width, height, _) in enumerate(conversions))]
    for index, (_, _, _, output) in enumerate(conversions):
        # -update 1: the output name is used as it is (a % in it is no pattern).
        argv += ["-map", "[o%d]" % index, "-frames:v", "1", "-threads", "1",
                 "-q:v", str(QUALITY), "-pix_fmt", "yuvj444p", "-c:v", "mjpeg",
                 "-f", "image2", "-update", "1", output]
    return argv


class Conversion(object):
    """One image to shrink: where its entry goes, and what became of it."""

    __slots__ = ("source", "size", "mtime_ns", "width", "height", "name", "part", "data",
                 "error")

    def __init__(self, source, stat, width, height, name):
        # type: (str, os.stat_result, int, int, str) -> None
        self.source = source
        self.size = stat.st_size
        self.mtime_ns = stat.st_mtime_ns
        self.width = width
        self.height = height
        self.name = name
        self.part = ""
        self.data = None  # type: Optional[bytes]
        self.error = None  # type: Optional[protocol.AgentError]


def plan(conversions, parallel):
    # type: (List[Conversion], int) -> List[List[Conversion]]
    """The ffmpeg runs for ``conversions``: as few as the group bounds allow, and at
    least ``parallel`` once there are enough to share, about equal in size."""
    count = len(conversions)
    runs = -(-count // GROUP_INPUTS)
    if count >= SPLIT_FROM and parallel > 1:  # whole rounds of parallel runs
        runs = -(-max(runs, parallel) // parallel) * parallel
    share = -(-count // max(1, runs))
    groups = []  # type: List[List[Conversion]]
    group = []  # type: List[Conversion]
    total = 0
    for conversion in conversions:
        if group and (len(group) >= share or total + conversion.size > GROUP_BYTES):
            groups.append(group)
            group, total = [], 0
        group.append(conversion)
        total += conversion.size
    if group:
        groups.append(group)
    return groups


def _remove(path):
    # type: (str) -> None
    try:
        os.unlink(path)
    except OSError:
        pass  # gone already: another agent trimmed it


def _looks_whole(data):
    # type: (bytes) -> bool
    return data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"


class ThumbnailCache(object):
    """``thumbs/`` of a work directory: entries by name, written whole, kept under a cap."""

    def __init__(self, directory, cap=CACHE_CAP):
        # type: (str, int) -> None
        self.directory = directory
        self.cap = cap
        self._lock = threading.Lock()
        self._trimming = threading.Lock()
        self._estimate = None  # type: Optional[int]  # bytes at the last scan, plus ours since
        self._scanned = 0.0
        self._during = None  # type: Optional[int]  # bytes stored while a scan runs

    def name(self, real_path, stat, width, height):
        # type: (str, os.stat_result, int, int) -> str
        """The entry of ``real_path`` as ``stat`` found it, shrunk to ``width``x``height``."""
        key = json.dumps([RECIPE, real_path, stat.st_size, stat.st_mtime_ns, width, height])
        return hashlib.sha256(key.encode("ascii")).hexdigest()[:40] + ".jpg"

    def path(self, name):
        # type: (str) -> str
        return os.path.join(self.directory, name)

    def read(self, name):
        # type: (str) -> Optional[bytes]
        """The entry's bytes, refreshed as recently used; None when there is none."""
        path = self.path(name)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        if not _looks_whole(data):  # not written by us: drop it
            _remove(path)
            return None
        try:
            os.utime(path, None)
        except OSError:
            pass  # trimmed meanwhile, or a read-only cache: a hit all the same
        return data

    def part(self, name):
        # type: (str) -> str
        """A temporary name for a new entry, unique to this agent and call."""
        self.prepare()
        return self.path("%s.%d-%s.part" % (name[:-4], os.getpid(), os.urandom(4).hex()))

    def prepare(self):
        # type: () -> None
        """Make the directory (again, if someone removed it)."""
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except OSError:
            pass  # the conversion says why

    def store(self, part, name):
        # type: (str, str) -> None
        """Move a finished temporary into place, then trim when due."""
        try:
            size = os.path.getsize(part)
            os.rename(part, self.path(name))
        except OSError:
            _remove(part)
            return
        with self._lock:
            if self._estimate is not None:
                self._estimate += size
            if self._during is not None:
                self._during += size
            due = self._estimate is None or self._estimate > self.cap \
                or time.monotonic() - self._scanned > RESCAN_SECONDS
        if due:
            self.trim()

    def trim(self):
        # type: () -> None
        """Count the entries (every agent's), drop the oldest past the cap, and
        temporaries an agent left behind.  Another agent trimming at the same
        time is harmless: a file already gone is skipped."""
        with self._trimming:  # one scan at a time in this agent
            with self._lock:
                self._during = 0
            now = time.time()
            entries = []  # type: List[Tuple[float, str, int]]
            total = 0
            try:
                listing = list(os.scandir(self.directory))
            except OSError:
                listing = []
            for entry in listing:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.name.endswith(".part"):
                    if info.st_mtime < now - PART_MAX_AGE:
                        _remove(entry.path)
                elif entry.name.endswith(".jpg"):
                    entries.append((info.st_mtime, entry.name, info.st_size))
                    total += info.st_size
            if total > self.cap:
                entries.sort()
                for _, name, size in entries:
                    if total <= self.cap * TRIM_TO:
                        break
                    _remove(self.path(name))
                    total -= size
            with self._lock:
                # What was stored meanwhile, whether the listing saw it or not: an
                # estimate too high only trims a little earlier.
                self._estimate = total + (self._during or 0)
                self._during = None
                self._scanned = time.monotonic()

class Thumbnails(object):
    """The ``thumbnails`` command, and cached JPEG thumbnails for ``read-image``."""

    def __init__(self, work_dir, ffmpeg_info, cap=CACHE_CAP, parallel=None):
        # type: (str, Dict[str, Any], int, Optional[int]) -> None
        self.ffmpeg = ffmpeg_info
        self.cache = ThumbnailCache(os.path.join(work_dir, CACHE_DIR), cap)
        # Cleaned as the agent starts, as tmp/ is: over the cap, left-behind temporaries.
        self.cache.prepare()
        self.cache.trim()
        if parallel is None:
            parallel = min(PARALLEL_RUNS, os.cpu_count() or 1)
        self.parallel = max(1, parallel)
        # ffmpeg runs of every request together: a browsing page that asks for
        # several batches at once does not start more.
        self._slots = threading.BoundedSemaphore(self.parallel)

    def batch(self, args):
        # type: (Dict[str, Any]) -> Dict[str, Any]
        """``{"paths", "max-size"}`` → ``{"thumbnails": [one item per path, in order]}``."""
        paths, max_size = _arguments(args)
        deadline = time.monotonic() + BATCH_SECONDS
        items = [None] * len(paths)  # type: List[Optional[Dict[str, Any]]]
        pending = {}  # type: Dict[str, Tuple[Conversion, List[int]]]
        for index, path in enumerate(paths):
            try:
                conversion = self._prepare(path, {"max-size": max_size})
            except protocol.AgentError as error:
                items[index] = _failure(path, error)
                continue
            data = self.cache.read(conversion.name)
            if data is not None:
                items[index] = _success(path, conversion, data, True)
            elif conversion.name in pending:
                pending[conversion.name][1].append(index)
            else:
                pending[conversion.name] = (conversion, [index])
        if pending:
            ffmpeg.require(self.ffmpeg)
            self._convert([conversion for conversion, _ in pending.values()], deadline)
        for conversion, indexes in pending.values():
            for index in indexes:
                path = paths[index]
                items[index] = _failure(path, conversion.error) if conversion.data is None \
                    else _success(path, conversion, conversion.data, False)
        return {"thumbnails": items}

    def jpeg(self, path, limits):
        # type: (str, Dict[str, Any]) -> Tuple[bytes, int, int]
        """One image as a JPEG shrunk to ``limits`` (at most ``MAX_SIZE`` on a side),
        from the cache or converted and cached: the bytes, width and height."""
        conversion = self._prepare(path, limits)
        data = self.cache.read(conversion.name)
        if data is None:
            ffmpeg.require(self.ffmpeg)
            self._convert([conversion], time.monotonic() + BATCH_SECONDS)
            if conversion.error is not None:
                raise conversion.error
            data = conversion.data
        assert data is not None
        return data, conversion.width, conversion.height

    def _prepare(self, path, limits):
        # type: (str, Dict[str, Any]) -> Conversion
        """Check the image (cheaply: its header and its end) and name its entry."""
        try:
            stat = os.stat(path)
        except OSError as error:
            raise files.path_error(path, error) from None
        info = files.check_image(path)
        width, height = fit_within(info.width, info.height, limits)
        return Conversion(path, stat, width, height,
                          self.cache.name(os.path.realpath(path), stat, width, height))

    # -- converting ---------------------------------------------------------

    def _convert(self, conversions, deadline):
        # type: (List[Conversion], float) -> None
        """Fill in each conversion's ``data`` or ``error``."""
        groups = plan(conversions, self.parallel)
        if len(groups) == 1:
            self._convert_group(groups[0], deadline)
            return
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(groups))) as pool:
            for _ in pool.map(lambda group: self._convert_group(group, deadline), groups):
                pass

    def _convert_group(self, group, deadline):
        # type: (List[Conversion], float) -> None
        """One run for the group; when it fails, one run for each image, so the good
        ones still succeed and a bad one gets its own reason."""
        returncode, stderr = self._run(group, deadline)
        if returncode == 0:
            again = [conversion for conversion in group if not self._finish(conversion)]
        else:
            for conversion in group:
                _remove(conversion.part)
            again = list(group)
        if len(group) == 1 and again:
            self._fail(group[0], returncode, stderr)
            return
        for conversion in again:
            returncode, stderr = self._run([conversion], deadline)
            if returncode != 0 or not self._finish(conversion):
                _remove(conversion.part)
                self._fail(conversion, returncode, stderr)

    def _run(self, group, deadline):
        # type: (List[Conversion], float) -> Tuple[Optional[int], str]
        """ffmpeg over ``group``: its exit status (None when out of time) and stderr."""
        for conversion in group:
            conversion.part = self.cache.part(conversion.name)
        argv = batch_argv(ffmpeg.require(self.ffmpeg), [
            (conversion.source, conversion.width, conversion.height, conversion.part)
            for conversion in group])
        with self._slots:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, ""
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            except OSError as error:
                return 127, "Cannot run ffmpeg: %s" % error
            try:
                _, err = proc.communicate(timeout=left)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                return None, ""
        return proc.returncode, err.decode("utf-8", "replace")

    def _finish(self, conversion):
        # type: (Conversion) -> bool
        """Take a run's output for ``conversion`` and cache it (unless the image
        changed while it was converted); False when there is none."""
        try:
            with open(conversion.part, "rb") as handle:
                data = handle.read()
        except OSError:
            return False
        if not _looks_whole(data):
            _remove(conversion.part)
            return False
        conversion.data = data
        try:
            stat = os.stat(conversion.source)
            unchanged = (stat.st_size, stat.st_mtime_ns) == (conversion.size,
                                                              conversion.mtime_ns)
        except OSError:
            unchanged = False
        if unchanged:
            self.cache.store(conversion.part, conversion.name)
        else:
            _remove(conversion.part)
        return True

    def _fail(self, conversion, returncode, stderr):
        # type: (Conversion, Optional[int], str) -> None
        if returncode is None:
            conversion.error = protocol.AgentError(
                protocol.INTERNAL, "Converting %s took too long (the batch's %d s were up)."
                % (conversion.source, BATCH_SECONDS), {"path": conversion.source})
        else:
            conversion.error = conversion_error(conversion.source, stderr)


def _arguments(args):
    # type: (Dict[str, Any]) -> Tuple[List[str], int]
    paths = args.get("paths")
    if not isinstance(paths, list):
        raise protocol.AgentError(protocol.BAD_REQUEST, "paths must be a list of absolute "
                                  "paths, got %s." % _kind(paths), {"field": "paths"})
    if not 1 <= len(paths) <= MAX_PATHS:
        raise protocol.AgentError(protocol.BAD_REQUEST, "paths must hold 1 to %d paths, got "
                                  "%d." % (MAX_PATHS, len(paths)), {"field": "paths"})
    checked = [files.absolute(path, "paths.%d" % index) for index, path in enumerate(paths)]
    max_size = args.get("max-size")
    if max_size is None:
        max_size = DEFAULT_SIZE
    if not isinstance(max_size, int) or isinstance(max_size, bool) \
            or not MIN_SIZE <= max_size <= MAX_SIZE:
        raise protocol.AgentError(
            protocol.BAD_REQUEST, "max-size must be a whole number from %d to %d, got %s."
            % (MIN_SIZE, MAX_SIZE, _kind(max_size)), {"field": "max-size"})
    return checked, max_size


def _kind(value):
    # type: (Any) -> str
    """A wrong argument as the JSON request wrote it (a number, null), else its type."""
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return "a string"
    return "an object" if isinstance(value, dict) else "a list"


def _success(path, conversion, data, cached):
    # type: (str, Conversion, bytes, bool) -> Dict[str, Any]
    return {"path": path, "ok": True, "content_type": CONTENT_TYPE,
            "width": conversion.width, "height": conversion.height,
            "data": base64.b64encode(data).decode("ascii"), "cached": cached}


def _failure(path, error):
    # type: (str, Optional[protocol.AgentError]) -> Dict[str, Any]
    if error is None:  # cannot happen: a conversion ends with data or an error
        error = protocol.AgentError(protocol.INTERNAL, "No thumbnail for %s." % path)
    return {"path": path, "ok": False, "error": {"code": error.code, "message": error.message}}
