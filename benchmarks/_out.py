"""Where a benchmark writes its JSON: ``$LIMITS_BENCHMARK_OUT`` (set by ``python -m benchmarks --out DIR``) or
``benchmarks/out``."""

from __future__ import annotations

import os
from pathlib import Path


def result_path(filename: str) -> Path:
    """The path of a result file, its folder created."""
    folder = Path(os.environ.get("LIMITS_BENCHMARK_OUT", Path(__file__).resolve().parent / "out"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / filename
