"""Shared test fixtures."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def random_regression():
    """``make(P, D=8, seed=1) -> (X (P, D), y (P,))``: standard normal inputs, targets scaled to unit mean square."""

    def make(P, D=8, seed=1):
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((P, D))
        y = rng.standard_normal(P)
        return X, y / np.sqrt(np.mean(y**2))

    return make
