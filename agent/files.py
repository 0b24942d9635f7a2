"""Filesystem questions the server asks: browse a directory, stat a path."""

import datetime
import errno
import mimetypes
import os
import re
import stat as stat_module
from typing import Any, Dict, List, Optional  # noqa: F401 (type comments)

from . import images, protocol


def absolute(path, field="path"):
    # type: (Any, str) -> str
    """``path`` if it is an absolute path string, else a bad-request error."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise protocol.AgentError(protocol.BAD_REQUEST,
                                  "%s must be an absolute path, got %r." % (field, path),
                                  {"field": field})
    if "\x00" in path:
        raise protocol.AgentError(protocol.BAD_REQUEST, "%s contains a NUL byte." % field,
                                  {"field": field})
    return path


def path_error(path, error):
    # type: (str, OSError) -> protocol.AgentError
    """The protocol error for an OSError raised while opening ``path``."""
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return protocol.AgentError(protocol.NOT_FOUND, "File not found: %s" % path,
                                   {"path": path})
    if error.errno in (errno.EACCES, errno.EPERM):
        return protocol.AgentError(protocol.ACCESS_DENIED, "Access denied: %s" % path,
                                   {"path": path})
    if error.errno == errno.EISDIR:
        return protocol.AgentError(protocol.IS_DIRECTORY, "Can't read directory: %s" % path,
                                   {"path": path})
    return protocol.AgentError(protocol.ACCESS_DENIED, "Can't read %s: %s"
                               % (path, error.strerror), {"path": path})


def readable_file(path):
    # type: (str) -> os.stat_result
    """Stat ``path`` and insist it is a regular file the agent may read."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise path_error(path, error) from None
    if stat_module.S_ISDIR(info.st_mode):
        raise protocol.AgentError(protocol.IS_DIRECTORY, "Can't read directory: %s" % path,
                                  {"path": path})
    if not stat_module.S_ISREG(info.st_mode):
        raise protocol.AgentError(protocol.ACCESS_DENIED, "Not a regular file: %s" % path,
                                  {"path": path})
    if not os.access(path, os.R_OK):
        raise protocol.AgentError(protocol.ACCESS_DENIED, "Access denied: %s" % path,
                                  {"path": path})
    return info


def isoformat(timestamp):
    # type: (float) -> str
    return datetime.datetime.utcfromtimestamp(timestamp).isoformat()


def stat(args):
    # type: (Dict[str, Any]) -> Dict[str, Any]
    path = absolute(args.get("path"))
    try:
        info = os.stat(path)
    except OSError as error:
        raise path_error(path, error) from None
    is_dir = stat_module.S_ISDIR(info.st_mode)
    mime = None if is_dir else mimetypes.guess_type(path)[0]
    return {
        "path": path,
        "type": "d" if is_dir else "f",
        "size": info.st_size,
        "mtime": isoformat(info.st_mtime),
        "mime-type": mime,
        "readable": os.access(path, os.R_OK),
    }


def natural_key(name):
    # type: (str) -> List[Any]
    """``frame2`` before ``frame10``: digit runs compare as numbers."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"([0-9]+)", name) if part != ""]


def _compile(args, key):
    # type: (Dict[str, Any], str) -> Optional[Any]
    value = args.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise protocol.AgentError(protocol.BAD_REQUEST, "%s must be a string." % key,
                                  {"field": key})
    try:
        return re.compile(value)
    except re.error as error:
        raise protocol.AgentError(protocol.BAD_REQUEST,
                                  "%s is not a valid regular expression: %s" % (key, error),
                                  {"field": key}) from None


def _kept(path, reject, allow):
    # type: (str, Optional[Any], Optional[Any]) -> bool
    if reject is not None and reject.search(path):
        return allow is not None and bool(allow.search(path))
    return True


def browse(args):
    # type: (Dict[str, Any]) -> Dict[str, Any]
    """List a directory the way Slycat's browse call does (parallel arrays): directories
    first, then files, each in natural order."""
    path = absolute(args.get("path"))
    filters = {key: _compile(args, key)
               for key in ("directory-reject", "directory-allow", "file-reject", "file-allow")}
    try:
        info = os.stat(path)
    except OSError as error:
        raise path_error(path, error) from None
    if not stat_module.S_ISDIR(info.st_mode):
        # Slycat answers a file path with that file alone.
        entries = [(os.path.basename(path), path)]
        path = os.path.dirname(path) or "/"
    else:
        try:
            names = os.listdir(path)
        except OSError as error:
            raise path_error(path, error) from None
        entries = [(name, os.path.join(path, name)) for name in names]

    rows = []  # type: List[Any]
    for name, full in entries:
        try:
            entry = os.stat(full)
        except OSError:
            try:
                entry = os.lstat(full)  # a dangling link: list it, it cannot be read
            except OSError:
                continue
        is_dir = stat_module.S_ISDIR(entry.st_mode)
        if is_dir and not _kept(full, filters["directory-reject"], filters["directory-allow"]):
            continue
        if not is_dir and not _kept(full, filters["file-reject"], filters["file-allow"]):
            continue
        rows.append((not is_dir, name, entry, is_dir))
    # Directories first, then natural order (img_2 before img_10), as videos take them.
    rows.sort(key=lambda row: (row[0], natural_key(row[1]), row[1]))
    return {
        "path": path,
        "names": [row[1] for row in rows],
        "sizes": [row[2].st_size for row in rows],
        "types": ["d" if row[3] else "f" for row in rows],
        "mtimes": [isoformat(row[2].st_mtime) for row in rows],
        "mime-types": [None if row[3] else mimetypes.guess_type(row[1])[0] for row in rows],
    }


def check_image(path):
    # type: (str) -> images.ImageInfo
    """Sniff ``path`` as an image, or raise the error a user should see."""
    readable_file(path)
    try:
        info = images.sniff(path)
    except OSError as error:
        raise path_error(path, error) from None
    if info is None:
        raise protocol.AgentError(protocol.NOT_AN_IMAGE, "Not a PNG or JPEG image: %s" % path,
                                  {"path": path})
    try:
        complete = images.complete(path, info.kind)
    except OSError as error:
        raise path_error(path, error) from None
    if not complete:
        raise protocol.AgentError(protocol.TRUNCATED_IMAGE,
                                  "Incomplete image (still being written?): %s" % path,
                                  {"path": path})
    return info
