"""``framewire demo``: a generated image sequence → a video, through the real API.

It starts the server in-process on a free loopback port, uses the local
transport (no SSH needed), and drives the same HTTP calls a client would.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .. import config as config_module
from ..http.app import make_app
from ..http.door import make_server
from ..services import Services


def make_frames(directory: Path, count: int, size: tuple[int, int] = (640, 360)) -> list[str]:
    """Draw ``count`` frames of a ball bouncing across a gradient."""
    from PIL import Image, ImageDraw

    directory.mkdir(parents=True, exist_ok=True)
    width, height = size
    paths = []
    for index in range(count):
        phase = index / max(1, count - 1)
        image = Image.new("RGB", size)
        draw = ImageDraw.Draw(image)
        for y in range(0, height, 4):
            shade = int(40 + 120 * y / height)
            draw.rectangle([0, y, width, y + 3], fill=(20, shade // 2, shade))
        x = int(40 + (width - 80) * phase)
        y = int(height - 60 - (height - 120) * abs(math.sin(phase * math.pi * 3)))
        draw.ellipse([x - 30, y - 30, x + 30, y + 30], fill=(250, 180, 40))
        draw.text((12, 12), f"framewire demo  frame {index + 1}/{count}", fill=(255, 255, 255))
        path = directory / f"frame{index:04d}.png"
        image.save(path)
        paths.append(str(path.resolve()))
    return paths


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def run(output: str, frames: int, content_type: str) -> int:
    out_dir = Path(output).resolve()
    print(f"framewire demo: drawing {frames} frames into {out_dir / 'frames'}", flush=True)
    paths = make_frames(out_dir / "frames", frames)

    config = config_module.load()
    config.server.token = secrets.token_urlsafe(16)
    config.server.port = _free_port()
    with tempfile.TemporaryDirectory(prefix="framewire-demo-") as state:
        config.server.data_dir = state
        config.local.work_dir = os.path.join(state, "work")
        services = Services.build(config)
        app = make_app(config, services)
        server = make_server(app, config)
        server.listen(config.server.port, "127.0.0.1")
        services.start()
        try:
            return await _drive(config, paths, out_dir, content_type)
        finally:
            server.stop()
            await services.close()
            server.flush_log()


async def _drive(config: config_module.Config, paths: list[str], out_dir: Path,
                 content_type: str) -> int:
    base = f"http://127.0.0.1:{config.server.port}"
    headers = {"Authorization": f"Bearer {config.server.token}",
               "Content-Type": "application/json"}
    client = AsyncHTTPClient()

    async def call(method: str, path: str, body: Any = None) -> Any:
        request = HTTPRequest(base + path, method=method, headers=headers,
                              body=None if body is None else json.dumps(body),
                              request_timeout=600)
        try:
            response = await client.fetch(request)
        except HTTPClientError as error:
            message = error.response.headers.get("X-Slycat-Message") if error.response else ""
            raise SystemExit(
                f"framewire demo: {method} {path} failed: {error.code} {message}") from None
        return json.loads(response.body) if response.body else None

    started = time.monotonic()
    sid = (await call("POST", "/remotes", {"hostname": "localhost"}))["sid"]
    print(f"framewire demo: session {sid} on the local transport", flush=True)
    vsid = (await call("POST", f"/remotes/{sid}/videos",
                       {"content-type": content_type, "images": paths}))["sid"]
    while True:
        status = await call("GET", f"/remotes/{sid}/videos/{vsid}/status")
        print(f"\rframewire demo: {status['status']:<9} {status['progress']:5.1f}%  "
              f"{status['frames_done']}/{status['frames_total']} frames", end="", flush=True)
        if not status["ok"]:
            print(f"\nframewire demo: the video failed: {status['message']}")
            return 1
        if status["ready"]:
            break
        await asyncio.sleep(0.3)
    extension = "mp4" if content_type == "video/mp4" else "webm"
    target = out_dir / f"demo.{extension}"
    with open(target, "wb") as handle:

        def write(chunk: bytes) -> None:
            handle.write(chunk)

        await client.fetch(HTTPRequest(f"{base}/remotes/{sid}/videos/{vsid}", headers=headers,
                                       streaming_callback=write, request_timeout=600))
    await call("DELETE", f"/remotes/{sid}")
    elapsed = time.monotonic() - started
    print(f"\nframewire demo: wrote {target} ({target.stat().st_size} bytes, "
          f"{len(paths)} frames at 25 fps) in {elapsed:.1f} s", flush=True)
    frames_dir = Path(paths[0]).parent
    print(f"""
Next:
  framewire serve                   # the server and its web page; keep it running, then
  export FRAMEWIRE_TOKEN=…          #   the token it prints, in another terminal:
  framewire video create localhost:{frames_dir} -o again.{extension}
  framewire video create you@cluster.example.org:/scratch/run42/frame*.png -o run42.mp4
See README.md for the HTTP API, users mode and hosts behind bastions.""", flush=True)
    return 0
