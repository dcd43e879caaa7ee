"""The `limits` command: output and error handling (every error: one line on stderr, exit status 2)."""

import io
import subprocess
import sys

import pytest

from limits.cli import main


def _error(argv, capsys, status=2):
    """Run ``argv`` in-process; the error line (asserting one line on stderr, nothing on stdout, the status)."""
    assert main(argv) == status
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured
    assert captured.err.startswith("limits: error:") and "Traceback" not in captured.err
    return captured.err


def test_classify_prints_table_regime_and_reasons(capsys):
    assert main(["classify", "mup", "--depth", "3", "--exponents"]) == 0
    out = capsys.readouterr().out
    assert "| 4 (readout) | 1 | 0 | -1 |" in out
    assert "regime: feature_learning" in out and "r = 0" in out
    assert "delta h^l" in out


def test_scaling_prints_both_regimes(capsys):
    assert main(["scaling", "--alpha", "2", "--beta", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "hard task" in out and "lazy                0.5" in out and "rich             0.6667" in out


def test_classify_custom_table(capsys):
    assert main(["classify", "--abc", "0,1/2,1/2;0,0,0;0"]) == 0
    assert "regime: kernel" in capsys.readouterr().out
    assert main(["classify", "--abc", "0,1e-7;0,0;-1"]) == 0  # exact: 1/10000000, not rounded to 0
    assert "| 2 (readout) | 1/10000000 |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["classify", "bogus"], "unknown preset"),
        (["classify", "mup", "--depth", "0"], "--depth: must be an integer in [1, 10000]"),
        (["classify", "--abc", "0,1;0,0;x/"], "c[0]"),
        (["classify", "--abc", "0,1;0;0"], "b has 1 entries"),
        # options that do not apply next to --abc, and an empty --abc (it used to classify mup)
        (["classify", "--abc", ""], "--abc must be 'a1,a2,..;b1,b2,..;c'"),
        (["classify", "--abc", "0,1/2,1/2;0,0,0;0", "--depth", "2"], "--depth does not apply next to --abc"),
        (["classify", "--abc", "0,1;0,0;0", "--c", "1"], "--c does not apply next to --abc"),
        (["classify", "--abc", "0,1;0,0;0", "--gamma0", "2"], "--gamma0 does not apply next to --abc"),
        (["classify", "ntk", "--abc", "0,1;0,0;0"], "a preset name does not apply next to --abc"),
        (["classify", "--abc", "0,1;0,;0"], "b[1] is empty"),
        (["classify", "--abc", "0,1;0,0"], "got 2 parts"),
        (["classify", "--abc", "0,__import__;0,0;0"], "a[1]"),
        (["classify", "--abc", "0,1/3;0,0;0,0,0"], "c has 3 entries"),
        (["classify", "--abc", "0,s;0,0;-1"], "free symbols (s)"),
        # negative, zero, huge, non-numeric, empty, NaN, inf values
        (["classify", "--depth", "-1"], "--depth"),
        (["classify", "--depth", "99999999999999999999"], "--depth"),
        (["classify", "--depth", "1e3"], "--depth"),
        (["classify", "--depth", ""], "--depth"),
        (["classify", "--gamma0", "nan"], "--gamma0: must be a positive finite number"),
        (["classify", "--gamma0", "inf"], "--gamma0"),
        (["classify", "--gamma0", "0"], "--gamma0"),
        (["classify", "--gamma0", "1e300"], "gamma0=1e+300 is out of range"),  # overflow of gamma0^2
        (["classify", "--gamma0", "1e-300"], "gamma0=1e-300 is out of range"),
        (["classify", "--c", ""], "--c: must not be empty"),
        (["classify", "--c", "nan"], "c[0]"),
        (["classify", "--c", "1/0"], "c[0]"),
        (["classify", "--optimizer", "rms"], "invalid choice"),
        (["classify", "--dep", "3"], "unrecognized arguments: --dep"),
        (["classify", "mup", "extra"], "unrecognized arguments"),
        ([], "required: command"),
        (["phase", "--depth", "1000"], "--depth: must be an integer in [1, 100]"),
        (["phase", "--out", ""], "--out: must not be empty"),
        (["phase", "--out", "figure.xyz"], "needs an image extension"),
        (["demo", "--out", ""], "--out: must not be empty"),
        (["scaling", "--alpha", "1", "--beta", "0.5"], "alpha must be > 1"),
        (["scaling", "--alpha", "2"], "--beta"),
        (["scaling", "--alpha", "2", "--beta", "nan"], "--beta"),
    ],
)
def test_bad_input_one_line_exit_2(argv, match, capsys):
    assert match in _error(argv, capsys)


def test_unwritable_outputs(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "is a file, not a folder" in _error(["demo", "--out", str(blocker)], capsys)
    assert "cannot write to" in _error(["phase", "--out", str(blocker / "sub" / "phase.png")], capsys)
    (tmp_path / "dir.png").mkdir()
    assert "is a folder" in _error(["phase", "--out", str(tmp_path / "dir.png")], capsys)


def test_library_errors_and_interrupts_are_one_line(monkeypatch, capsys):
    import limits.cli as cli

    for exc, status, text in [(MemoryError(), 2, "out of memory"), (OverflowError("int too large"), 2, "int too large"),
                              (FloatingPointError("diverged\nsecond line"), 2, "diverged"),
                              (KeyboardInterrupt(), 130, "interrupted"), (RuntimeError("boom"), 2, "internal error")]:
        def boom(args, exc=exc):
            raise exc
        monkeypatch.setattr(cli, "_classify", boom)
        assert text in _error(["classify"], capsys, status)


def test_broken_pipe_is_one_line(monkeypatch, capsys):
    class Closed(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["classify", "mup"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken pipe" in err


def test_console_script_has_no_traceback():
    """One subprocess: a bad preset and, in the same run, a closed pipe (``limits classify | head -1``)."""
    code = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-m', 'limits.cli', 'classify', "
            "'--depth', '3000'], stdout=subprocess.PIPE, stderr=subprocess.PIPE); p.stdout.readline(); "
            "p.stdout.close(); err = p.stderr.read().decode(); print(p.wait(), repr(err))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    status, err = proc.stdout.split(" ", 1)
    assert status == "2" and "broken pipe" in err and "Traceback" not in err and err.count("\\n") == 1


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
