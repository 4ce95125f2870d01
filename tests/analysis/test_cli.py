"""The ``hepline`` command: dispatch, common flags, config errors, provenance output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import uproot
import yaml

import analysis
from analysis.cli import main
from analysis.core.config import config_hash, load_config
from analysis.core.provenance import file_identity, read_provenance
from tests.fixtures.paths import DEFAULT_CONFIG as CONFIG
N_EVENTS = 20


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20-event ttbar shard written through ``hepline generate`` (with ``--seed``)."""
    out = tmp_path_factory.mktemp("cli") / "ttbar_0.root"
    rc = main(["generate", "--config", str(CONFIG), "--sample", "ttbar", "--shard", "0",
               "--events", str(N_EVENTS), "--seed", "77", "--output", str(out), "--quiet"])
    assert rc == 0
    return out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"hepline {analysis.__version__}"


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("hepline")
    assert exe.is_file(), "pip install -e . creates the hepline script"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"hepline {analysis.__version__}"


def test_config_check_good(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(CONFIG)]) == 0
    out = capsys.readouterr().out
    assert f"config hash: {config_hash(load_config(CONFIG))}" in out


def test_config_check_broken_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["generation"]["samples"]["ttbar"]["events_per_shard"] = "many"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "generation.samples.ttbar.events_per_shard" in err and "'many' is not of type" in err
    assert "Traceback" not in err

    bad.write_text("seed: [unclosed\n")
    assert main(["config", "check", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_bad_config_in_a_stage_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: -1\ngeneration: {}\n")
    exe = Path(sys.executable).with_name("hepline")
    res = subprocess.run([str(exe), "generate", "--config", str(bad), "--sample", "ttbar"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 2
    assert str(bad) in res.stderr and "seed: -1 is less than the minimum" in res.stderr
    assert "Traceback" not in res.stderr


def test_generate_writes_provenance_into_the_ntuple(shard: Path) -> None:
    rec = read_provenance(shard)
    cfg = load_config(CONFIG).replace(seed=77)
    assert rec["stage"] == "generation.produce"
    assert rec["config_hash"] == config_hash(cfg)
    assert rec["seeds"]["base"] == 77
    with uproot.open(shard) as f:
        meta = json.loads(str(f["hepline_metadata"]))
        assert f["Events"].num_entries == N_EVENTS
    assert rec["seeds"]["shard"] == meta["seed"]


def test_merge_records_the_shard_identity(shard: Path, tmp_path: Path) -> None:
    out = tmp_path / "ttbar.json"
    assert main(["merge", "--output", str(out), str(shard)]) == 0
    assert json.loads(out.read_text())["n_events"] == N_EVENTS
    rec = read_provenance(out)
    assert rec["stage"] == "generation.merge"
    assert rec["inputs"] == [file_identity(shard)]
    with uproot.open(shard) as f:
        assert rec["inputs"][0]["uuid"] == str(f.file.uuid)


def test_validate_with_workers(shard: Path, tmp_path: Path) -> None:
    out = tmp_path / "validation"
    assert main(["validate", "--config", str(CONFIG), "--sample", "ttbar", "--workers", "1",
                 "--output-dir", str(out), str(shard)]) == 0
    for name in ("ttbar.root", "ttbar.json", "ttbar.png"):
        rec = read_provenance(out / name)
        assert rec["stage"] == "validation"
        assert rec["inputs"][0]["uuid"] == file_identity(shard)["uuid"]
    assert not (out / "ttbar.root.provenance.json").exists()  # ROOT: inside the file
    assert (out / "ttbar.png.provenance.json").is_file()


def test_provenance_command(shard: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = read_provenance(shard)
    assert main(["provenance", str(shard)]) == 0
    text = capsys.readouterr().out
    assert str(shard) in text and "generation.produce" in text and rec["config_hash"] in text
    assert main(["provenance", "--json", str(shard)]) == 0
    assert json.loads(capsys.readouterr().out) == {str(shard): rec}


def test_provenance_command_without_a_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    assert main(["provenance", str(plain)]) == 2
    err = capsys.readouterr().err
    assert "plain.json" in err and "no provenance" in err


def test_unknown_commands(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["frobnicate"], ["taggers", "bogus"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "prepare" in capsys.readouterr().err


@pytest.mark.parametrize("argv, flag", [
    (["taggers", "prepare", "--help"], "--seed"),
    (["taggers", "train", "--help"], "--workers"),
    (["calo", "train", "--help"], "--seed"),
    (["validate", "--help"], "--workers"),
    (["generate", "--help"], "--seed"),
    (["rpv", "select", "--help"], "--output"),
    (["select", "--help"], "--seed"),
    (["select", "--help"], "--workers"),
])
def test_every_command_has_its_flags(argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert flag in capsys.readouterr().out


def test_seed_and_workers_reach_the_typed_config(tmp_path: Path) -> None:
    from analysis.cli import build_parser, stage_config

    args = build_parser().parse_args(["validate", "--config", str(CONFIG), "--sample", "s", "--output-dir",
                                      str(tmp_path), "--workers", "3", "x.root"])
    assert stage_config(args).runner.workers == 3
    args = build_parser().parse_args(["generate", "--config", str(CONFIG), "--sample", "ttbar", "--seed", "5"])
    cfg = stage_config(args)
    assert cfg.seed == 5 and cfg.generation == load_config(CONFIG).generation


@pytest.mark.parametrize("value", ["x", "-1"])
def test_a_bad_seed_is_a_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--config", str(CONFIG), "--sample", "ttbar", "--seed", value])
    assert exc.value.code == 2 and "--seed" in capsys.readouterr().err


def test_a_bad_input_file_is_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.root"
    garbage.write_bytes(b"not a ROOT file" * 10)
    exe = Path(sys.executable).with_name("hepline")
    argv = [str(exe), "validate", "--config", str(CONFIG), "--sample", "ttbar",
            "--output-dir", str(tmp_path / "out"), str(garbage)]
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("hepline: error:")]
    assert len(lines) == 1 and str(garbage) in lines[0] and "Traceback" not in res.stderr
    res = subprocess.run([*argv[:2], "--debug", *argv[2:]], capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "Traceback" in res.stderr and str(garbage) in res.stderr


def test_a_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["merge", "--output", str(tmp_path / "m.json"), str(tmp_path / "absent.root")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hepline: error:") and "absent.root" in err and "\n" not in err
