"""Hostile hosts for the reach tests: a real sshd whose users have a tcsh login
shell or a read-only home, optionally in a mount namespace where some programs
(python3, ffmpeg) are hidden, as on hosts that lack them."""

from __future__ import annotations

import glob
import os
import secrets
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures import SSHD_BINARY, ensure_user, free_port, run, sshd_config, wait_listening


@dataclass
class Account:
    name: str
    password: str
    home: Path


@dataclass
class HostileSSHD:
    port: int
    known_hosts: Path
    accounts: dict[str, Account]
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def tcsh() -> str:
    found = shutil.which("tcsh")
    if not found:
        raise RuntimeError("tcsh is not installed: apt-get install tcsh (.ci/run does)")
    return found


def make_account(name: str, kind: str) -> Account:
    """A local account: "tcsh" (tcsh login shell whose .tcshrc prints to stdout
    and stderr) or "readonly" (a home directory it cannot write)."""
    password = secrets.token_urlsafe(12)
    entry = ensure_user(name, password)
    home = Path(entry.pw_dir)
    if kind == "tcsh":
        run(["usermod", "--shell", tcsh(), name])
        rc = home / ".tcshrc"
        rc.write_text('echo "Welcome to the csh cluster"\nsh -c "echo quota warning >&2"\n')
        os.chown(rc, entry.pw_uid, entry.pw_gid)
    elif kind == "readonly":
        run(["usermod", "--shell", "/bin/bash", name])
        shutil.rmtree(home / ".cache", ignore_errors=True)
        os.chown(home, 0, 0)
        os.chmod(home, 0o555)
    for stale in glob.glob(f"/tmp/framewire-{name}"):
        shutil.rmtree(stale, ignore_errors=True)
    return Account(name, password, home)


def start_hostile_sshd(state: Path, accounts: list[Account],
                       hide: list[str] | None = None) -> HostileSSHD:
    state.mkdir(parents=True, exist_ok=True)
    host_key = state / "host_ed25519"
    if not host_key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)])
    port = free_port()
    config = state / f"sshd_{port}"
    config.write_text(sshd_config("127.0.0.1", port, host_key, state / f"sshd_{port}.pid",
                                  [account.name for account in accounts]))
    argv = [SSHD_BINARY, "-D", "-e", "-f", str(config)]
    if hide:
        # A private mount namespace where each hidden program is /dev/null
        # (not executable): the host "has no" python3 or ffmpeg.
        mounts = " && ".join(f"mount --bind /dev/null {shlex.quote(path)}" for path in hide)
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                f"{mounts} && exec {' '.join(shlex.quote(part) for part in argv)}"]
    log = open(state / f"sshd_{port}.log", "wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    wait_listening(process, port, state / f"sshd_{port}.log")
    kind, key = (state / "host_ed25519.pub").read_text().split()[:2]
    known_hosts = state / f"known_hosts_{port}"
    known_hosts.write_text(f"[127.0.0.1]:{port} {kind} {key}\n")
    return HostileSSHD(port, known_hosts, {a.name: a for a in accounts}, process)


def pythons() -> list[str]:
    """Every python3 a host would find (to hide them all)."""
    found = set()
    for pattern in ("/usr/bin/python3*", "/usr/local/bin/python3*"):
        for path in glob.glob(pattern):
            if os.path.isfile(path) and os.access(path, os.X_OK) and "config" not in path:
                found.add(os.path.realpath(path))
                found.add(path)
    return sorted(path for path in found if not os.path.islink(path))
