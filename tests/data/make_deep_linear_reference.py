"""Stores the deep-linear width-N coefficients of the numpy prototype (benchmarks/finite_width_deep_linear/theory.py,
hand-written forward mode, validated against finite-width ensembles there) for tests/test_finite_width_linear.py.

    python tests/data/make_deep_linear_reference.py      # writes tests/data/deep_linear_reference.json
"""

import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "finite_width_deep_linear"))
sys.path.insert(0, str(ROOT))
import theory  # noqa: E402

import limits  # noqa: E402

CONFIG = dict(P=4, D=8, data_seed=0, depth=3, lr=0.5, steps=6)


def main():
    d = limits.datasets.teacher(P=CONFIG["P"], D=CONFIG["D"], seed=CONFIG["data_seed"])
    res = theory.deep_linear_fluctuations(d.X, d.y, CONFIG["depth"], CONFIG["lr"], CONFIG["steps"])
    out = {"config": CONFIG, "command": "python tests/data/make_deep_linear_reference.py",
           "cov": np.asarray(res["Sigma_f"]).tolist(), "ntk_var": np.asarray(res["ntk_var"]).tolist(),
           "phi_var": np.asarray(res["phi_var"]).tolist()}
    path = pathlib.Path(__file__).with_name("deep_linear_reference.json")
    path.write_text(json.dumps(out))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
