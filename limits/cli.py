"""The ``limits`` command.

``limits classify mup --depth 3``   print the table, regime and reasons
``limits demo``                      the main job on the embedded default
``limits phase --out phase.png``     save the abc phase-diagram slice

Bad input prints one line ``limits: error: ...`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _classify(args) -> int:
    from .parametrization import Parametrization, param

    if args.abc:
        a, b, c = (part.split(",") for part in args.abc.split(";"))
        p = Parametrization.from_abc(a, b, c if len(c) > 1 else c[0], optimizer=args.optimizer)
    else:
        p = param(args.preset, args.depth, gamma0=args.gamma0, optimizer=args.optimizer, c=args.c)
    print(p.table("latex" if args.latex else "markdown"))
    print()
    print(p.classify())
    if args.exponents:
        e = p.exponents()
        print("\npredicted width exponents after one step (quantity ~ n^e):")
        print(f"  delta h^l    : {list(e.delta_h)}")
        print(f"  delta f      : {e.delta_f}")
        print(f"  ||W^l||_2    : {list(e.W_spectral)}   (spectral condition: {list(e.spectral_target)})")
        print(f"  ||dW^l||_2   : {list(e.dW_spectral)}")
    return 0


def _phase(args) -> int:
    from .phase_diagram import plot_phase_diagram

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_phase_diagram(out, depth=args.depth)
    print(f"wrote {out}")
    return 0


def _demo(args) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), quick=args.quick)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="limits", description="Infinite-width limits of neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("classify", help="classify a preset or custom abc table")
    c.add_argument("preset", nargs="?", default="mup", help="sp | ntk | mup | mfp")
    c.add_argument("--depth", type=int, default=1, help="number of hidden layers L")
    c.add_argument("--gamma0", type=float, default=1.0)
    c.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    c.add_argument("--c", default=None, help="override the learning-rate exponent of every layer")
    c.add_argument("--abc", default=None, help="custom table 'a1,a2,..;b1,b2,..;c' (overrides preset)")
    c.add_argument("--latex", action="store_true", help="print the table as LaTeX")
    c.add_argument("--exponents", action="store_true", help="also print predicted width exponents")
    c.set_defaults(func=_classify)

    d = sub.add_parser("demo", help="the main job on the embedded default problem")
    d.add_argument("--out", default="limits_demo", help="folder for the figure and JSON")
    d.add_argument("--quick", action="store_true", help="smaller sizes (seconds)")
    d.set_defaults(func=_demo)

    ph = sub.add_parser("phase", help="save the abc phase-diagram slice")
    ph.add_argument("--depth", type=int, default=2)
    ph.add_argument("--out", default="phase_diagram.png")
    ph.set_defaults(func=_phase)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, KeyError, ImportError, FloatingPointError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"limits: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("limits: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
