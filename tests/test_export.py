"""Export's integer arithmetic: real requantization multipliers as ``mult / 2**shift``."""

from __future__ import annotations

import numpy as np
import pytest

from model.export import fixed_point


def test_fixed_point_multipliers() -> None:
    real = np.array([1e-6, 0.003, 0.5, 1.0, 3.7])
    mult, shift = fixed_point(real, "test")
    assert (mult < 2**16).all() and (shift >= 1).all()
    assert np.allclose(mult / 2.0**shift, real, rtol=2e-5)
    with pytest.raises(ValueError, match="too large"):
        fixed_point(np.array([2.0**16]), "layer 'x'")
