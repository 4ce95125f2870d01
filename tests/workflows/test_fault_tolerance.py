"""Fault tolerance: a workflow killed mid-write reruns only what is needed, to the same result.

Real Snakemake runs (local profile) of a tiny config derived from default.yaml (one
``ttbar`` sample, two shards of 150 events; target: its validation histograms,
``validation/ttbar.root``), into two temporary folders:

* A: the clean run (both shards, then the validation).
* B: the same workflow with one core, so that the shards come one after the other.

  1. Killed (``SIGKILL`` to the process group of Snakemake and its jobs: nothing can clean
     up, as after a power cut or a batch-system kill) while the second shard's ntuple is
     half written (its ``.ttbar_<k>.tmp.*.root`` has grown since first seen). Only the
     temporary file is there, no ``ttbar_<k>.root``/``.metrics.json``. The same command
     then stops with a ``LockException`` (the dead Snakemake's lock) until ``--unlock``.
  2. Reruns exactly the killed shard (the finished one keeps its inode and mtime) and the
     validation, and is killed again inside the validation job, after its ROOT output is in
     place but before its PNG and JSON.
  3. Without the profile, Snakemake refuses (``IncompleteFilesException``: that ROOT file is
     marked incomplete); with the profile (``rerun-incomplete``) it reruns the validation
     only ("Forced execution"), and a 4th run has nothing to do.

Then B must equal A: the histograms (names, classes, titles, bin edges, axis titles,
contents and variances with under/overflow, TH1 statistics, all compared exactly), both
ntuples (every branch) and the validation summary (less its wall times). Files are not
compared byte by byte: every output carries its provenance (timestamps, UUIDs). The killed
shard's temporary file stays behind (nothing runs at a SIGKILL); no rule reads or writes
it, and it is the only difference between the file lists of A and B (docs/workflow.md,
"Fault tolerance"). About 50 s on 2 cores.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml

from tests.workflows.test_snakemake import _job_stats

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SAMPLE = "ttbar"
N_SHARDS = 2
TARGET = Path("validation") / f"{SAMPLE}.root"
TMP_RE = re.compile(rf"^\.({SAMPLE}_\d+)\.tmp\..+\.root$")
TH1_STATS = ("fEntries", "fTsumw", "fTsumw2", "fTsumwx", "fTsumwx2")


def _write_config(workdir: Path) -> Path:
    """A tiny config derived from default.yaml: one ttbar sample (2 × 150 events) plus the
    small signal sample the calo rules insist on naming (never generated here)."""
    default = yaml.safe_load((REPO / "workflows" / "config" / "default.yaml").read_text())
    samples = default["generation"]["samples"]
    cfg = {
        "seed": default["seed"],
        "output_dir": str(workdir / "out"),
        "generation": {
            **{k: v for k, v in default["generation"].items() if k != "samples"},
            # small baskets: the ntuple grows batch by batch, so there is a "mid-write"
            "batch_size": 25,
            "basket_events": 25,
            "samples": {
                SAMPLE: {**samples[SAMPLE], "shards": N_SHARDS, "events_per_shard": 150},
                "xhh_300": {**samples["xhh_300"], "events_per_shard": 100},
            },
        },
        "rpv": {"signal_samples": ["xhh_300"], "background_samples": [SAMPLE]},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _command(workdir: Path, cores: int, profile: bool = True) -> list[str]:
    prof = ["--profile", str(REPO / "workflows" / "profiles" / "local")] if profile else []
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), *prof, "--configfile", str(workdir / "config.yaml"),
            "--cores", str(cores), str(workdir / "out" / TARGET)]


def _env(workdir: Path) -> dict[str, str]:
    # the jobs' scratch (Pythia's work folder) inside the test folder, not in /tmp
    tmp = workdir / "scratch"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "CONDOR_CONFIG": os.environ.get("CONDOR_CONFIG", "/dev/null"),
            "TMPDIR": str(tmp)}


def _snakemake(workdir: Path, cores: int, *extra: str, ok: bool = True, profile: bool = True,
               timeout: float = 240) -> str:
    proc = subprocess.run([*_command(workdir, cores, profile), *extra], check=False, cwd=workdir,
                          env=_env(workdir), capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == ok, out[-4000:]
    return out


def _shard_wildcards(out: str) -> list[str]:
    """The shards of the generate_shard jobs Snakemake started."""
    block = (r"^(?:local)?rule generate_shard:\n(?:    .*\n)*?"
             r"    wildcards: sample=\w+, shard=(\d+)\n")
    return re.findall(block, out, re.MULTILINE)


def _run_and_kill(workdir: Path, ready: Callable[[], object], what: str,
                  timeout: float = 180) -> tuple[object, str]:
    """Start the workflow (one core), poll ``ready()`` until it returns something true, then
    SIGKILL Snakemake and every job (one process group); return that value and the log."""
    log = workdir / f"killed_{what.replace(' ', '_')}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(_command(workdir, cores=1), cwd=workdir, env=_env(workdir),
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    pytest.fail(f"the workflow ended (rc {proc.returncode}) before it could be "
                                f"killed {what}:\n{log.read_text()[-3000:]}")
                if found := ready():
                    break
                time.sleep(0.02)
            else:
                pytest.fail(f"timed out waiting to kill {what}:\n{log.read_text()[-3000:]}")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return found, log.read_text()


def _shard_mid_write(folder: Path) -> Callable[[], Path | None]:
    """Ready when a shard's temporary ntuple has grown (a basket written since it was first
    seen) while another shard is finished."""
    seen: dict[str, int] = {}

    def ready() -> Path | None:
        names = os.listdir(folder) if folder.is_dir() else []
        done = {n[:-5] for n in names if n.endswith(".root") and not n.startswith(".")}
        for name in names:
            m = TMP_RE.match(name)
            if not (done and m and m.group(1) not in done):
                continue
            try:
                size = (folder / name).stat().st_size
            except FileNotFoundError:  # renamed between listdir and stat
                continue
            if size > seen.setdefault(name, size):
                return folder / name
        return None

    return ready


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def _files(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


def _histograms(path: Path) -> dict[str, dict]:
    """Everything that defines the histograms of a ROOT file, as comparable python/numpy."""
    hists = {}
    with uproot.open(path) as f:
        for key, cls in f.classnames(cycle=False).items():
            if not cls.startswith("TH"):
                continue
            h = f[key]
            axes = [h.axis(i) for i in range(len(h.axes))]
            hists[key] = {
                "class": cls,
                "name": h.member("fName"),
                "title": h.member("fTitle"),
                "edges": [a.edges(flow=False) for a in axes],
                "axis_titles": [a.member("fTitle") for a in axes],
                "values": h.values(flow=True),
                "variances": h.variances(flow=True),
                "stats": [h.member(m) for m in TH1_STATS],
            }
    return hists


def _assert_same_histograms(a: Path, b: Path) -> None:
    ha, hb = _histograms(a), _histograms(b)
    assert ha, f"no histograms in {a}"
    assert sorted(ha) == sorted(hb)
    for key in ha:
        x, y = ha[key], hb[key]
        assert (x["class"], x["name"], x["title"], x["axis_titles"]) == \
               (y["class"], y["name"], y["title"], y["axis_titles"]), key
        assert len(x["edges"]) == len(y["edges"]), key
        for ea, eb in zip(x["edges"], y["edges"]):
            np.testing.assert_array_equal(ea, eb, err_msg=f"{key}: bin edges")
        np.testing.assert_array_equal(x["values"], y["values"], err_msg=f"{key}: contents")
        np.testing.assert_array_equal(x["variances"], y["variances"], err_msg=f"{key}: variances")
        assert x["stats"] == y["stats"], key
    # the histograms are not empty (an empty-vs-empty comparison would prove nothing)
    assert sum(float(h["values"].sum()) for h in ha.values()) > 0


def _assert_same_ntuple(a: Path, b: Path) -> None:
    with uproot.open(a) as fa, uproot.open(b) as fb:
        ta, tb = fa["Events"], fb["Events"]
        assert ta.keys() == tb.keys() and ta.num_entries == tb.num_entries > 0
        xa, xb = ta.arrays(library="ak"), tb.arrays(library="ak")
        for field in xa.fields:
            assert ak.array_equal(xa[field], xb[field], equal_nan=True), f"{a.name}: {field}"


def test_killed_runs_rerun_only_the_killed_jobs_to_identical_histograms(tmp_path):
    run_a, run_b = tmp_path / "A", tmp_path / "B"
    for d in (run_a, run_b):
        d.mkdir()
        _write_config(d)
    out_a, out_b = run_a / "out", run_b / "out"
    samples_b = out_b / "samples" / SAMPLE
    shard_outputs = [samples_b / f"{SAMPLE}_{k}{ext}"
                     for k in range(N_SHARDS) for ext in (".root", ".metrics.json")]
    val_b = {ext: (out_b / TARGET).with_suffix(ext) for ext in (".root", ".png", ".json")}

    # A: clean run
    log_a = _snakemake(run_a, cores=2)
    assert _job_stats(log_a) == {"generate_shard": N_SHARDS, "validate_sample": 1}

    # B, 1st run: killed while the second shard's ntuple is half written
    tmp_file, _ = _run_and_kill(run_b, _shard_mid_write(samples_b), "mid shard")
    killed = TMP_RE.match(tmp_file.name).group(1)  # e.g. ttbar_1
    assert tmp_file.is_file() and tmp_file.stat().st_size > 0
    # the killed job left no output, only its temporary file; the other shard is complete
    assert not (samples_b / f"{killed}.root").exists()
    assert not (samples_b / f"{killed}.metrics.json").exists()
    assert not any(p.exists() for p in val_b.values())
    before = {p: _stamp(p) for p in shard_outputs if p.exists()}
    assert len(before) == 2 * (N_SHARDS - 1)

    # A SIGKILLed Snakemake leaves its lock behind: the same command refuses to start until
    # `--unlock` (by design: Snakemake cannot tell a dead instance from a running one)
    assert "LockException" in _snakemake(run_b, 1, ok=False)
    _snakemake(run_b, 1, "--unlock")

    # B, 2nd run: redoes the killed shard (only) and validates; killed in turn inside the
    # validation job, after its ROOT output is in place but before the PNG and JSON
    _, log = _run_and_kill(run_b, lambda: val_b[".root"].exists() and not val_b[".png"].exists(),
                           "mid validation")
    assert _job_stats(log) == {"generate_shard": 1, "validate_sample": 1}, log[-3000:]
    assert _shard_wildcards(log) == [killed.rsplit("_", 1)[1]]
    assert all(_stamp(p) == stamp for p, stamp in before.items()), "a finished shard was rewritten"
    assert val_b[".root"].exists() and not val_b[".json"].exists()
    half_done = _stamp(val_b[".root"])
    before = {p: _stamp(p) for p in shard_outputs}  # now with the redone shard

    # B, 3rd run: only the validation again. Its ROOT output is in place but Snakemake had
    # marked it incomplete (.snakemake/incomplete): without the profile's rerun-incomplete
    # Snakemake stops and asks; with it, the job is forced to run again.
    _snakemake(run_b, 1, "--unlock")
    assert "IncompleteFilesException" in _snakemake(run_b, 1, ok=False, profile=False)
    log = _snakemake(run_b, cores=1)
    assert _job_stats(log) == {"validate_sample": 1}, log[-3000:]
    assert re.search(r"^    reason: Forced execution$", log, re.MULTILINE), log[-3000:]
    assert all(_stamp(p) == stamp for p, stamp in before.items()), "a finished shard was rewritten"
    assert _stamp(val_b[".root"]) != half_done

    # the stale temporary file remains, untouched by the reruns; stale temporary files are
    # the only extra files (the validation kill lands ~2 s before the PNG's temporary file
    # appears, so normally there is just the shard's)
    assert tmp_file.is_file()
    extra = _files(out_b) - _files(out_a)
    assert str(tmp_file.relative_to(out_b)) in extra
    assert all(Path(f).name.startswith(".") and ".tmp." in f for f in extra), extra
    assert _files(out_a) - _files(out_b) == set()

    # same results as the clean run
    _assert_same_histograms(out_a / TARGET, out_b / TARGET)
    for k in range(N_SHARDS):
        name = f"{SAMPLE}_{k}.root"
        _assert_same_ntuple(out_a / "samples" / SAMPLE / name, samples_b / name)
    sa, sb = (yaml.safe_load((o / "validation" / f"{SAMPLE}.json").read_text())
              for o in (out_a, out_b))
    sa.pop("runner"), sb.pop("runner")  # wall times
    assert sa == sb

    # and a 4th run has nothing to do
    assert "Nothing to be done" in _snakemake(run_b, cores=1)
