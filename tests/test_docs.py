"""The documentation site builds strictly (broken links, missing API objects fail)."""

import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("mkdocs") is None, reason="mkdocs not installed (pip install -e '.[dev]')")
def test_mkdocs_build_strict(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").exists()


def _public_functions():
    """The public functions and Parametrization methods of the API reference, by name."""
    import limits
    from limits import data, kernels
    from limits.parametrization import Parametrization

    functions = {
        "limits.solve_dmft": limits.solve_dmft,
        "limits.solve_kernel": limits.solve_kernel,
        "limits.simulate": limits.simulate,
        "limits.transfer": limits.transfer,
        "limits.depth_transfer": limits.depth_transfer,
        "limits.coord_check": limits.coord_check,
        "limits.compare": limits.compare,
        "limits.sweep": limits.sweep,
        "limits.local_cluster": limits.local_cluster,
        "limits.param": limits.param,
        "limits.kernels.mlp": kernels.mlp,
        "limits.kernels.resnet": kernels.resnet,
        "limits.kernels.resnet_infinite_depth": kernels.resnet_infinite_depth,
        "limits.kernels.gp_posterior": kernels.gp_posterior,
        "limits.kernels.kernel_ridge": kernels.kernel_ridge,
        "limits.datasets.teacher": limits.datasets.teacher,
        "limits.data.digits": data.digits,
        "limits.data.powerlaw_circle": data.powerlaw_circle,
        "limits.data.load": data.load,
        "limits.data.validate": data.validate,
        "limits.data.power_law": data.power_law,
        "limits.data.circle_task": data.circle_task,
        "limits.scaling.exponents": limits.scaling.exponents,
        "limits.scaling.solve": limits.scaling.solve,
        "limits.scaling.simulate": limits.scaling.simulate,
        "limits.scaling.fit": limits.scaling.fit,
    }
    for name, member in vars(Parametrization).items():
        if name.startswith("_"):
            continue
        fn = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
        if inspect.isfunction(fn):
            functions[f"limits.Parametrization.{name}"] = fn
    return functions


def _takes_arguments(fn) -> bool:
    return any(name not in ("self", "cls") for name in inspect.signature(fn).parameters)


def test_public_functions_document_args_and_returns():
    functions = _public_functions()
    for required in ("classify", "exponents", "instantiate", "kernel_limit", "dmft_limit", "equivalent", "subs"):
        assert f"limits.Parametrization.{required}" in functions
    missing = []
    for name, fn in functions.items():
        doc = fn.__doc__ or ""
        sections = (["Args:"] if _takes_arguments(fn) else []) + ["Returns:"]
        missing += [f"{name}: no {section}" for section in sections if section not in doc]
    assert not missing, "docstrings without Google-style sections:\n" + "\n".join(missing)
