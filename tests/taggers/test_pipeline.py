"""The whole tagger chain on the generated ttbar fixture: prepare -> train (tiny epochs) ->
evaluate -> decorate, through ``hepline taggers ...``, and the Snakemake rules.

:func:`small_pipeline` runs the chain once per session (cached) for test_prepare,
test_evaluate and test_decorate too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uproot
import yaml

from taggers import TAGGERS
from taggers.evaluate import PLOT_FILES

REPO = Path(__file__).resolve().parents[2]
WPS = ("60", "70", "77", "85")

_CACHE: dict[str, dict[str, Any]] = {}

#: tiny models: the chain, not the physics, is under test here
TINY = {
    "tagger_models": {
        "rnnip": {"max_epochs": 2, "batch_size": 256},
        "dl1": {"max_epochs": 2, "layers": [16, 8], "batch_size": 256},
        "mv2": {"n_estimators": 30, "max_depth": 3},
    },
    "taggers": {"evaluation": {"bootstrap": 20}},
}


def write_config(path: Path, overrides: dict | None = None) -> Path:
    """The default config with ``TINY`` (and ``overrides``) merged in, as a YAML file."""
    cfg = yaml.safe_load((REPO / "workflows" / "config" / "default.yaml").read_text())
    for extra in (TINY, overrides or {}):
        for section, value in extra.items():
            base = cfg.setdefault(section, {})
            for k, v in value.items():
                base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    path.write_text(yaml.safe_dump(cfg))
    return path


def small_pipeline(ttbar_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run ``hepline taggers prepare|train|evaluate|decorate`` on ``ttbar_file`` once; the
    paths of the outputs."""
    key = str(ttbar_file)
    if key in _CACHE:
        return _CACHE[key]
    from analysis.cli import main

    base = tmp_path_factory.mktemp("taggers_pipeline")
    out = base / "taggers"
    models = out / "models"
    cfg = write_config(base / "config.yaml")
    assert main(["taggers", "prepare", "--config", str(cfg), "--output-dir", str(out), str(ttbar_file)]) == 0
    for tagger in ("rnnip", "mv2", "dl1"):
        assert main(["taggers", "train", "--config", str(cfg), "--tagger", tagger, "--train", str(out / "train.h5"),
                     "--validation", str(out / "validation.h5"), "--model-dir", str(models),
                     "--threads", "1"]) == 0
    assert main(["taggers", "evaluate", "--config", str(cfg), "--test", str(out / "test.h5"),
                 "--models", str(models), "--output-dir", str(out)]) == 0
    decorated = base / "decorated" / "ttbar" / "ttbar_0.root"
    assert main(["taggers", "decorate", "--config", str(cfg), "--models", str(models),
                 "--output", str(decorated), str(ttbar_file)]) == 0
    _CACHE[key] = {
        "base": base,
        "config": cfg,
        "out": out,
        "models": models,
        "ipxd": out / "ipxd",
        "input": ttbar_file,
        "decorated": decorated,
    }
    return _CACHE[key]


@pytest.fixture(scope="module")
def pipeline(tagger_ttbar_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return small_pipeline(tagger_ttbar_file, tmp_path_factory)


def test_every_output_is_written(pipeline) -> None:
    out = pipeline["out"]
    for name in (
        "train.h5",
        "validation.h5",
        "test.h5",
        "prepare.json",
        "ipxd/ip2d.npz",
        "ipxd/ip3d.npz",
        "working_points.json",
        "results.json",
        "discriminants.root",
        "test_scores.h5",
        "working_points.correctionlib.json",
        *(f"plots/{f}" for f in PLOT_FILES.values()),
        *(
            f"models/{f}"
            for f in (
                "rnnip.pt",
                "rnnip.onnx",
                "rnnip.history.json",
                "mv2.json",
                "mv2.onnx",
                "dl1.pt",
                "dl1.onnx",
                "dl1.history.json",
            )
        ),
        *(f"models/{t}.metrics.json" for t in ("rnnip", "mv2", "dl1")),
    ):
        p = out / name
        assert p.is_file() and p.stat().st_size > 0, name
    for p in PLOT_FILES.values():
        assert (out / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # atomic writes leave no temporary files behind
    assert not [p for p in pipeline["base"].rglob("*") if ".tmp." in p.name]
    assert pipeline["decorated"].is_file()


def test_working_point_file_layout(pipeline) -> None:
    wp = json.loads((pipeline["out"] / "working_points.json").read_text())
    assert set(wp["taggers"]) == set(TAGGERS)
    for t, entry in wp["taggers"].items():
        assert entry["variable"] == f"Jet_btag_{t}"
        assert (entry["fc"] is None) == (t == "mv2")
        assert set(entry["working_points"]) == set(WPS)
        cuts = [entry["working_points"][w]["cut"] for w in WPS]
        assert cuts == sorted(cuts, reverse=True), t  # tighter WP = higher cut
        for w in WPS:
            e = entry["working_points"][w]
            assert e["b_efficiency"] == pytest.approx(int(w) / 100)
            for k in (
                "cut",
                "light_rejection",
                "light_rejection_err",
                "c_rejection",
                "c_rejection_err",
            ):
                assert isinstance(e[k], float) and np.isfinite(e[k]), (t, w, k)
            assert e["light_rejection"] >= 1.0 and e["c_rejection"] >= 1.0
        # per-pT-bin efficiency maps, the same numbers as results.json's efficiency_vs_pt
        maps = entry["efficiency_vs_pt"]
        edges = maps["pt_edges_gev"]
        assert edges == sorted(edges) and set(maps["working_points"]) == set(WPS)
        for w in WPS:
            for fl in ("b", "c", "light"):
                effs = maps["working_points"][w][fl]
                assert len(effs) == len(edges) - 1
                assert all(x is None or 0.0 <= x <= 1.0 for x in effs), (t, w, fl)
                jets = maps["jets"][w][fl]
                assert len(jets) == len(effs) and all((n == 0) == (x is None) for n, x in zip(jets, effs, strict=True))
            b = [x for x in maps["working_points"][w]["b"] if x is not None]
            assert b and abs(np.mean(b) - int(w) / 100) < 0.3  # around the inclusive WP
    prov = wp["provenance"]
    for k in ("hepline_version", "config_hash", "sample", "n_test_jets", "dataset_id"):
        assert prov[k] not in (None, ""), k
    assert prov["sample"] == "ttbar" and prov["n_test_jets"] > 50


def test_results_content(pipeline) -> None:
    res = json.loads((pipeline["out"] / "results.json").read_text())
    assert res["test_split"]["weights"] == "unit" and res["test_split"]["reweighted"] is False
    for t in TAGGERS:
        entry = res["taggers"][t]
        assert len(entry["roc"]["light_rejection"]) == len(res["roc_b_efficiency"])
        eff_pt = entry["efficiency_vs_pt"]["70"]["b"]
        assert len(eff_pt["eff"]) == len(res["binning"]["pt_edges_gev"]) - 1
        assert sum(eff_pt["n"]) > 0
    # the track-based taggers separate b from light even on this tiny sample
    assert res["taggers"]["ip3d"]["auc_b_vs_light"] > 0.75
    assert res["taggers"]["mv2"]["auc_b_vs_light"] > 0.75
    ratio = res["rnnip_over_ip3d_light_rejection"]
    assert ratio["wp"] == "70" and ratio["value"] > 0 and ratio["error"] > 0
    inf = res["inference"]
    for kind in ("rnnip", "dl1"):
        assert inf[kind]["torch_jets_per_s"] > 0 and inf[kind]["onnx_jets_per_s"] > 0
        assert inf[kind]["onnx_max_abs_diff"] < 1e-4
    assert inf["mv2"]["onnx_jets_per_s"] > 0 and inf["mv2"]["onnx_max_abs_diff"] <= 1e-6
    with uproot.open(pipeline["out"] / "discriminants.root") as f:
        names = {k.split(";")[0] for k in f.keys()}  # noqa: SIM118 (uproot keys, not a dict)
        assert names == {f"disc_{t}_{fl}" for t in TAGGERS for fl in ("b", "c", "light", "tau")} | {
            "hepline_provenance"
        }
        h = f["disc_ip3d_b"]
        assert (
            h.classname == "TH1D"
            and h.values(flow=True).sum() == res["test_split"]["flavours"]["b"]["jets"]
        )


def test_training_metrics(pipeline) -> None:
    models = pipeline["models"]
    ids = set()
    for t in ("rnnip", "mv2", "dl1"):
        m = json.loads((models / f"{t}.metrics.json").read_text())
        assert m["train_jets_per_s"] > 0 and m["n_train_jets"] > 500
        ids.add(m["dataset"]["dataset_id"])
        if t != "mv2":
            assert m["epochs_run"] == 2 and m["onnx"]["max_abs_diff"] < 1e-4
        else:  # the ONNX tree ensemble gives XGBoost's score to float32 precision
            assert m["onnx"]["max_abs_diff"] <= 1e-6 and m["onnx"]["checked_jets"] > 100
    assert len(ids) == 1
    dl1 = json.loads((models / "dl1.metrics.json").read_text())
    assert dl1["features"][-4:] == ["rnnip_pb", "rnnip_pc", "rnnip_pu", "rnnip_ptau"]


def test_snakemake_rules_parse(tmp_path: Path) -> None:
    """``snakemake -n`` of the project's Snakefile (which includes taggers.smk) with the
    default config: the whole tagger DAG resolves."""
    snakefile = REPO / "Snakefile"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(snakefile),
            "-d",
            str(REPO),
            "-n",
            "--nolock",
            "--forceall",
            "taggers_all",
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    stats = text[text.index("Job stats") :]
    for rule in (
        "taggers_prepare",
        "taggers_train_rnnip",
        "taggers_train_mv2",
        "taggers_train_dl1",
        "taggers_evaluate",
        "taggers_decorate",
        "taggers_all",
    ):
        assert f"\n{rule} " in stats, rule
    # default decorated samples: all but the RPV and QCD ones
    assert "results/decorated/yy/yy_0.root" in text and "results/decorated/rpv" not in text
    assert "results/decorated/qcd" not in text


def test_stage_outputs_carry_provenance(pipeline) -> None:
    """Every stage output has a run-provenance record naming its stage and its inputs."""
    from analysis.core.provenance import file_identity, read_provenance

    out, models = pipeline["out"], pipeline["models"]
    src = file_identity(pipeline["input"])
    for name in ("train.h5", "validation.h5", "test.h5", "prepare.json", "ipxd/ip3d.npz"):
        rec = read_provenance(out / name)
        assert rec["stage"] == "taggers.prepare", name
        assert rec["inputs"] == [src], name
    for tagger, model in (("rnnip", "rnnip.pt"), ("mv2", "mv2.json"), ("dl1", "dl1.pt")):
        for path in (models / model, models / f"{tagger}.metrics.json"):
            rec = read_provenance(path)
            assert rec["stage"] == f"taggers.train.{tagger}", path
            assert rec["inputs"][0] == file_identity(out / "train.h5"), path
    assert read_provenance(models / "dl1.onnx")["stage"] == "taggers.train.dl1"
    assert read_provenance(models / "mv2.onnx")["stage"] == "taggers.train.mv2"
    for name in ("working_points.json", "results.json", "discriminants.root", "test_scores.h5",
                 "working_points.correctionlib.json",
                 *(f"plots/{p}" for p in PLOT_FILES.values())):
        rec = read_provenance(out / name)
        assert rec["stage"] == "taggers.evaluate", name
        assert rec["inputs"][0] == file_identity(out / "test.h5"), name
    rec = read_provenance(pipeline["decorated"])
    assert rec["stage"] == "taggers.decorate" and rec["inputs"][0] == src
    assert {i["path"] for i in rec["inputs"][1:]} >= {str(models / "dl1.pt"), str(models / "rnnip.pt")}
