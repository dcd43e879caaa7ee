"""Every paper figure regenerates at its --quick size."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_paper_figures_all_quick(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "paper_figures", "all", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sys.path.insert(0, str(ROOT))
    from paper_figures import FIGURES

    for name in FIGURES:
        pngs = list(tmp_path.glob(f"{name}*.png"))
        assert pngs and all(p.stat().st_size > 5000 for p in pngs), name
        assert list(tmp_path.glob(f"{name}*.pdf")), name


def test_unknown_figure_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "paper_figures", "nope"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown figure" in proc.stderr
