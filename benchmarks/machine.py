"""What a benchmark ran on, and pinning it to one CPU.

Numbers from two runs compare only as well as their machines and versions
do, so every run records both beside its numbers.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import redis

#: Distributions whose versions a run records, by the name it records them under.
DISTRIBUTIONS = {
    "flask": "flask",
    "werkzeug": "werkzeug",
    "redis-py": "redis",
    "hiredis": "hiredis",
    "msgpack": "msgpack",
    "flask-session": "flask-session",
    "flask-scs-redis": "flask-scs-redis",
}


def describe_machine() -> dict[str, Any]:
    """The CPU model and count, the OS and the Python that run the benchmark."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def versions(client: redis.Redis) -> dict[str, str | None]:
    """Each library's version (None: not installed), redis-server's, and this checkout's commit."""
    found: dict[str, str | None] = {}
    for name, distribution in DISTRIBUTIONS.items():
        try:
            found[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["redis-server"] = client.info("server")["redis_version"]
    found["commit"] = _commit()
    return found


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def _commit() -> str:
    """The checkout's short commit, with ``+dirty`` when the working tree has changes."""
    here = Path(__file__).parent
    try:
        commit = _git(here, "rev-parse", "--short", "HEAD")
        return commit + ("+dirty" if _git(here, "status", "--porcelain") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _git(where: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", *arguments], capture_output=True, text=True, check=True, cwd=where
    ).stdout.strip()


@contextmanager
def one_cpu(redis_pid: int | None, *, pin: bool = True) -> Iterator[bool]:
    """Pin this process and Redis to one CPU if ``pin``, and yield whether that was done.

    A round trip between two CPUs adds a wake-up of the other CPU at random
    (some 45 µs on the 2-core development machine); on one CPU every round
    trip pays the same. Not every OS allows it (macOS has no affinity).
    """
    if not pin or not hasattr(os, "sched_setaffinity") or redis_pid is None:
        yield False
        return
    mine, theirs = os.sched_getaffinity(0), os.sched_getaffinity(redis_pid)
    cpu = {min(mine & theirs or mine)}
    try:
        os.sched_setaffinity(0, cpu)
        os.sched_setaffinity(redis_pid, cpu)
    except OSError:
        os.sched_setaffinity(0, mine)
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setaffinity(0, mine)
        with contextlib.suppress(OSError):  # Redis may be gone already
            os.sched_setaffinity(redis_pid, theirs)
