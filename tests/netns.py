"""Network namespaces joined in a chain, each with a real sshd, for hosts that
can only be reached through bastions.

    this process (root namespace) ── ns0 ── ns1 ── ns2 …

Each link is a veth pair on its own /24 of a random 10.x network; nothing
forwards packets, so ns1 is reachable only from ns0, ns2 only from ns1.
Everything is removed by :meth:`Chain.close`.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

from tests.fixtures import SSHD, SSHD_BINARY, TEST_USER, sshd_config


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Chain:
    def __init__(self, length: int, sshd: SSHD, state: Path) -> None:
        tag = secrets.token_hex(3)
        self.subnet = 100 + secrets.randbelow(100)
        self.namespaces = [f"fw{tag}n{i}" for i in range(length)]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.state = state
        self.sshd = sshd
        try:
            for name in self.namespaces:
                ip("netns", "add", name)
                ip("-n", name, "link", "set", "lo", "up")
            for index, name in enumerate(self.namespaces):
                left, right = f"fw{tag}l{index}", f"fw{tag}r{index}"
                ip("link", "add", left, "type", "veth", "peer", "name", right)
                if index > 0:
                    ip("link", "set", left, "netns", self.namespaces[index - 1])
                ip("link", "set", right, "netns", name)
                where = ["-n", self.namespaces[index - 1]] if index > 0 else []
                ip(*where, "addr", "add", f"10.{self.subnet}.{index}.1/24", "dev", left)
                ip(*where, "link", "set", left, "up")
                ip("-n", name, "addr", "add", f"{self.address(index)}/24", "dev", right)
                ip("-n", name, "link", "set", right, "up")
            for index in range(length):
                self._start_sshd(index)
        except BaseException:
            self.close()
            raise

    def address(self, index: int) -> str:
        """Namespace ``index``'s address on the link towards this process."""
        return f"10.{self.subnet}.{index}.2"

    def _start_sshd(self, index: int) -> None:
        host_key = self.sshd.known_hosts.parent / "ssh_host_ed25519_key"
        config = self.state / f"sshd_{self.namespaces[index]}"
        config.write_text(sshd_config(self.address(index), 22, host_key,
                                      self.state / f"{self.namespaces[index]}.pid", [TEST_USER]))
        log = open(self.state / f"{self.namespaces[index]}.log", "wb")
        process = subprocess.Popen(["ip", "netns", "exec", self.namespaces[index], SSHD_BINARY,
                                    "-D", "-e", "-f", str(config)], stdout=log,
                                   stderr=subprocess.STDOUT)
        self.processes.append(process)
        deadline = time.monotonic() + 15
        while True:
            probe = subprocess.run(["ip", "netns", "exec", self.namespaces[index], "bash", "-c",
                                    f"exec 3<>/dev/tcp/{self.address(index)}/22"],
                                   capture_output=True, check=False)
            if probe.returncode == 0:
                return
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sshd in a namespace did not start: " +
                                   (self.state / f"{self.namespaces[index]}.log").read_text())
            time.sleep(0.05)

    def known_hosts(self) -> str:
        """known_hosts lines for every sshd of the chain (they share one host key)."""
        kind, key = (self.sshd.known_hosts.parent / "ssh_host_ed25519_key.pub"
                     ).read_text().split()[:2]
        return "".join(f"{self.address(i)} {kind} {key}\n" for i in range(len(self.namespaces)))

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for name in self.namespaces:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
