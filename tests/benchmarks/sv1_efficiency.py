"""SV1 vertex-finding efficiency per jet flavour on hepline ntuples (a measurement tool).

``python -m tests.benchmarks.sv1_efficiency --config workflows/config/default.yaml FILE...``
prints a Markdown table: flavour, jets, the fraction of jets with an SV1 vertex and its
binomial error (:func:`taggers.algorithms.sv1.efficiency_by_flavour`).
"""

from __future__ import annotations

import argparse
import logging

from analysis.core.config import load_config
from taggers.algorithms.sv1 import efficiency_by_flavour, sv1
from taggers.features import load_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SV1 vertex-finding efficiency per jet flavour")
    parser.add_argument("--config", required=True, help="hepline YAML config (its taggers section)")
    parser.add_argument("files", nargs="+", help="hepline ntuples (e.g. ttbar shards)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
    cfg = load_config(args.config).taggers
    ds = load_dataset(args.files, cfg)
    out = sv1(ds, cfg.sv1)
    print("| flavour | jets | SV1 efficiency |\n|---|---|---|")  # noqa: T201 - the tool's output
    for name, (eff, err, n) in efficiency_by_flavour(out["sv1_has_sv"], ds.jets["label"]).items():
        print(f"| {name} | {n} | {eff:.3f} ± {err:.3f} |")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
