"""The agent as one content-hashed zipapp, built from the ``agent`` package."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import agent

FONT_NAME = "fonts/Roboto-Regular.ttf"  # labels and burn-in text (Apache-2.0)


def font_file() -> Path | None:
    """The TTF the agent draws text with, from the font-roboto package."""
    try:
        import font_roboto
    except ImportError:
        return None
    path = Path(font_roboto.__file__).parent / "files" / "Roboto-Regular.ttf"
    return path if path.is_file() else None


_MAIN = b"import sys\nfrom agent.__main__ import main\nsys.exit(main())\n"
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class AgentBundle:
    data: bytes
    digest: str

    @property
    def filename(self) -> str:
        return f"agent-{self.digest[:20]}.pyz"

    def write_to(self, directory: str) -> str:
        """Write the zipapp into ``directory`` (once) and return its path."""
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, self.filename)
        if not os.path.exists(path):
            temp = f"{path}.{os.getpid()}.tmp"
            with open(temp, "wb") as handle:
                handle.write(self.data)
            os.replace(temp, path)
        return path


@functools.lru_cache(maxsize=1)
def build() -> AgentBundle:
    """Zip the agent's sources with fixed timestamps, so equal code hashes equally."""
    package = Path(agent.__file__).parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("__main__.py", _EPOCH), _MAIN)
        for source in sorted(package.glob("*.py")):
            info = zipfile.ZipInfo(f"agent/{source.name}", _EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
        font = font_file()
        if font is not None:
            info = zipfile.ZipInfo(f"agent/{FONT_NAME}", _EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, font.read_bytes())
    data = buffer.getvalue()
    return AgentBundle(data, hashlib.sha256(data).hexdigest())
