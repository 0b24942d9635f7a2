"""`framewire serve`: the token printed with the URL, configuration, clean shutdown."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from server import config as config_module
from tests.fixtures import free_port


def start_serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None
                ) -> tuple[subprocess.Popen[str], str]:
    framewire = shutil.which("framewire")
    argv = [framewire] if framewire else [sys.executable, "-m", "server.cli"]
    environment = {key: value for key, value in os.environ.items()
                   if key != "FRAMEWIRE_TOKEN"}
    environment.update({"FRAMEWIRE_DATA_DIR": str(tmp_path / "state"), **(env or {})})
    process = subprocess.Popen([*argv, "serve", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environment)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "listening on" in line, line + (process.stderr.read() if process.stderr else "")
    return process, line


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(15)
    finally:
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def test_serve_prints_a_generated_token_with_the_url(tmp_path: Path) -> None:
    port = free_port()
    process, line = start_serve(tmp_path, "--port", str(port))
    try:
        match = re.search(rf"http://127\.0\.0\.1:{port}/\?token=(\S+)", line)
        assert match, line
        token = match.group(1)
        url = f"http://127.0.0.1:{port}/remotes/0123456789abcdef0123456789abcdef"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, headers={"Authorization": f"Bearer {token}"},
                            timeout=10).status_code == 404
        index = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert index.status_code == 200 and "framewire" in index.text
    finally:
        assert stop(process) == 0


def test_serve_takes_the_token_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    process, line = start_serve(tmp_path, "--port", str(port),
                                env={"FRAMEWIRE_TOKEN": "s3cret-token-value"})
    try:
        assert "s3cret-token-value" not in line
        assert "token from configuration" in line
        response = requests.get(f"http://127.0.0.1:{port}/remotes/x?token=s3cret-token-value",
                                timeout=10)
        assert response.status_code == 404
    finally:
        assert stop(process) == 0


def test_access_log_never_shows_the_token(tmp_path: Path) -> None:
    port = free_port()
    process, _ = start_serve(tmp_path, "--port", str(port),
                             env={"FRAMEWIRE_TOKEN": "hidden-token-123"})
    requests.get(f"http://127.0.0.1:{port}/remotes/abc?token=hidden-token-123", timeout=10)
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=15)
    assert "token=***" in err
    assert "hidden-token-123" not in err


def test_config_file_sets_options_and_rejects_unknown_ones(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[server]\nport = 9123\nsession-idle-timeout = 60\n'
                    '[ssh]\nknown_hosts = "/etc/ssh/ssh_known_hosts"\n')
    config = config_module.load(str(good), environ={})
    assert config.server.port == 9123
    assert config.server.session_idle_timeout == 60
    assert config.ssh.known_hosts == "/etc/ssh/ssh_known_hosts"
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nprot = 1\n")
    with pytest.raises(config_module.ConfigError, match="unknown setting 'prot'"):
        config_module.load(str(bad), environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    with pytest.raises(config_module.ConfigError, match="not valid TOML"):
        config_module.load(str(broken), environ={})
    env = config_module.load(environ={"FRAMEWIRE_TOKEN": "t", "FRAMEWIRE_DATA_DIR": "/d"})
    assert (env.server.token, env.server.data_dir) == ("t", "/d")


def test_bad_config_file_is_a_clear_cli_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[nonsense]\n")
    framewire = shutil.which("framewire")
    argv = [framewire] if framewire else [sys.executable, "-m", "server.cli"]
    result = subprocess.run([*argv, "serve", "--config", str(bad)], capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "unknown setting 'nonsense'" in result.stderr
