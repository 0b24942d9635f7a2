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


def test_bad_config_file_is_a_clear_cli_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[nonsense]\n")
    framewire = shutil.which("framewire")
    argv = [framewire] if framewire else [sys.executable, "-m", "server.cli"]
    result = subprocess.run([*argv, "serve", "--config", str(bad)], capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "unknown setting 'nonsense'" in result.stderr


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    framewire = shutil.which("framewire")
    argv = [framewire] if framewire else [sys.executable, "-m", "server.cli"]
    return subprocess.run([*argv, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


def test_user_and_token_commands(tmp_path: Path) -> None:
    config = tmp_path / "framewire.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "state"}"\n'
                      '[auth]\nmode = "users"\n')
    c = ("--config", str(config))
    added = cli("user", *c, "add", "alice", "--password-stdin", stdin="long enough pw\n")
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added alice to ")
    users_file = (tmp_path / "state" / "users.toml").read_text()
    assert "long enough pw" not in users_file and "scrypt$" in users_file
    for args, stdin, error in (
            (("add", "alice", "--password-stdin"), "another pw 123\n", "user alice exists"),
            (("add", "../root", "--password-stdin"), "another pw 123\n", "is not allowed"),
            (("add", "bob", "--password-stdin"), "short\n", "8 to 1024 characters"),
            (("passwd", "carol", "--password-stdin"), "another pw 123\n", "no user carol"),
            (("remove", "carol"), "", "no user carol")):
        result = cli("user", *c, *args, stdin=stdin)
        assert result.returncode == 2 and error in result.stderr, (args, result.stderr)
    assert cli("user", *c, "role", "alice", "admin").returncode == 0
    assert cli("user", *c, "list").stdout == "alice\tadmin\n"

    created = cli("token", *c, "create", "alice", "--name", "ci")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert re.fullmatch(r"fwt_[0-9a-f]{12}_\S+", token)
    token_id = token.split("_")[1]
    listed = cli("token", *c, "list").stdout
    assert listed.startswith(f"{token_id}\talice\tci\tnever used") and token not in listed
    assert cli("token", *c, "create", "nobody").returncode == 2

    port = free_port()
    process, line = start_serve(tmp_path, "--config", str(config), "--port", str(port))
    try:
        assert "users mode, 1 user(s)" in line and f"http://127.0.0.1:{port}/login" in line
        me = requests.get(f"http://127.0.0.1:{port}/me",
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert me.json() == {"user": "alice", "role": "admin", "mode": "users",
                             "via": "bearer"}
        assert cli("token", *c, "revoke", token_id).returncode == 0
        assert requests.get(f"http://127.0.0.1:{port}/me", headers={
            "Authorization": f"Bearer {token}"}, timeout=10).status_code == 401
    finally:
        assert stop(process) == 0
    assert cli("token", *c, "revoke", token_id).returncode == 2
    cli("token", *c, "create", "alice")
    removed = cli("user", *c, "remove", "alice")
    assert removed.stdout.strip() == "removed alice and revoked 1 API token(s)"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with cryptography (asyncssh's)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


def test_https_with_a_configured_certificate_and_secure_cookies(tmp_path: Path) -> None:
    certfile, keyfile = self_signed(tmp_path)
    config = tmp_path / "framewire.toml"
    config.write_text(f'[server]\ncertfile = "{certfile}"\nkeyfile = "{keyfile}"\n')
    port = free_port()
    process, line = start_serve(tmp_path, "--config", str(config), "--port", str(port))
    try:
        match = re.search(rf"https://127\.0\.0\.1:{port}/\?token=(\S+)", line)
        assert match, line
        base = f"https://127.0.0.1:{port}"
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/login", timeout=10)
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        session.verify = str(certfile)
        page = session.get(base + "/login", timeout=10)
        assert page.status_code == 200
        assert "Secure" in page.headers["Set-Cookie"]  # the _xsrf cookie
        login = session.post(base + "/login", json={"password": match.group(1)}, timeout=10)
        assert login.status_code == 200 and login.json()["role"] == "admin"
        cookie = login.headers["Set-Cookie"]
        assert "framewire_user=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
        assert session.get(base + "/me", timeout=10).json()["via"] == "cookie"
    finally:
        assert stop(process) == 0


def test_https_needs_both_files(tmp_path: Path) -> None:
    config = tmp_path / "framewire.toml"
    config.write_text('[server]\ncertfile = "/nonexistent/cert.pem"\n')
    result = cli("serve", "--config", str(config))
    assert result.returncode == 2
    assert "server.certfile and server.keyfile go together" in result.stderr
    config.write_text('[server]\ncertfile = "/nonexistent/c.pem"\nkeyfile = "/nonexistent/k"\n')
    result = cli("serve", "--config", str(config), "--port", str(free_port()))
    assert result.returncode == 2 and "cannot load server.certfile/keyfile" in result.stderr


def test_serve_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    port = free_port()
    process, _ = start_serve(tmp_path, "--port", str(port))
    try:
        framewire = shutil.which("framewire")
        argv = [framewire] if framewire else [sys.executable, "-m", "server.cli"]
        environment = {**os.environ, "FRAMEWIRE_DATA_DIR": str(tmp_path / "other")}
        second = subprocess.run([*argv, "serve", "--port", str(port)], capture_output=True,
                                text=True, timeout=60, env=environment, check=False)
        assert second.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}: the address is in use" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        assert stop(process) == 0
