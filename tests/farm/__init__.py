"""The test farm: a one-node Slurm cluster and an XRootD server on this machine.

``tests/farm/slurm.sh`` and ``tests/farm/xrootd.sh`` install (apt) and start them (see their
headers); this module is what the tests and benchmarks use to talk to them. Every call to
a scheduler or server command has a hard timeout: this path fails by hanging (a job that
pends forever, a status command that never sees the job end, a dead server that the
XRootD client retries for minutes), and a hang must become a failure with a message.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = [
    "FARM",
    "SCHEDULER_TIMEOUT_S",
    "XROOTD_PORT",
    "XROOTD_ROOT",
    "SlurmJob",
    "scheduler",
    "serve",
    "slurm_available",
    "squeue",
    "wait_until",
    "xrootd_available",
]

FARM = Path(__file__).resolve().parent
SCHEDULER_TIMEOUT_S = 30.0
"""Hard limit of one scheduler command (sbatch, squeue, scancel, sinfo, scontrol)."""
XROOTD_PORT = int(os.environ.get("HEPLINE_XROOTD_PORT", "1094"))
XROOTD_ROOT = Path(os.environ.get("HEPLINE_XROOTD_ROOT", "/var/lib/hepline-xrootd/data"))
"""The folder the XRootD test server serves: ``XROOTD_ROOT/a/b.root`` is
``root://localhost:XROOTD_PORT//a/b.root``."""


def scheduler(*args: str, timeout: float = SCHEDULER_TIMEOUT_S, check: bool = True) -> str:
    """stdout of one scheduler command, killed after ``timeout`` seconds.

    Raises ``subprocess.TimeoutExpired`` (the hang, bounded) or, with ``check``,
    ``RuntimeError`` naming the command and its stderr when it fails.
    """
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


@lru_cache(maxsize=1)
def slurm_available() -> str | None:
    """None when a Slurm cluster answers here (sinfo lists an idle or busy node), else why not."""
    if shutil.which("sinfo") is None:
        return "no Slurm here (sinfo not on PATH); start one: tests/farm/slurm.sh"
    try:
        states = scheduler("sinfo", "-h", "-o", "%T", timeout=10).split()
    except (subprocess.TimeoutExpired, RuntimeError) as exc:
        return f"sinfo does not answer ({' '.join(str(exc).split())[:200]}); start: tests/farm/slurm.sh"
    if not any(s.rstrip("*") in ("idle", "mixed", "allocated", "completing") for s in states):
        return f"no usable Slurm node (sinfo: {', '.join(states) or 'none'})"
    return None


@lru_cache(maxsize=1)
def xrootd_available() -> str | None:
    """None when the XRootD test server accepts connections and fsspec-xrootd is installed."""
    try:
        import fsspec_xrootd  # noqa: F401
    except ImportError:
        return "fsspec-xrootd is not installed (pip install 'hepline[farm]')"
    try:
        with socket.create_connection(("127.0.0.1", XROOTD_PORT), timeout=2):
            pass
    except OSError as exc:
        return f"no XRootD server on port {XROOTD_PORT} ({exc}); start one: tests/farm/xrootd.sh"
    if not XROOTD_ROOT.is_dir():
        return f"{XROOTD_ROOT} (the served folder) does not exist; start: tests/farm/xrootd.sh"
    return None


def serve(paths: Sequence[Path], folder: str | None = None) -> list[str]:
    """Copy ``paths`` into a new folder under :data:`XROOTD_ROOT` (readable by the server's
    user) and return their ``root://localhost:PORT//...`` URLs, in order."""
    sub = XROOTD_ROOT / (folder or f"t-{uuid.uuid4().hex[:12]}")
    sub.mkdir(parents=True, exist_ok=True)
    sub.chmod(0o755)
    urls = []
    for path in paths:
        dest = sub / Path(path).name
        shutil.copyfile(path, dest)
        dest.chmod(0o644)
        urls.append(f"root://localhost:{XROOTD_PORT}//{dest.relative_to(XROOTD_ROOT)}")
    return urls


@dataclass(frozen=True)
class SlurmJob:
    """One line of ``squeue --states=all``."""

    job_id: str
    name: str
    comment: str
    state: str
    reason: str


def squeue(name: str | None = None) -> list[SlurmJob]:
    """Every job Slurm still knows (pending, running, and those ended less than
    ``MinJobAge`` ago), optionally only those named ``name``."""
    args = ["squeue", "-h", "--states=all", "-o", "%i|%j|%k|%T|%r"]
    if name:
        args += ["--name", name]
    jobs = []
    for line in scheduler(*args).splitlines():
        job_id, jname, comment, state, reason = line.split("|", 4)
        jobs.append(SlurmJob(job_id.strip(), jname, comment, state, reason))
    return jobs


def wait_until(what: str, ready: Callable[[], object], timeout: float, poll: float = 0.5) -> object:
    """Poll ``ready()`` until it returns something true (returned) or ``timeout`` seconds
    pass (``TimeoutError`` naming ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(poll)
