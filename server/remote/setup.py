"""What runs on a host before the agent: its set-up commands, its ffmpeg, the
Pythons to try, the encodes' priority, as the shell script a login runs."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

from .. import errors
from ..config import Config
from .routes import Hop


@dataclass
class Setup:
    """What runs before the agent on a host: its profile's set-up commands
    (each an argv list, run in order by /bin/sh, a login shell when there are
    any, whatever the user's own shell is) and its ffmpeg."""

    commands: list[list[str]] = field(default_factory=list)
    ffmpeg: str = ""
    candidates: list[str] = field(default_factory=list)  # Pythons to try, in order
    nice: int = 0  # the encodes' CPU priority
    batch: list[list[str]] = field(default_factory=list)  # batch scripts' own, after these

    @classmethod
    def for_host(cls, target: Hop, config: Config) -> Setup:
        names = [target.profile.python, config.ssh.python, "python3",
                 *(f"python3.{minor}" for minor in range(14, 5, -1)),
                 "/usr/bin/python3", "/usr/local/bin/python3"]
        nice = config.ssh.nice if target.profile.nice is None else target.profile.nice
        return cls([list(step) for step in target.profile.setup], target.profile.ffmpeg,
                   [name for name in dict.fromkeys(names) if name], nice,
                   [list(step) for step in target.profile.batch_setup])

    def shell(self, script: str) -> str:
        """``script`` (sh syntax) after the set-up, for the user's login shell,
        whatever it is; plain ``script`` when there is nothing to set up."""
        parts = [f"{quoted_argv(step)} || {{ echo 'FRAMEWIRE-SETUP-FAILED {index}'; exit 126; }}"
                 for index, step in enumerate(self.commands, start=1)]
        if self.ffmpeg:
            parts.append(f"FRAMEWIRE_FFMPEG={shlex.quote(self.ffmpeg)}; export FRAMEWIRE_FFMPEG")
        if not parts:
            return script
        shell = "/bin/sh -lc" if self.commands else "/bin/sh -c"
        return f"{shell} {shlex.quote('; '.join([*parts, script]))}"

    def failed_step(self, output: str) -> str | None:
        match = re.search(r"FRAMEWIRE-SETUP-FAILED (\d+)", output)
        if not match:
            return None
        return " ".join(self.commands[int(match.group(1)) - 1])


    def python_probe(self) -> str:
        """The command that finds the first Python 3.6+ among the candidates (after
        the set-up), for :meth:`python_found` to read."""
        loop = " ".join(shlex.quote(name) for name in self.candidates)
        script = (
            f"for p in {loop}; do command -v \"$p\" >/dev/null 2>&1 || continue; "
            f"v=$(\"$p\" -c {shlex.quote(PYTHON_PROBE)} 2>/dev/null) || continue; "
            "case \"$v\" in 3.[6-9]|3.[1-9][0-9]) "
            "echo \"FRAMEWIRE-PYTHON $(command -v \"$p\") $v\"; exit 0;; esac; "
            "found=\"$found $(command -v \"$p\")=$v\"; done; "
            "echo \"FRAMEWIRE-NO-PYTHON$found\"; exit 127")
        command = self.shell(script)
        if command == script:
            command = f"/bin/sh -c {shlex.quote(script)}"  # the login shell may not be sh
        return command

    def python_found(self, output: str, stderr: str, label: str) -> tuple[str, str]:
        """The Python :meth:`python_probe` found (absolute path, version), or the
        error that says what the host lacks."""
        failed = self.failed_step(output)
        if failed is not None:
            reason = stderr.strip().splitlines()
            raise errors.RemoteSetupError(
                f"The set-up command `{failed}` failed on {label}.", code="setup-failed",
                hint=(reason[-1][:300] if reason else "It exited with an error.")
                + " Fix the host's setup list in the configuration.")
        for line in output.splitlines():
            if line.startswith("FRAMEWIRE-PYTHON "):
                _, path, version = line.split(" ", 2)
                return path, version.strip()
            if line.startswith("FRAMEWIRE-NO-PYTHON"):
                found = line[len("FRAMEWIRE-NO-PYTHON"):].split()
                if found:
                    listed = ", ".join(entry.replace("=", " is ") for entry in found)
                    raise errors.RemoteSetupError(
                        f"Python on {label} is too old: {listed}.", code="old-python",
                        hint="framewire's agent needs Python 3.6 or newer. Install one, or "
                             "point python (or a set-up command such as [\"module\", "
                             "\"load\", \"python3\"]) in this host's profile at it.")
                raise errors.RemoteSetupError(
                    f"No Python 3 on {label}.", code="no-python",
                    hint="framewire's agent needs Python 3.6 or newer (only the standard "
                         "library). Install python3, or set python (or a set-up command "
                         "such as [\"module\", \"load\", \"python3\"]) in this host's "
                         "profile.")
        raise errors.RemoteSetupError(
            f"Could not look for Python on {label}.", code="no-python",
            hint=f"The remote shell answered: {(output or stderr).strip()[-200:]}")

    def agent_command(self, python: str, agent_path: str, *args: str) -> str:
        """The command line that runs the agent (after the set-up, when there is any)."""
        if args[:1] == ("serve",) and (self.commands or self.batch):
            # Batch jobs run the set-up too, then the commands only they need.
            args = (*args, "--setup", json.dumps(self.commands + self.batch))
        command = quoted_argv([python, agent_path, *args])
        return self.shell("exec " + command) if self.commands or self.ffmpeg else command


def quoted_argv(argv: list[str]) -> str:
    """An argv as one shell command line, every word quoted."""
    return " ".join(shlex.quote(part) for part in argv)


PYTHON_PROBE = "import sys; print('%d.%d' % sys.version_info[:2])"
