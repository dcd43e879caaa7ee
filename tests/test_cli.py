"""The `limits` command: output and error handling."""

import subprocess
import sys

import pytest

from limits.cli import main


def test_classify_prints_table_regime_and_reasons(capsys):
    assert main(["classify", "mup", "--depth", "3", "--exponents"]) == 0
    out = capsys.readouterr().out
    assert "| 4 (readout) | 1 | 0 | -1 |" in out
    assert "regime: feature_learning" in out and "r = 0" in out
    assert "delta h^l" in out


def test_classify_custom_table(capsys):
    assert main(["classify", "--abc", "0,1/2,1/2;0,0,0;0"]) == 0
    assert "regime: kernel" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["classify", "bogus"], "unknown preset"),
        (["classify", "mup", "--depth", "0"], "depth"),
        (["classify", "--abc", "0,1;0,0;x/"], "c[0]"),
        (["classify", "--abc", "0,1;0;0"], "b has 1 entries"),
    ],
)
def test_bad_input_one_line_exit_2(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("limits: error:") and match in err and err.count("\n") == 1


def test_console_script_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "limits.cli", "classify", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown preset" in proc.stderr


def test_phase_diagram_written(tmp_path, capsys):
    out = tmp_path / "phase.png"
    assert main(["phase", "--depth", "1", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000


def test_demo_quick_writes_outputs(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "feature_learning" in out and "DMFT (N=inf)" in out and "width 512" in out
    for name in ("phase_diagram.png", "demo.png", "demo.json"):
        assert (tmp_path / name).stat().st_size > 100
