"""``python -m benchmarks <name>|all [--quick] [--out DIR]``: run benchmark scripts in turn (JSON to ``DIR``, default
``benchmarks/out``, or ``$LIMITS_BENCHMARK_OUT``)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="+", help=f"benchmark names or 'all': {', '.join(available())}")
    parser.add_argument("--quick", action="store_true", help="small sizes (for CI)")
    parser.add_argument("--out", default=None, help="folder for the JSON results (default: benchmarks/out)")
    args = parser.parse_args(argv)
    env = dict(os.environ, **({"LIMITS_BENCHMARK_OUT": str(Path(args.out).resolve())} if args.out else {}))
    names = available() if "all" in args.names else args.names
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"benchmarks: error: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(available())}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        start = time.perf_counter()
        print(f"=== {name} ===", flush=True)
        cmd = [sys.executable, str(HERE / f"{name}.py")] + (["--quick"] if args.quick else [])
        if subprocess.run(cmd, cwd=HERE.parent, env=env).returncode != 0:
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - start:.1f} s ===\n", flush=True)
    if failed:
        print(f"benchmarks: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
