"""Kernel (lazy) infinite-width limits: NNGP/NTK recursions and kernel gradient descent.

- :func:`mlp`: NNGP and NTK of deep MLPs (neural-tangents ``stax`` conventions),
  with per-layer NTK contributions and a fused Numba CPU backend.
- :func:`resnet`, :func:`resnet_infinite_depth`: ResNet kernels and the depth
  limit of the 1/sqrt(L)-branch ResNet (covariance ODE).
- :func:`gp_posterior`, :func:`kernel_ridge`: GP posterior / kernel ridge regression.
- :func:`solve_kernel`: exact kernel gradient descent or flow as a
  :class:`~limits.trajectory.Trajectory`; its numerical options are :class:`KernelGD`.

Everything is computed in float64 under a scoped ``jax.enable_x64(True)``; importing this package or calling its
functions leaves the global ``jax_enable_x64`` setting as it was.
"""

from limits.kernels._common import Kernels
from limits.kernels.gd import KernelGD, solve_kernel
from limits.kernels.gp import Posterior, gp_posterior, kernel_ridge
from limits.kernels.mlp import MLPKernel, mlp
from limits.kernels.resnet import ResNetKernel, resnet, resnet_infinite_depth

__all__ = [
    "KernelGD",
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
