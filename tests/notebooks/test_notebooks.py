"""Execute every notebook in notebooks/ with nbclient and check it wrote its plot.

Each notebook runs in its own temporary directory (``HEPLINE_NOTEBOOK_OUTPUT`` points there)
with the ``python3`` kernel of the interpreter running the tests. A cell that raises fails
the test (``CellExecutionError``), and so does a missing or empty PNG.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))

#: the paper plot each notebook must write, relative to $HEPLINE_NOTEBOOK_OUTPUT
PLOTS = {
    "01_ingestion": "01_ingestion/track_sd0.png",
    "02_taggers": "02_taggers/roc_light.png",
    "03_selection_hh_yybb": "03_selection_hh_yybb/m_yy_categories.png",
    "04_calo_cnn": "04_calo_cnn/roc.png",
    "05_limits": "05_limits/brazil.png",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CELL_TIMEOUT_S = 600


def _kernel_spec_dir(tmp: Path) -> Path:
    """A kernelspec ``python3`` that starts ``sys.executable``: the interpreter (and venv)
    running the tests, whatever kernels are installed elsewhere on the machine."""
    d = tmp / "jupyter" / "kernels" / "python3"
    d.mkdir(parents=True, exist_ok=True)
    import json

    (d / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (hepline tests)",
        "language": "python",
    }))
    return tmp / "jupyter"


@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory):
    """Put the test kernelspec first on JUPYTER_PATH for the whole session."""
    data = _kernel_spec_dir(tmp_path_factory.mktemp("kernels"))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(data), *([old] if old else [])])
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    assert spec.argv[0] == sys.executable, spec.argv
    yield
    if old is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = old


def test_notebooks_found():
    assert {p.stem for p in NOTEBOOKS} == set(PLOTS)


def test_notebooks_are_committed_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: outputs not cleared"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, kernel_env, monkeypatch):
    out = tmp_path / "notebook_output"
    monkeypatch.setenv("HEPLINE_NOTEBOOK_OUTPUT", str(out))
    # one core per kernel: two notebooks run side by side under pytest -n 2
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=CELL_TIMEOUT_S, allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    print(f"{path.name}: {time.perf_counter() - t0:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    plot = out / PLOTS[path.stem]
    assert plot.is_file(), f"{path.name} did not write {plot}"
    data = plot.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC), f"{plot} is not a non-empty PNG"
