"""Where a job's work runs: the request's ``executor`` and ``slurm`` fields over the
host profile's defaults, checked against what the host's Slurm offers (its
partitions and their limits, from the agent's hello).

Nothing from an HTTP request becomes a free-form ``sbatch`` option: a request
may choose the executor, and a partition, a time, CPUs and memory, each
checked; the account, QOS and extra options come from the administrator's
host profile only.
"""

from __future__ import annotations

import re
from typing import Any

from .. import errors
from ..config import SLURM_MEM, SLURM_TIME, HostConfig
from ..records import Hello, Partition

EXECUTORS = ("local", "slurm")
REQUEST_FIELDS = ("partition", "time", "cpus", "mem")
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")


def time_seconds(text: str) -> int | None:
    """A Slurm time (minutes, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) in seconds."""
    match = SLURM_TIME.match(text)
    if match is None:
        return None
    parts = [int(part) for part in match.group(2).split(":")]
    if match.group(1) is not None:
        hours, minutes, secs = (parts + [0, 0])[:3]
        return ((int(match.group(1)) * 24 + hours) * 60 + minutes) * 60 + secs
    if len(parts) == 1:
        return parts[0] * 60
    if len(parts) == 2:
        return parts[0] * 60 + parts[1]
    return (parts[0] * 60 + parts[1]) * 60 + parts[2]


def placement(body: dict[str, Any], profile: HostConfig, hello: Hello,
              hostname: str) -> dict[str, Any]:
    """The ``executor`` argument of create-video: ``{"kind": "local"}`` or the Slurm
    batch job's resources, the request's over the profile's."""
    kind = body.get("executor") or profile.executor or "local"
    if kind not in EXECUTORS:
        raise errors.ValidationError("executor", f"executor must be \"local\" or \"slurm\", "
                                                 f"got {kind!r}.")
    asked = body.get("slurm")
    if asked is not None and not isinstance(asked, dict):
        raise errors.ValidationError("slurm", "slurm must be an object with partition, time, "
                                              "cpus and mem (each optional).")
    asked = asked or {}
    unknown = sorted(set(asked) - set(REQUEST_FIELDS))
    if unknown:
        raise errors.ValidationError(
            f"slurm.{unknown[0]}", f"Unknown option 'slurm.{unknown[0]}'; allowed here: "
            f"{', '.join(REQUEST_FIELDS)} (the account, QOS and other sbatch options come "
            "from the host's profile).")
    if kind == "local":
        if asked:
            raise errors.ValidationError("slurm", "slurm options need \"executor\": "
                                                  "\"slurm\".")
        return {"kind": "local", **({"parallel": profile.max_parallel_chunks}
                                    if profile.max_parallel_chunks else {})}
    slurm = hello.get("slurm")
    if slurm and not slurm.get("partitions"):
        said = slurm.get("error") or "it lists no partition you may submit to"
        raise errors.RemoteSetupError(
            f"Slurm on {hostname} cannot take jobs now: {said}", code="no-slurm",
            pointer="/executor", hint="Check Slurm there (sinfo), then open a new session; "
            "or use \"executor\": \"local\".")
    if not slurm:
        raise errors.RemoteSetupError(
            f"{hostname} has no Slurm: its agent found no sbatch, squeue, scontrol, scancel "
            "and sinfo there.", code="no-slurm", pointer="/executor",
            hint="Use \"executor\": \"local\", or give this host's profile the set-up that "
                 "makes Slurm's commands available (setup = [[\"module\", \"load\", "
                 "\"slurm\"]]), then open a new session.")
    partitions = {item["name"]: item for item in slurm.get("partitions", [])}
    name = asked.get("partition", profile.partition or slurm.get("default_partition"))
    if not isinstance(name, str) or name not in partitions:
        raise errors.ValidationError(
            "slurm.partition", f"Unknown partition {name!r} on {hostname}.",
            hint=f"Partitions you may use there: {', '.join(sorted(partitions))}.")
    chosen = partitions[name]
    limit = _time(asked, profile, chosen)
    cpus = asked.get("cpus", profile.cpus_per_task or None)
    most = chosen.get("max_cpus_per_node")
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, int)
                             or not 1 <= cpus <= (most or 4096)):
        raise errors.ValidationError("slurm.cpus", f"slurm.cpus must be a whole number from "
                                                   f"1 to {most or 4096}, got {cpus!r}.")
    mem = asked.get("mem", profile.mem or None)
    if mem is not None and (not isinstance(mem, str) or not SLURM_MEM.match(mem)):
        raise errors.ValidationError("slurm.mem", f"slurm.mem must be memory as Slurm writes "
                                                  f"it, such as \"4G\" or \"500M\", got {mem!r}.")
    for key, value in (("account", profile.account), ("qos", profile.qos)):
        if value and not _NAME.match(value):  # the administrator's, but still one word
            raise errors.ServerConfigError(f"The {key} of {hostname}'s profile is not a Slurm "
                                           f"name: {value!r}.", code="slurm-config")
    return {"kind": "slurm", "partition": name, "time": limit, "cpus": cpus, "mem": mem,
            "account": profile.account or None, "qos": profile.qos or None,
            "options": list(profile.sbatch_options),
            "parallel": profile.max_parallel_chunks or None}


def _time(asked: dict[str, Any], profile: HostConfig, partition: Partition) -> str | None:
    value = asked.get("time", profile.time or None)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        value = str(value)  # minutes, as Slurm takes a bare number
    wanted = time_seconds(value) if isinstance(value, str) else None
    if wanted is None or wanted <= 0:
        raise errors.ValidationError(
            "slurm.time", f"slurm.time must be a time as Slurm writes it: minutes, "
                          f"\"HH:MM:SS\" or \"D-HH:MM\", got {value!r}.")
    most = partition.get("max_time")
    if most is not None and wanted > most:
        raise errors.ValidationError(
            "slurm.time", f"slurm.time {value} is over the partition {partition['name']}'s "
                          f"limit of {partition.get('max_time_text')}.",
            hint="Ask for less time, or another partition.")
    return str(value)
