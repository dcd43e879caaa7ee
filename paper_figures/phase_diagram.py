"""TP4's picture of abc-parametrization space (Yang & Hu 2021, arXiv 2011.14522, Fig. 2 in spirit).

A 2-D slice (readout exponent vs shared learning-rate exponent, hidden layers in
DMFT form) coloured by the regime that :meth:`Parametrization.classify` computes:
unstable, trivial, the kernel-regime segment ending at NTK, and the single
feature-learning point muP.
"""

from fractions import Fraction
from pathlib import Path

from limits.phase_diagram import plot_phase_diagram


def make(out: Path, quick: bool = False) -> list[Path]:
    step = Fraction(1, 4) if quick else Fraction(1, 16)
    return [plot_phase_diagram(out / f"phase_diagram.{ext}", depth=2, step=step) for ext in ("png", "pdf")]
