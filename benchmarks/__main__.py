"""``python -m benchmarks <name>|all [--quick] [--out DIR]``: run benchmark scripts in turn (JSON to ``DIR``, default
``benchmarks/out``, or ``$LIMITS_BENCHMARK_OUT``)."""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))


def _run(path: Path, argv: list[str], env: dict) -> int:
    """Run one benchmark script as ``__main__`` in this process (JAX is imported once and compiled functions are
    shared between the scripts); its exit status, 1 for an exception (whose traceback is printed)."""
    saved_argv, saved_env, saved_path = sys.argv, dict(os.environ), list(sys.path)
    sys.argv = [str(path), *argv]
    sys.path.insert(0, str(path.parent))  # as for `python benchmarks/<name>.py`: the helpers in benchmarks/ import
    os.environ.update(env)
    try:
        runpy.run_path(str(path), run_name="__main__")
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:  # noqa: BLE001 - report and go on with the next benchmark
        traceback.print_exc()
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        os.environ.clear()
        os.environ.update(saved_env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="+", help=f"benchmark names or 'all': {', '.join(available())}")
    parser.add_argument("--quick", action="store_true", help="small sizes (for CI)")
    parser.add_argument("--out", default=None, help="folder for the JSON results (default: benchmarks/out)")
    args = parser.parse_args(argv)
    env = {"LIMITS_BENCHMARK_OUT": str(Path(args.out).resolve())} if args.out else {}
    names = available() if "all" in args.names else args.names
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"benchmarks: error: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(available())}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        start = time.perf_counter()
        print(f"=== {name} ===", flush=True)
        if _run(HERE / f"{name}.py", ["--quick"] if args.quick else [], env) != 0:
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - start:.1f} s ===\n", flush=True)
    if failed:
        print(f"benchmarks: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
