"""The agent's request loop: JSON lines in on stdin, responses and events out.

Requests run on a small thread pool, so several can be in flight; responses
carry the request's id and may arrive in any order.  Job events are pushed
whenever a job the server asked about changes.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Set  # noqa: F401 (type comments)

from . import PROTOCOL_VERSION, __version__, ffmpeg, files, jobs, protocol, thumbnails
from .executors import Executor  # noqa: F401 (type comments)
from .thumbnails import conversion_error, fit_within

Handler = Callable[[Dict[str, Any]], Dict[str, Any]]
IMAGE_TYPES = ("image/png", "image/jpeg")
TEMP_MAX_AGE = 3600.0


def sweep(directory, max_age):
    # type: (str, float) -> None
    """Remove temporaries an earlier agent left behind (e.g. its link dropped)."""
    limit = time.time() - max_age
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        try:
            if os.lstat(path).st_mtime < limit:
                os.unlink(path)
        except OSError:
            pass


def free_space(path):
    # type: (str) -> Optional[int]
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


class Agent(object):
    def __init__(self, work_dir, placements, writer, nice=0, slurm=None,
                 thumbnail_cache=thumbnails.CACHE_CAP):
        # type: (str, Dict[str, Executor], protocol.LineWriter, int, Optional[Dict[str, Any]], int) -> None  # noqa: E501
        """Serve the protocol over ``writer``, with jobs run by the executors of
        ``placements`` (``local``, and ``slurm`` where the host has it: ``slurm``
        is what its discovery found, for the hello), and thumbnails cached up to
        ``thumbnail_cache`` bytes."""
        self.work_dir = work_dir
        self.temp_dir = os.path.join(work_dir, "tmp")
        os.makedirs(self.temp_dir, mode=0o700, exist_ok=True)
        sweep(self.temp_dir, TEMP_MAX_AGE)
        # Conversions not yet released; removed when the server hangs up.
        self.temporaries = set()  # type: Set[str]
        self.temporaries_lock = threading.Lock()
        self.writer = writer
        self.ffmpeg = ffmpeg.describe(ffmpeg.find_ffmpeg(work_dir))
        self.nice = nice
        self.slurm = slurm
        self.jobs = jobs.JobStore(work_dir, placements, self.ffmpeg, nice)
        self.jobs.partitions = lambda: (self.slurm or {}).get("partitions") or []
        self.watcher = jobs.JobWatcher(self.jobs, writer.send)
        self.thumbnails = thumbnails.Thumbnails(work_dir, self.ffmpeg, thumbnail_cache)
        self.commands = {
            "ping": lambda args: {"pong": True},
            "browse": files.browse,
            "stat": files.stat,
            "read-image": self.read_image,
            "release": self.release,
            "thumbnails": self.thumbnails.batch,
            "create-video": self.create_video,
            "video-status": self.watched(self.jobs.status),
            "cancel-video": self.jobs.cancel,
            "delete-video": self.jobs.delete,
        }  # type: Dict[str, Handler]

    def hello(self):
        # type: () -> Dict[str, Any]
        return {
            "protocol": PROTOCOL_VERSION,
            "agent": __version__,
            "python": platform.python_version(),
            "platform": {"system": platform.system(), "machine": platform.machine()},
            "pid": os.getpid(),
            "work_dir": self.work_dir,
            "work_dir_free": free_space(self.work_dir),
            "ffmpeg": self.ffmpeg,
            "encode_nice": self.nice,
            "slurm": self.slurm,
            "capabilities": {
                "commands": sorted(self.commands),
                "encoders": sorted(self.ffmpeg["encoders"]),
                "content_types": sorted(
                    content_type for content_type, codec in ffmpeg.CONTENT_TYPE_CODECS.items()
                    if codec in self.ffmpeg["encoders"]),
            },
        }

    def watched(self, handler):
        # type: (Handler) -> Handler
        def run(args):
            # type: (Dict[str, Any]) -> Dict[str, Any]
            result = handler(args)
            if result.get("status") not in protocol.FINAL_STATES:
                self.watcher.watch(result["id"])
            return result
        return run

    def create_video(self, args):
        # type: (Dict[str, Any]) -> Dict[str, Any]
        status = self.jobs.create(args)
        self.watcher.watch(status["id"])
        return status

    def read_image(self, args):
        # type: (Dict[str, Any]) -> Dict[str, Any]
        """The image itself, or a converted/shrunk copy in the temp dir."""
        path = files.absolute(args.get("path"))
        info = files.check_image(path)
        source_type = "image/png" if info.kind == "png" else "image/jpeg"
        wanted = args.get("content-type") or source_type
        if wanted not in IMAGE_TYPES:
            raise protocol.AgentError(protocol.BAD_REQUEST,
                                      "content-type must be image/png or image/jpeg.",
                                      {"field": "content-type"})
        width, height = fit_within(info.width, info.height, args)
        size = os.path.getsize(path)
        if wanted == source_type and (width, height) == (info.width, info.height):
            return {"path": path, "size": size, "content_type": wanted, "temporary": False,
                    "width": width, "height": height}
        ffmpeg.require(self.ffmpeg)
        handle, output = tempfile.mkstemp(
            dir=self.temp_dir, suffix=".png" if wanted == "image/png" else ".jpg")
        with self.temporaries_lock:
            self.temporaries.add(output)
        if wanted == thumbnails.CONTENT_TYPE and max(width, height) <= thumbnails.MAX_SIZE:
            # A JPEG thumbnail: from the thumbnail cache, converted into it if need be.
            try:
                with os.fdopen(handle, "wb") as temporary:
                    data = self.thumbnails.jpeg(path, args)[0]
                    temporary.write(data)
            except protocol.AgentError:
                self._remove_temporary(output)
                raise
            except OSError as error:
                self._remove_temporary(output)
                raise conversion_error(path, str(error)) from None
            return {"path": output, "size": len(data), "content_type": wanted,
                    "temporary": True, "width": width, "height": height}
        os.close(handle)
        argv = ffmpeg.thumbnail_argv(self.ffmpeg["path"], path, width, height, wanted, output)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        _, err = proc.communicate()
        if proc.returncode != 0 or os.path.getsize(output) == 0:
            self._remove_temporary(output)
            raise conversion_error(path, err.decode("utf-8", "replace"))
        return {"path": output, "size": os.path.getsize(output), "content_type": wanted,
                "temporary": True, "width": width, "height": height}

    def release(self, args):
        # type: (Dict[str, Any]) -> Dict[str, Any]
        """Delete a temporary file that ``read-image`` made."""
        path = files.absolute(args.get("path"))
        if os.path.dirname(os.path.realpath(path)) != os.path.realpath(self.temp_dir):
            raise protocol.AgentError(protocol.BAD_REQUEST,
                                      "Only temporary files can be released.",
                                      {"field": "path"})
        self._remove_temporary(path)
        return {"released": True}

    def _remove_temporary(self, path):
        # type: (str) -> None
        with self.temporaries_lock:
            self.temporaries.discard(path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    # -- the loop ---------------------------------------------------------

    def serve(self, stdin):
        # type: (Any) -> None
        pool = ThreadPoolExecutor(max_workers=8)
        for raw in iter(stdin.readline, b""):
            try:
                request = json.loads(raw.decode("utf-8"))
                request_id = request["id"]
            except (ValueError, KeyError, TypeError):
                sys.stderr.write("framewire-agent: ignoring a malformed request line\n")
                continue
            pool.submit(self._answer, request_id, request.get("cmd"),
                        request.get("args") or {})
        pool.shutdown(wait=True)
        with self.temporaries_lock:
            left = list(self.temporaries)
        for path in left:  # the server hung up mid-request
            self._remove_temporary(path)

    def _answer(self, request_id, command, args):
        # type: (Any, Any, Dict[str, Any]) -> None
        handler = self.commands.get(command) if isinstance(command, str) else None
        try:
            if handler is None:
                raise protocol.AgentError(protocol.UNKNOWN_COMMAND,
                                          "Unknown command %r." % (command,))
            if not isinstance(args, dict):
                raise protocol.AgentError(protocol.BAD_REQUEST, "args must be an object.")
            result = handler(args)
            self.writer.send({"id": request_id, "ok": True, "result": result})
        except protocol.AgentError as error:
            self.writer.send({"id": request_id, "ok": False, "error": error.to_json()})
        except Exception as error:  # report, never die: other requests are in flight
            sys.stderr.write("framewire-agent: %s failed: %r\n" % (command, error))
            self.writer.send({"id": request_id, "ok": False,
                              "error": protocol.AgentError(protocol.INTERNAL,
                                                           "Agent error: %s" % error).to_json()})

