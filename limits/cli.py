"""The ``limits`` command.

``limits classify mup --depth 3``   print the table, regime and reasons
``limits demo``                      the main job on the embedded default
``limits phase --out phase.png``     save the abc phase-diagram slice

Every error prints one line ``limits: error: ...`` on stderr and exits with status 2: bad arguments, options that
do not apply (``--depth`` next to ``--abc``), numbers out of range, unwritable outputs, a closed output pipe
(``limits classify | head -1``), errors of the library; an interrupt (Ctrl-C) exits with 130. Warnings print one
line ``limits: warning: ...`` each. ``LIMITS_DEBUG=1`` re-raises unexpected errors with their traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import warnings
from pathlib import Path

__all__ = ["main"]

MAX_DEPTH = 10_000
"""Largest ``classify --depth`` (a symbolic table of 10^4 layers classifies in about a second)."""
MAX_PHASE_DEPTH = 100
"""Largest ``phase --depth`` (the slice classifies 33 x 33 tables: about 0.1 s per unit of depth)."""


class _Error(Exception):
    """A usage error found after parsing (options that do not apply, unwritable paths)."""


# ----------------------------------------------------------------------------- argument types
def _integer(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def _nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block) with exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        _fail(f"{message} (see {self.prog} --help)")


def _fail(message: str, status: int = 2):
    _print_error(message)
    raise SystemExit(status)


def _print_error(message: str, kind: str = "error") -> None:
    line = " ".join(str(message).split("\n")[0].split()) or "unknown error"
    with contextlib.suppress(OSError, ValueError):
        print(f"limits: {kind}: {line}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- classify
def _classify(args) -> int:
    p = _table(args)
    cls = p.classify()  # errors (free symbols) before any output
    e = p.exponents() if args.exponents else None
    print(p.table("latex" if args.latex else "markdown"))
    print()
    print(cls)
    if e is not None:
        print("\npredicted width exponents after one step (quantity ~ n^e):")
        print(f"  delta h^l    : {list(e.delta_h)}")
        print(f"  delta f      : {e.delta_f}")
        print(f"  ||W^l||_2    : {list(e.W_spectral)}   (spectral condition: {list(e.spectral_target)})")
        print(f"  ||dW^l||_2   : {list(e.dW_spectral)}")
    return 0


def _table(args):
    """The table to classify: ``--abc`` (nothing preset-specific next to it) or a preset."""
    from .parametrization import Parametrization, param

    optimizer = args.optimizer or "sgd"
    if args.abc is None:
        return param(args.preset or "mup", args.depth or 1, gamma0=1.0 if args.gamma0 is None else args.gamma0,
                     optimizer=optimizer, c=args.c)
    given = [name for name, value in (("a preset name", args.preset), ("--depth", args.depth),
                                      ("--gamma0", args.gamma0), ("--c", args.c)) if value is not None]
    if given:
        raise _Error(f"{', '.join(given)} does not apply next to --abc (the table gives the depth and every "
                     f"exponent); drop {' and '.join(given)}")
    a, b, c = _split_abc(args.abc)
    if len(a) > MAX_DEPTH + 1:
        raise _Error(f"--abc has {len(a)} layers; at most {MAX_DEPTH + 1}")
    return Parametrization.from_abc(a, b, c if len(c) > 1 else c[0], optimizer=optimizer)


def _split_abc(text: str) -> tuple[list[str], list[str], list[str]]:
    parts = text.split(";")
    if len(parts) != 3:
        raise _Error(f"--abc must be 'a1,a2,..;b1,b2,..;c' (three parts separated by ';'), got {len(parts)} "
                     f"part{'s' * (len(parts) != 1)} in {text!r}")
    lists = []
    for name, part in zip("abc", parts):
        entries = [entry.strip() for entry in part.split(",")]
        for i, entry in enumerate(entries):
            if not entry:
                raise _Error(f"--abc: {name}[{i}] is empty in {text!r}; give one exponent per layer, e.g. "
                             f"'0,1/2,1;0,0,0;-1'")
        lists.append(entries)
    return lists[0], lists[1], lists[2]


# ----------------------------------------------------------------------------- phase and demo
_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp")


def _output_file(text: str) -> Path:
    """A writable file path with an image extension: the folder is created, a probe file written and removed."""
    path = Path(text)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in _FORMATS:
        raise _Error(f"--out {text!r} needs an image extension ({', '.join('.' + f for f in _FORMATS)})")
    if path.is_dir():
        raise _Error(f"--out {text!r} is a folder; give a file name such as {str(path / 'phase.png')!r}")
    _writable_folder(path.parent, "--out")
    return path


def _writable_folder(folder: Path, option: str) -> Path:
    """``folder``, created if needed; an error naming ``option`` if it cannot be written to."""
    if folder.exists() and not folder.is_dir():
        raise _Error(f"{option}: {str(folder)!r} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".limits-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise _Error(f"{option}: cannot write to {str(folder)!r}: {exc.strerror or exc}") from None
    return folder


def _phase(args) -> int:
    from .phase_diagram import plot_phase_diagram

    out = _output_file(args.out)
    plot_phase_diagram(out, depth=args.depth)
    print(f"wrote {out}")
    return 0


def _demo(args) -> int:
    from .demo import run_demo

    return run_demo(_writable_folder(Path(args.out), "--out"), quick=args.quick)


def _scaling(args) -> int:
    from .scaling import exponents

    regimes = ("lazy", "rich") if args.regime == "both" else (args.regime,)
    rows = [exponents(args.alpha, args.beta, r) for r in regimes]
    print(f"alpha = {args.alpha:g}, beta = {args.beta:g}: {rows[0].task} task (L ~ x^-rate; C = N t)")
    names = ("time", "width", "data", "compute", "width_compute", "time_compute")
    print(f"{'regime':<8}" + "".join(f"{n:>15}" for n in names))
    for e in rows:
        print(f"{e.regime:<8}" + "".join(f"{getattr(e, n):>15.4g}" for n in names))
    for note in dict.fromkeys(n for e in rows for n in e.notes):
        print(f"note: {note}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="limits", description="Infinite-width limits of neural networks.", allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("classify", help="classify a preset or custom abc table", allow_abbrev=False)
    c.add_argument("preset", nargs="?", default=None, help="sp | ntk | mup | mfp | depth-mup | completep | resnet "
                                                           "(default mup)")
    c.add_argument("--depth", type=_integer(1, MAX_DEPTH), default=None, help="number of hidden layers L (default 1)")
    c.add_argument("--gamma0", type=_positive_number, default=None, help="richness of the preset (default 1)")
    c.add_argument("--optimizer", default=None, choices=["sgd", "adam", "adamw", "muon"], help="default sgd")
    c.add_argument("--c", type=_nonempty, default=None, help="override the learning-rate exponent of every layer")
    c.add_argument("--abc", default=None, help="custom table 'a1,a2,..;b1,b2,..;c' (instead of a preset)")
    c.add_argument("--latex", action="store_true", help="print the table as LaTeX")
    c.add_argument("--exponents", action="store_true", help="also print predicted width exponents")
    c.set_defaults(func=_classify)

    d = sub.add_parser("demo", help="the main job on the embedded default problem", allow_abbrev=False)
    d.add_argument("--out", type=_nonempty, default="limits_demo", help="folder for the figure and JSON")
    d.add_argument("--quick", action="store_true", help="smaller sizes (seconds)")
    d.set_defaults(func=_demo)

    sc = sub.add_parser("scaling", help="predicted scaling-law exponents for capacity alpha and source beta",
                        allow_abbrev=False)
    sc.add_argument("--alpha", type=_positive_number, required=True, help="capacity exponent, > 1")
    sc.add_argument("--beta", type=_positive_number, required=True, help="source exponent, > 0")
    sc.add_argument("--regime", default="both", choices=["lazy", "rich", "both"])
    sc.set_defaults(func=_scaling)

    ph = sub.add_parser("phase", help="save the abc phase-diagram slice", allow_abbrev=False)
    ph.add_argument("--depth", type=_integer(1, MAX_PHASE_DEPTH), default=2)
    ph.add_argument("--out", type=_nonempty, default="phase_diagram.png", help="image file (.png, .pdf, .svg, ...)")
    ph.set_defaults(func=_phase)
    return parser


# ----------------------------------------------------------------------------- main
_ERRORS = (ValueError, TypeError, ArithmeticError, KeyError, IndexError, ImportError, RecursionError, _Error)


def _message(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return f"out of memory{': ' + str(exc) if str(exc) else ''}; ask for a smaller problem"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return text or type(exc).__name__


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so that the exit-time flush does not fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    _print_error(f"{message} ({category.__name__})", kind="warning")


def _run(args) -> int:
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        status = args.func(args)
        sys.stdout.flush()
    return status


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status (errors: 2)."""
    try:
        args = _parser().parse_args(argv)
        return _run(args)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already printed on one line)
        return exc.code if isinstance(exc.code, int) else 2
    except BrokenPipeError:
        _silence_stdout()
        _print_error("the output pipe was closed before all output was written (broken pipe)")
        return 2
    except KeyboardInterrupt:
        _print_error("interrupted", kind="error")
        return 130
    except (*_ERRORS, MemoryError, OSError) as exc:
        _print_error(_message(exc))
        return 2
    except Exception as exc:  # noqa: BLE001 - the one-line contract; LIMITS_DEBUG shows the traceback
        if os.environ.get("LIMITS_DEBUG"):
            raise
        _print_error(f"internal error ({type(exc).__name__}: {_message(exc)}); rerun with LIMITS_DEBUG=1 for the "
                     f"traceback")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
