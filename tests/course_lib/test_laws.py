"""Amdahl's and Gustafson's laws and the serial-fraction fit."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib.laws import amdahl_speedup, fit_serial_fraction, gustafson_speedup


def test_amdahl_known_values() -> None:
    assert amdahl_speedup(0.0, 8) == 1.0
    assert amdahl_speedup(1.0, 8) == 8.0
    assert amdahl_speedup(0.9, 10) == pytest.approx(1 / (0.1 + 0.09))
    assert amdahl_speedup(0.95, 10**9) == pytest.approx(20.0, rel=1e-6)  # the 1/(1-p) ceiling


def test_gustafson_known_values() -> None:
    assert gustafson_speedup(0.9, 1) == 1.0
    assert gustafson_speedup(0.9, 10) == pytest.approx(9.1)


def test_laws_take_arrays() -> None:
    n = np.array([1, 2, 4])
    np.testing.assert_allclose(amdahl_speedup(0.5, n), [1.0, 4 / 3, 1.6])
    np.testing.assert_allclose(gustafson_speedup(0.5, n), [1.0, 1.5, 2.5])


@pytest.mark.parametrize("p, n", [(-0.1, 2), (1.5, 2), (0.5, 0)])
def test_bad_input_is_refused(p: float, n: int) -> None:
    with pytest.raises(ValueError):
        amdahl_speedup(p, n)
    with pytest.raises(ValueError):
        gustafson_speedup(p, n)


def test_fit_recovers_the_serial_fraction() -> None:
    workers = [1, 2, 4, 8, 16]
    speedups = [amdahl_speedup(0.8, n) for n in workers]
    assert fit_serial_fraction(workers, speedups) == pytest.approx(0.2, abs=1e-9)


def test_fit_clips_superlinear_data_and_refuses_bad_input() -> None:
    assert fit_serial_fraction([1, 2, 4], [1, 2.5, 6]) == 0.0
    with pytest.raises(ValueError):
        fit_serial_fraction([1, 2], [1.0])
    with pytest.raises(ValueError):
        fit_serial_fraction([1, 2], [1.0, -2.0])
