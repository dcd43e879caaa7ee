"""Every benchmark script runs at its --quick size and writes its JSON."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_all_quick(tmp_path):
    before = {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "out").glob("*.json")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "all", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    names = [p.stem for p in (ROOT / "benchmarks").glob("*.py") if not p.stem.startswith("_")]
    for name in names:
        assert f"=== {name}:" in proc.stdout, name
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert data, name
    # the source tree's stored results are untouched
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "benchmarks" / "out").glob("*.json")} == before


def test_unknown_benchmark_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "nope"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown benchmark" in proc.stderr
