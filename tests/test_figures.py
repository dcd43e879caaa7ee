"""Every paper figure regenerates at its --quick size, and what it draws is the data it computed."""

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paper_figures import FIGURES  # noqa: E402


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """``{name: (paths, [figure, ...])}`` for every figure made at its quick size; ``Figure.savefig`` is wrapped so
    that the saved figure objects are kept for inspection (the files are still written)."""
    from matplotlib.figure import Figure

    out = tmp_path_factory.mktemp("figures")
    result, savefig = {}, Figure.savefig
    for name in FIGURES:
        module = importlib.import_module(f"paper_figures.{name}")
        figures = []

        def keep(fig, *a, _figures=figures, **k):
            if fig not in _figures:
                _figures.append(fig)
            return savefig(fig, *a, **k)

        Figure.savefig = keep
        try:
            result[name] = (module.make(out, quick=True), figures)
        finally:
            Figure.savefig = savefig
    return result


def test_every_figure_writes_png_and_pdf(drawn):
    for name, (paths, figures) in drawn.items():
        suffixes = {Path(p).suffix for p in paths}
        assert {".png", ".pdf"} <= suffixes, name
        assert all(Path(p).stat().st_size > 5000 for p in paths if Path(p).suffix == ".png"), name


def test_every_panel_draws_finite_data(drawn):
    for name, (_, figures) in drawn.items():
        assert figures, name
        for fig in figures:
            for ax in fig.axes:
                if not ax.has_data():
                    continue
                data = [np.asarray(line.get_ydata(), float) for line in ax.get_lines()]
                data += [np.asarray(c.get_offsets(), float).ravel() for c in ax.collections if hasattr(c, "get_offsets")]
                values = np.concatenate([d.ravel() for d in data]) if data else np.array([])
                assert values.size and np.isfinite(values).any(), (name, ax.get_title())


def test_deep_linear_figure_draws_the_returned_limit(drawn):
    """The dashed DMFT curve of ``deep_linear`` is the loss ``solve_dmft`` returns for the same problem (exact
    deterministic equations, so it can be recomputed and compared to 1e-12)."""
    import limits

    _, figures = drawn["deep_linear"]
    ax = figures[0].axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "DMFT (N=inf)"]
    data = limits.datasets.teacher(P=8, D=8, seed=2)
    limit = limits.solve_dmft("mup", 3, X=data.X, y=data.y, activation="linear", gamma0=1.0, steps=20, lr=0.2,
                              progress=False)
    np.testing.assert_allclose(line.get_ydata(), limit.loss, rtol=1e-12)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(21))


def test_unknown_figure_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "paper_figures", "nope"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown figure" in proc.stderr
