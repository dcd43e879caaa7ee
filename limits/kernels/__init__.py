"""Kernel (lazy) infinite-width limits: NNGP/NTK recursions and kernel gradient descent.

- :func:`mlp`: NNGP and NTK of deep MLPs (neural-tangents ``stax`` conventions),
  with per-layer NTK contributions and a fused Numba CPU backend.
- :func:`resnet`, :func:`resnet_infinite_depth`: ResNet kernels and the depth
  limit of the 1/sqrt(L)-branch ResNet (covariance ODE).
- :func:`gp_posterior`, :func:`kernel_ridge`: GP posterior / kernel ridge regression.
- :func:`solve_kernel`: exact kernel gradient descent or flow as a
  :class:`~limits.trajectory.Trajectory`.

Importing this package enables JAX float64 (``jax_enable_x64``).
"""

import jax

jax.config.update("jax_enable_x64", True)

from limits.kernels._common import Kernels  # noqa: E402
from limits.kernels.gd import solve_kernel  # noqa: E402
from limits.kernels.gp import Posterior, gp_posterior, kernel_ridge  # noqa: E402
from limits.kernels.mlp import MLPKernel, mlp  # noqa: E402
from limits.kernels.resnet import ResNetKernel, resnet, resnet_infinite_depth  # noqa: E402

__all__ = [
    "Kernels",
    "MLPKernel",
    "Posterior",
    "ResNetKernel",
    "gp_posterior",
    "kernel_ridge",
    "mlp",
    "resnet",
    "resnet_infinite_depth",
    "solve_kernel",
]
