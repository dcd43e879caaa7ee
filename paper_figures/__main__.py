"""``python -m paper_figures <name>|all [--quick] [--out DIR]``."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from . import FIGURES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paper_figures", description=__doc__)
    parser.add_argument("names", nargs="+", help=f"figure names or 'all': {', '.join(FIGURES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes (for tests)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    args = parser.parse_args(argv)
    names = list(FIGURES) if "all" in args.names else args.names
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        print(f"paper_figures: error: unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        start = time.perf_counter()
        module = importlib.import_module(f"paper_figures.{name}")
        paths = module.make(out, quick=args.quick)
        print(f"{name:<24} {time.perf_counter() - start:6.1f} s  " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
