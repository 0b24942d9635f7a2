"""The server's own static ffmpeg, for hosts without a usable one."""

from __future__ import annotations

import hashlib
import os
import platform

from .. import errors
from ..records import FfmpegInfo, Hello

_BUNDLED: dict[str, tuple[str, str, int]] = {}


def bundled_ffmpeg() -> tuple[str, str, int]:
    """The static ffmpeg the server ships (imageio-ffmpeg's): path, SHA-256, size.

    The first call hashes the binary (170 MB): call it off the event loop.
    """
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise errors.ServerConfigError(
            "This server has no Linux x86_64 ffmpeg to provide.", code="provision-failed",
            hint="Install ffmpeg on the host, or set ffmpeg in its profile.")
    try:
        import imageio_ffmpeg
        path = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as error:
        raise errors.ServerConfigError("The server's bundled ffmpeg is missing.",
                                      code="provision-failed", hint=str(error)) from None
    if path not in _BUNDLED:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _BUNDLED[path] = (path, digest.hexdigest(), os.path.getsize(path))
    return _BUNDLED[path]


def wants_ffmpeg(allowed: bool, hello: Hello) -> bool:
    """Should the server provide ffmpeg to this host: none usable there, Linux
    x86_64, and the administrator allows it ([ssh] or the profile's
    provision_ffmpeg)?"""
    ffmpeg = hello.get("ffmpeg") or FfmpegInfo()
    usable = ffmpeg.get("path") and "h264" in (ffmpeg.get("encoders") or {})
    platform_ = hello.get("platform") or {}
    return bool(allowed and not usable and platform_.get("system") == "Linux"
                and platform_.get("machine") in ("x86_64", "AMD64"))
