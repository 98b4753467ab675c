"""The engine's two borders: exact decimals in → floats for the maths; floats out → quantized decimals."""

import math
from decimal import Decimal

import numpy as np

from cryptodesk.money import quantize


def index_at_or_after(times: np.ndarray, moment_ms: int) -> int:
    """The first bar at or after `moment_ms`."""
    return int(np.searchsorted(times, moment_ms))


def to_times(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def to_floats(values: list[Decimal]) -> np.ndarray:
    return np.array([float(value) for value in values], dtype=float)


def to_decimal(value: float, *, places: int = 8) -> Decimal:
    """A result leaves the engine as an exact decimal; NaN or infinity is a bug, never a number."""
    if not math.isfinite(value):
        raise ValueError(f"the engine produced {value!r}")
    return quantize(Decimal(repr(float(value))), places=places)


def to_number(value: float | int | None, *, digits: int = 10) -> float | int | None:
    """A ratio for JSON: finite, rounded to `digits` significant digits (no float noise in the API)."""
    if value is None or isinstance(value, int):
        return value
    if not math.isfinite(value):
        raise ValueError(f"the engine produced {value!r}")
    return float(f"{value:.{digits}g}")
