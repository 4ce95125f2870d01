"""tests.benchmarks.hh_yybb_breakdown: component CPU times of the selection, patches undone."""

from __future__ import annotations

import json

from selections.hh_yybb import compiled as CP
from selections.hh_yybb import kernel as K
from selections.hh_yybb import shifted as KS
from tests.benchmarks import hh_yybb_breakdown as B
from tests.selections.hh_yybb.test_processor import (
    WP_FILE_CONTENT,
    make_config,
    write_hepline_events,
)


def test_breakdown_components_and_restores_the_patches(tmp_path):
    path = write_hepline_events(tmp_path / "hhtest_0.root")
    wp = tmp_path / "wp.json"
    wp.write_text(json.dumps(WP_FILE_CONTENT))
    originals = {name: CP.CompiledProcessor.__dict__[name] for name in B.PROCESSOR_STEPS}
    process = CP.CompiledProcessor.__dict__["process"]
    kernels = (K.event_arrays, K.event_arrays_numpy)
    shifted_entries = KS.shifted_entries
    numpy_cfg = make_config(selection={"hh_yybb": {"engine": "numpy"}})  # (auto: numba once it is loaded)
    out = B.breakdown([str(path)], numpy_cfg, str(wp), repeat=2, process_repeat=3)
    cpu = out["cpu_s"]
    only = out["process_only_cpu_s"]
    assert only["repeat"] == 3 and 0 < only["min"] <= only["median"] < cpu["total"]
    assert 0 <= cpu["garbage_collection"] <= cpu["total"]
    assert CP.CompiledProcessor.__dict__["process"] is process
    assert out["events"] == 19
    for key in ("validate", "nanoevents_factory", "read", "analyse", "analyse_per_event_pass", "fill",
                "plain_read", "framework_only", "total"):
        assert cpu[key] > 0, key
    assert cpu["analyse_per_event_pass"] <= cpu["analyse"]  # a part of it
    assert out["ratio_cpu_framework_only"] == cpu["plain_read"] / cpu["framework_only"]
    parts = sum(v for k, v in cpu.items()
                if k not in ("total", "plain_read", "framework_only", "other", "analyse_per_event_pass",
                             "garbage_collection"))
    assert parts <= cpu["total"] and abs(cpu["other"] - (cpu["total"] - parts)) < 1e-12
    assert {name: CP.CompiledProcessor.__dict__[name] for name in B.PROCESSOR_STEPS} == originals
    assert (K.event_arrays, K.event_arrays_numpy) == kernels
    assert "fill_shifted_compiled" not in cpu  # the numpy engine runs the shifted passes one by one
    fast = B.breakdown([str(path)], make_config(selection={"hh_yybb": {"engine": "numba"}}), str(wp), repeat=1,
                       shifted_repeat=2)
    assert 0 < fast["cpu_s"]["fill_shifted_compiled"] < fast["cpu_s"]["total"]
    shifted = fast["shifted_only_cpu_s"]
    # (on 19 events the call alone and its step in the run both take ≈ 0.25 ms: only the
    # whole run is a bound that timing noise cannot cross)
    assert shifted["repeat"] == 2 and 0 < shifted["min"] <= shifted["median"] < fast["cpu_s"]["total"]
    groups = shifted["fastest_by_passes"]
    assert list(groups) == ["pass_0_photon_scale", "pass_1_photon_scale", "pass_2_photon_factors",
                            "pass_3_jet_scale", "pass_4_jet_scale", "photon_passes", "jet_scale_passes"]
    assert all(t > 0 for t in groups.values())
    assert "shifted_only_cpu_s" not in out
    assert KS.shifted_entries is shifted_entries  # the capture is undone
