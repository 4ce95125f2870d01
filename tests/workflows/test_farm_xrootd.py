"""Inputs read over XRootD, as on the grid (``xrootd`` marker).

Needs the XRootD test server (``tests/farm/xrootd.sh``: Debian's xrootd-server, serving a
folder on localhost) and fsspec-xrootd; elsewhere these tests are skipped. The files are
copied into the served folder and read back as ``root://localhost:1094//...`` URLs through
uproot's fsspec source. Every command runs in a subprocess with a hard timeout (a client
that waits for a dead server must fail the test, not hang it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.io.ingest import Fileset, validate_fileset
from analysis.stats.histograms import HistSet
from tests.farm import XROOTD_PORT, XROOTD_ROOT, serve
from tests.farm.inputs import BRANCHES, SAMPLE, assert_same_selection, hh_config, hh_inputs

pytestmark = pytest.mark.xrootd

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 120


def _hepline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analysis.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=TIMEOUT_S, check=False)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The HH inputs on local disk and the same files on the XRootD server."""
    folder = tmp_path_factory.mktemp("xrootd")
    files, wp = hh_inputs(folder / "in", n_events=1500)
    urls = serve(files)
    yield {"files": files, "urls": urls, "wp": wp, "folder": folder}
    shutil.rmtree(XROOTD_ROOT / urls[0].split("//")[2].split("/")[0], ignore_errors=True)


def test_the_hh_selection_over_root_urls_equals_the_local_run(served):
    folder = served["folder"]
    config = hh_config(folder / "config.yaml")
    out = {}
    for name, inputs in (("local", list(map(str, served["files"]))), ("remote", served["urls"])):
        proc = _hepline("select", "--config", str(config), "--working-points", str(served["wp"]),
                        "--output", str(folder / f"{name}.pkl"), "--metrics", str(folder / f"{name}.json"),
                        *inputs)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[name] = HistSet.read(folder / f"{name}.pkl")
    assert_same_selection(out["local"], out["remote"])
    assert out["remote"].samples[SAMPLE].files == served["urls"]
    local, remote = (json.loads((folder / f"{n}.json").read_text()) for n in ("local", "remote"))
    assert remote["events"] == local["events"] == 3000
    assert remote["bytes_read"] == local["bytes_read"] > 0
    # provenance: a URL has no local identity (inode, hash); it is listed by name
    prov = json.loads((folder / "remote.json.provenance.json").read_text())
    assert prov["extra"]["remote_inputs"] == served["urls"]
    assert [i["path"] for i in prov["inputs"]] == [str(served["wp"])]


def test_a_fileset_of_urls_is_grouped_and_validated_like_local_files(served):
    remote = Fileset.from_files(served["urls"], required_branches=BRANCHES)
    local = Fileset.from_files(served["files"], required_branches=BRANCHES)
    assert list(remote) == list(local) == [SAMPLE]
    assert remote[SAMPLE]["metadata"] == local[SAMPLE]["metadata"]
    good, fmt = validate_fileset(remote, BRANCHES)
    assert fmt == "hepline" and good.files() == served["urls"]
    assert sorted(good.num_entries.values()) == sorted(local.num_entries.values()) == [1500, 1500]


def test_a_missing_remote_file_is_one_line_naming_the_url(served, capsys):
    url = served["urls"][0].rsplit("/", 1)[0] + "/no_such_file.root"
    proc = _hepline("select", "--config", str(hh_config(served["folder"] / "c.yaml")),
                    "--output", str(served["folder"] / "x.pkl"), url)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"hepline: error: {url}: no such file on the XRootD server "
                                  f"localhost:{XROOTD_PORT}"), proc.stderr


def test_an_unreachable_server_is_one_line_naming_the_url_within_seconds(served):
    url = "root://localhost:1//hepline/sample.root"  # nothing listens on port 1
    t0 = time.monotonic()
    proc = _hepline("select", "--config", str(hh_config(served["folder"] / "c.yaml")),
                    "--output", str(served["folder"] / "x.pkl"), url)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"hepline: error: {url}: XRootD server localhost:1 unreachable"), proc.stderr
    assert "check the URL's host and port" in proc.stderr
    # the XRootD client's own defaults wait ≈ 8 minutes; analysis.io.ingest bounds it
    assert elapsed < 60, elapsed
