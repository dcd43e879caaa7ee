"""Scripts that regenerate published figures with this package.

Each module ``paper_figures/<name>.py`` has a docstring naming the paper and
figure, and a function ``make(out_dir: Path, quick: bool) -> list[Path]`` that
computes the figure with ``limits`` (never from stored numbers) and writes PNG
and PDF files. Run ``python -m paper_figures <name>|all [--quick]``.
"""

FIGURES = (
    "phase_diagram",
    "ntk_convergence",
    "coord_check",
    "mutransfer",
    "bp2022_gamma_sweep",
    "deep_linear",
    "depthwise_transfer",
    "commutation",
    "finite_width_variance",
    "adamw_muon",
    "scaling_laws",
)
