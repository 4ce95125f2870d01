"""Tests of analysis.io.runner: executors agree, metrics, skip-bad policy, config checks."""

from __future__ import annotations

import importlib
import json
import runpy
import warnings

import awkward as ak
import numpy as np
import pytest

from analysis.io import ingest, runner
from analysis.core.config import ConfigError, RunnerConfig, config_hash
from tests.fixtures.files import write_hepline_fixture
from analysis.io.ingest import InputFileError
from analysis.core.provenance import file_identity, provenance_record, read_provenance
from analysis.io.runner import SummaryProcessor, run_processor


def _assert_same_output(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for dataset in a:
        x, y = a[dataset], b[dataset]
        for key in ("events", "jets", "tracks_in_jets"):
            assert x[key] == y[key], (dataset, key)
        np.testing.assert_array_equal(x["njet_hist"], y["njet_hist"])
        for key in ("sumw", "sum_jet_pt"):  # chunk outputs merge in completion order
            assert x[key] == pytest.approx(y[key], rel=1e-12), (dataset, key)


@pytest.fixture(scope="module")
def iterative_result(hepline_sample_files):
    return run_processor(
        SummaryProcessor(), hepline_sample_files, RunnerConfig.validated({"executor": "iterative", "chunksize": 10})
    )


def test_iterative_and_futures_agree(iterative_result, hepline_sample_files, tmp_path):
    futures = run_processor(
        SummaryProcessor(),
        hepline_sample_files,
        RunnerConfig.validated({"executor": "futures", "workers": 2, "chunksize": 10}),
        metrics_path=tmp_path / "metrics.json",
    )
    _assert_same_output(iterative_result.output, futures.output)
    assert futures.metrics.executor == "futures" and futures.metrics.cores == 2
    assert iterative_result.metrics.chunks == futures.metrics.chunks >= 9
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["events"] == 95 and written["executor"] == "futures"
    # no temporary left; the provenance sidecar beside the metrics
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "metrics.json.provenance.json"]
    rec = read_provenance(tmp_path / "metrics.json")
    assert rec["stage"] == "runner"
    assert rec["config_hash"] == config_hash(RunnerConfig.validated({"executor": "futures", "workers": 2, "chunksize": 10}))
    assert rec["inputs"] == [file_identity(f) for f in futures.fileset.files()]
    assert sorted(i["path"] for i in rec["inputs"]) == sorted(map(str, hepline_sample_files))
    assert all(i["kind"] == "root" and i["uuid"] for i in rec["inputs"])


def test_write_metrics_provenance(tmp_path):
    rec = provenance_record(stage="runner", config={"executor": "iterative"})
    runner.write_metrics(tmp_path / "m.json", {"events": 3}, provenance=rec)
    assert read_provenance(tmp_path / "m.json") == rec
    runner.write_metrics(tmp_path / "plain.json", {"events": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.json.provenance.json", "plain.json"]


def test_output_content(iterative_result, hepline_sample_files):
    out = iterative_result.output
    assert sorted(out) == ["bkg", "sig"]  # datasets from the sample metadata
    assert out["sig"]["events"] == 55 and out["bkg"]["events"] == 40
    assert out["sig"]["njet_hist"].sum() == 55
    assert out["sig"]["tracks_in_jets"] > 0  # Jet.tracks resolved in the processor
    # the same numbers straight from the files
    events = ingest.open_events(hepline_sample_files[2], mode="eager")
    jets = events.Jet[events.Jet.pt > 20]
    assert out["bkg"]["jets"] == int(ak.sum(ak.num(jets)))
    assert out["bkg"]["sum_jet_pt"] == pytest.approx(float(ak.sum(jets.pt)), rel=1e-6)
    assert out["bkg"]["tracks_in_jets"] == int(ak.sum(ak.num(jets.tracks, axis=2)))


def test_metrics(iterative_result):
    m = iterative_result.metrics
    assert m.events == m.events_in_files == 95
    assert m.files == 3 and m.datasets == ["bkg", "sig"] and m.skipped_files == []
    assert m.bytes_read > 0
    assert m.wall_time_s > 0 and m.process_time_s > 0
    assert m.cores == 1
    assert m.events_per_s_per_core == pytest.approx(m.events / m.wall_time_s)
    assert m.bytes_per_s_per_core == pytest.approx(m.bytes_read / m.wall_time_s)
    assert m.format == "hepline" and m.schema == "HeplineSchema"
    assert "Jet_pt" in m.columns_read
    assert m.config["chunksize"] == 10
    assert m.versions["coffea"]
    d = m.to_dict()
    json.dumps(d)  # serialisable as is
    assert d["stage"] == "run_processor" and "incomplete" not in d and not m.incomplete


def test_fileset_metadata_reaches_the_processor(hepline_sample_files):
    class MetaProcessor(runner.processor.ProcessorABC):
        def process(self, events):
            md = events.metadata
            return {md["dataset"]: {(md["sample"], md["xsec_pb"], md["n_events"])}}

        def postprocess(self, acc):
            return acc

    out = run_processor(MetaProcessor(), hepline_sample_files).output
    assert out == {"sig": {("sig", 0.0311, 55)}, "bkg": {("bkg", 50.0, 40)}}


def test_validation_feeds_coffea_preprocessing(hepline_sample_files, monkeypatch):
    """The runner's validation already read every file's entries and UUID: coffea must not
    open the files again to preprocess them (and the dataset metadata must survive)."""
    from coffea.processor import Runner

    def refuse(*args, **kwargs):
        raise AssertionError("coffea re-opened a file for preprocessing")

    from coffea.processor import executor

    monkeypatch.setattr(Runner, "metadata_fetcher_root", staticmethod(refuse))
    # coffea's process-wide cache may know these files from earlier tests: start empty
    monkeypatch.setattr(executor, "DEFAULT_METADATA_CACHE", {})
    res = run_processor(SummaryProcessor(), hepline_sample_files, RunnerConfig.validated({"executor": "iterative"}))
    assert res.output["sig"]["events"] == 55 and res.output["bkg"]["events"] == 40
    fs = res.fileset
    assert all(len(fs.uuids[p]) == 16 for p in fs.files())


def test_maxchunks(hepline_sample_files):
    res = run_processor(SummaryProcessor(), hepline_sample_files, RunnerConfig.validated({"chunksize": 10, "maxchunks": 1}))
    assert res.metrics.chunks == 2  # one per dataset
    assert res.metrics.events < res.metrics.events_in_files


@pytest.mark.parametrize("fixture_name", ["nanoaod_file", "delphes_file"])
def test_other_formats(fixture_name, request):
    path = request.getfixturevalue(fixture_name)
    res = run_processor(SummaryProcessor(), {"ds": [str(path)]}, RunnerConfig.validated({"chunksize": 20}))
    assert res.output["ds"]["events"] == 60 and res.metrics.chunks == 3
    assert res.metrics.format == fixture_name.split("_")[0]


def test_skip_bad_files(hepline_sample_files, tmp_path):
    empty = tmp_path / "empty.root"
    empty.touch()
    nojet = write_hepline_fixture(
        tmp_path / "nojet.root", 5, np.random.default_rng(1), sample="sig", drop_branches=["Jet_pt"]
    )
    fileset = {
        "sig": {"files": {str(p): "Events" for p in [*hepline_sample_files[:2], empty, nojet]}},
        "bkg": {"files": {str(hepline_sample_files[2]): "Events"}},
    }
    with pytest.raises(InputFileError) as err:
        run_processor(SummaryProcessor(), fileset)
    assert err.value.path == str(empty)

    res = run_processor(
        SummaryProcessor(), fileset, RunnerConfig.validated({"skip_bad_files": True}), metrics_path=tmp_path / "m.json"
    )
    assert res.output["sig"]["events"] == 55 and res.output["bkg"]["events"] == 40
    assert [s["file"] for s in res.skipped] == [str(empty), str(nojet)]
    assert "zero-byte" in res.skipped[0]["reason"] and "Jet_pt" in res.skipped[1]["reason"]
    assert json.loads((tmp_path / "m.json").read_text())["skipped_files"] == res.skipped
    # the provenance names the files read, not the skipped ones
    paths = [i["path"] for i in read_provenance(tmp_path / "m.json")["inputs"]]
    assert sorted(paths) == sorted(map(str, hepline_sample_files))


def test_skip_bad_files_from_paths(hepline_sample_files, tmp_path):
    gone = tmp_path / "gone.root"
    res = run_processor(SummaryProcessor(), [*hepline_sample_files, gone], RunnerConfig.validated({"skip_bad_files": True}))
    assert res.metrics.events == 95
    assert res.skipped == [{"file": str(gone), "reason": "file not found"}]


def test_mixed_formats_are_refused(hepline_file, nanoaod_file):
    with pytest.raises(InputFileError, match="one run reads one format"):
        run_processor(SummaryProcessor(), {"a": [str(hepline_file)], "b": [str(nanoaod_file)]})


def test_runner_config_defaults_and_checks():
    cfg = RunnerConfig.default()
    assert cfg.executor == "iterative" and cfg.workers == 1 and cfg.dask.jobqueue is None
    assert RunnerConfig.validated({"executor": "futures", "workers": 4}).workers == 4
    assert RunnerConfig.validated({"dask": {"threads_per_worker": 2}}).dask.scheduler_address is None
    for bad, fragment in [
        ({"executor": "spark"}, "runner.executor"),
        ({"worker": 2}, "worker"),
        ({"workers": 0}, "runner.workers"),
        ({"chunksize": 1.5}, "runner.chunksize"),
        ({"skip_bad_files": "yes"}, "runner.skip_bad_files"),
        ({"dask": {"nodes": 3}}, "nodes"),
        ({"retries": -1}, "runner.retries"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            RunnerConfig.validated(bad)


def test_dask_executor(hepline_sample_files, iterative_result):
    pytest.importorskip("distributed")
    res = run_processor(
        SummaryProcessor(),
        hepline_sample_files,
        RunnerConfig.validated({"executor": "dask", "workers": 2, "chunksize": 10}),
    )
    _assert_same_output(iterative_result.output, res.output)
    assert res.metrics.cores == 2


def test_preload_reads_the_branches_in_bulk_over_a_restricted_form(hepline_sample_files):
    """With ``preload`` the factory reads the named branches in one go and the form holds
    only them (plus what the schema needs): the same output as lazy reading."""

    class PhotonSum(runner.processor.ProcessorABC):
        def process(self, events):
            return {"sumpt": float(ak.sum(events.Photon.pt)), "n": len(events), "fields": set(events.fields)}

        def postprocess(self, acc):
            return acc

    lazy = run_processor(PhotonSum(), hepline_sample_files).output
    assert {"Jet", "Track", "Tower"} <= lazy.pop("fields")
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_processor(PhotonSum(), hepline_sample_files, preload=["nPhoton", "Photon_pt"])
    # Track_jetIdx without Track is on purpose here: no warning per chunk
    assert not [w for w in caught if "cross-reference" in str(w.message)]
    assert res.metrics.schema == "RestrictedHeplineSchema"
    bulk = res.output
    fields = bulk.pop("fields")
    assert "Photon" in fields and not {"Jet", "Track", "Tower"} & fields
    assert bulk == pytest.approx(lazy) and lazy["n"] == 95


def test_freeze_startup_objects_moves_live_objects_to_the_permanent_generation():
    import gc

    from analysis.io.runner import freeze_startup_objects

    keep = [{"i": i} for i in range(1000)]  # live container objects
    try:
        n = freeze_startup_objects()
        assert n == gc.get_freeze_count() >= len(keep)
        assert not any(keep[0] is o for o in gc.get_objects(generation=2))  # frozen: not tracked there
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("module", ["tests.benchmarks.hh_yybb_breakdown", "tests.benchmarks.hh_yybb_throughput",
                                    "tests.benchmarks.ingest"])
def test_stage_modules_run_as_scripts_use_the_importable_modules_main(module, monkeypatch):
    """``python -m <benchmark>`` runs the importable module's main (whose processor class coffea
    pickles by reference for every chunk), not the ``__main__`` copy's
    (:func:`tests.benchmarks.script.run_module_main`)."""
    mod = importlib.import_module(module)
    calls = []
    monkeypatch.setattr(mod, "main", lambda: calls.append(module) or 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module is already imported
        with pytest.raises(SystemExit) as exc:
            runpy.run_module(module, run_name="__main__")
    assert exc.value.code == 7 and calls == [module]


def test_branch_name_filter_selects_what_uproots_list_selects(hepline_file, nanoaod_file):
    import pickle

    import uproot

    for path, names in ((hepline_file, ["Photon_pt", "Jet_eta", "event", "nJet", "Missing_branch"]),
                        (nanoaod_file, ["Jet_btagDeepFlavB", "Electron_charge", "run"])):
        flt = runner.name_filter(names)
        assert isinstance(flt, runner.BranchNames)
        assert pickle.loads(pickle.dumps(flt)) == flt
        with uproot.open(path) as f:
            tree = f["Events"]
            assert tree.keys(filter_name=flt) == tree.keys(filter_name=names)
            assert len(tree.keys(filter_name=flt)) == len(names) - (path == hepline_file)
    # globs and regular expressions stay uproot's
    assert runner.name_filter(["Jet_*", "event"]) == ["Jet_*", "event"]
    assert runner.name_filter(["/Jet_.*/", "event"]) == ["/Jet_.*/", "event"]


def test_quiet_iterative_executor_skips_the_progress_bar_and_gives_coffeas_result(hepline_sample_files,
                                                                                   monkeypatch):
    import coffea.processor.executor as executor_module

    # status on: coffea's own executor path, progress bar included
    reference = run_processor(SummaryProcessor(), hepline_sample_files, RunnerConfig.validated({"chunksize": 700, "status": True}))
    assert reference.metrics.chunks > 1

    def refuse():
        raise AssertionError("the progress bar was built with status off")

    monkeypatch.setattr(executor_module, "rich_bar", refuse)
    quiet = run_processor(SummaryProcessor(), hepline_sample_files, RunnerConfig.validated({"chunksize": 700, "status": False}))
    assert quiet.metrics.chunks == reference.metrics.chunks
    assert json.dumps(quiet.output, sort_keys=True, default=str) == json.dumps(reference.output, sort_keys=True,
                                                                                default=str)
    with pytest.raises(AssertionError, match="progress bar"):  # status on: coffea's executor and its bar
        run_processor(SummaryProcessor(), hepline_sample_files, RunnerConfig.validated({"chunksize": 700, "status": True}))
    ex = runner.QuietIterativeExecutor(status=False)
    assert ex([], lambda item: item, {"n": 0}) == {"n": 0}
