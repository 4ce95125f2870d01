"""``hepline taggers ...``: the flags reach the stage functions (the stages themselves run in
test_pipeline.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analysis.cli import main
from analysis.core.config import Config, load_config
from tests.fixtures.paths import DEFAULT_CONFIG


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """Replace the stage functions by recorders (the commands import them when run)."""
    import taggers.decorate
    import taggers.evaluate
    import taggers.prepare
    import taggers.train

    seen: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def recorder(name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            seen.append((name, args, kwargs))
            raise SystemExit(0)  # the command's printing needs a real result: stop here

        return record

    monkeypatch.setattr(taggers.prepare, "prepare", recorder("prepare"))
    monkeypatch.setattr(taggers.train, "train", recorder("train"))
    monkeypatch.setattr(taggers.evaluate, "evaluate", recorder("evaluate"))
    monkeypatch.setattr(taggers.decorate, "decorate", recorder("decorate"))
    return seen


def _run(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0


def test_prepare_seed_overrides_the_top_level_seed(calls: list, tmp_path: Path) -> None:
    _run(["taggers", "prepare", "--config", str(DEFAULT_CONFIG), "--output-dir", str(tmp_path),
          "--seed", "5", "a.root", "b.root"])
    (name, (files, cfg, out), _), = calls
    assert name == "prepare" and files == ["a.root", "b.root"] and out == str(tmp_path)
    assert isinstance(cfg, Config) and cfg.seed == 5


def test_train_seed_is_the_model_seed_and_workers_the_threads(calls: list) -> None:
    _run(["taggers", "train", "--config", str(DEFAULT_CONFIG), "--tagger", "dl1", "--train", "t.h5",
          "--validation", "v.h5", "--model-dir", "m", "--workers", "3", "--seed", "11", "--no-resume"])
    (name, (tagger, cfg, train, val, model_dir), kwargs), = calls
    assert (tagger, train, val, model_dir) == ("dl1", "t.h5", "v.h5", "m")
    default = load_config(DEFAULT_CONFIG)
    assert cfg.tagger_models.dl1.seed == 11 != default.tagger_models.dl1.seed
    assert cfg.replace(tagger_models=default.tagger_models) == default  # nothing else changed
    assert kwargs == {"rnnip_path": None, "threads": 3, "resume": False}


def test_evaluate_and_decorate_flags(calls: list, tmp_path: Path) -> None:
    _run(["taggers", "evaluate", "--config", str(DEFAULT_CONFIG), "--test", "test.h5", "--models", "m",
          "--ipxd", "i", "--output-dir", str(tmp_path), "--no-plots", "--no-benchmark", "--seed", "9",
          "--taggers", "rnnip,ip3d"])
    _run(["taggers", "decorate", "--config", str(DEFAULT_CONFIG), "--models", "m", "--output", "o.root",
          "--threads", "2", "--taggers", "dl1", "in.root"])
    (ev, ev_args, ev_kw), (dec, dec_args, dec_kw) = calls
    assert ev == "evaluate" and ev_args[0].seed == 9 and ev_args[1:] == ("test.h5", "m", str(tmp_path))
    assert ev_kw == {"ipxd_dir": "i", "plots": False, "benchmark": False, "taggers": ["rnnip", "ip3d"]}
    assert dec == "decorate" and dec_args[1:] == ("in.root", "o.root", "m")
    assert dec_kw == {"ipxd_dir": None, "threads": 2, "taggers": ["dl1"]}


def test_bad_flags_and_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["taggers", "evaluate", "--config", str(DEFAULT_CONFIG), "--test", "t", "--models", "m",
              "--output-dir", "o", "--taggers", "ip4d"])
    assert exc.value.code == 2 and "ip4d" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\ntaggers: {threads: 0}\n")
    assert main(["taggers", "prepare", "--config", str(bad), "--output-dir", str(tmp_path), "x.root"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
