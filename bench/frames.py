"""The benchmark's inputs: a cached PNG sequence and a cached file of random bytes.

Both live under ``/tmp/framewire-bench/`` where the remote test user can read
them, keyed by their parameters, and are reused by later runs.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
from pathlib import Path

CACHE = Path("/tmp/framewire-bench")
GENERATOR = "v1"  # bump when the drawing changes, so old caches are not reused
NOISE_SIGMA = 10.0
NOISE_MARGIN = 256
PATTERN = "frame%05d.png"
COMPLETE = ".complete"

_noise: dict[tuple[int, int], list] = {}


def readable_dir(path: Path, mode: int = 0o755) -> Path:
    """``path``, created if needed, that every local user may enter and read."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    return path


def _noise_tiles(width: int, height: int) -> list:
    """Three gaussian noise images a little larger than a frame, made once per worker."""
    from PIL import Image

    key = (width, height)
    if key not in _noise:
        size = (width + NOISE_MARGIN, height + NOISE_MARGIN)
        _noise[key] = [Image.effect_noise(size, NOISE_SIGMA) for _ in range(3)]
    return _noise[key]


def draw_frame(index: int, count: int, width: int, height: int, path: str) -> int:
    """Moving gradients, a moving disc and per-frame noise: PNGs that decode like photos."""
    from PIL import Image, ImageChops, ImageDraw

    gradient = Image.linear_gradient("L")
    vertical = gradient.resize((width, height))
    horizontal = gradient.transpose(Image.Transpose.ROTATE_90).resize((width, height))
    phase = (index * 256) // max(1, count)
    red = vertical.point(lambda value: (value + phase) % 256)
    green = horizontal.point(lambda value: (value + 2 * phase) % 256)
    blue = ImageChops.blend(vertical, horizontal.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                            0.5)
    image = Image.merge("RGB", (red, green, blue))
    radius = max(4, height // 5)
    x = radius + (index * 7 * width // max(1, count)) % max(1, width - 2 * radius)
    y = height // 2
    ImageDraw.Draw(image).ellipse((x - radius, y - radius, x + radius, y + radius),
                                  fill=(240, 200, 40), outline=(20, 20, 20),
                                  width=max(1, radius // 10))
    noisy = []
    for channel, tile in zip(image.split(), _noise_tiles(width, height), strict=True):
        dx = (index * 37 + 11 * len(noisy)) % NOISE_MARGIN
        dy = (index * 53 + 29 * len(noisy)) % NOISE_MARGIN
        noise = tile.crop((dx, dy, dx + width, dy + height))
        noisy.append(ImageChops.add(channel, noise, 1.0, -128))
    Image.merge("RGB", noisy).save(path, "PNG")
    os.chmod(path, 0o644)
    return os.path.getsize(path)


def _draw_one(job: tuple[int, int, int, int, str]) -> int:
    return draw_frame(*job)


def frame_sequence(count: int, width: int, height: int, timeout: float,
                   workers: int | None = None) -> tuple[Path, bool]:
    """The directory of ``frame00000.png`` … for these parameters, and whether it was cached."""
    readable_dir(CACHE)
    final = CACHE / f"frames-{GENERATOR}-{width}x{height}-{count}"
    if (final / COMPLETE).exists():
        return final, True
    shutil.rmtree(final, ignore_errors=True)
    temp = readable_dir(CACHE / f"{final.name}.tmp-{os.getpid()}")
    try:
        jobs = [(index, count, width, height, str(temp / (PATTERN % index)))
                for index in range(count)]
        workers = workers or max(1, os.cpu_count() or 1)
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_draw_one, jobs, timeout=timeout, chunksize=4))
        (temp / COMPLETE).write_text(f"{count} frames {width}x{height} {GENERATOR}\n")
        os.rename(temp, final)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return final, False


def frame_paths(directory: Path, count: int) -> list[str]:
    return [str(directory / (PATTERN % index)) for index in range(count)]


def random_file(mebibytes: int) -> tuple[Path, bool]:
    """A file of ``mebibytes`` MiB of random bytes, and whether it was cached."""
    readable_dir(CACHE)
    final = CACHE / f"random-{mebibytes}MiB.bin"
    if final.exists() and final.stat().st_size == mebibytes << 20:
        return final, True
    temp = CACHE / f"{final.name}.tmp-{os.getpid()}"
    try:
        with open(temp, "wb") as handle:
            for _ in range(mebibytes):
                handle.write(os.urandom(1 << 20))
        os.chmod(temp, 0o644)
        os.rename(temp, final)
    finally:
        if temp.exists():
            temp.unlink()
    return final, False
