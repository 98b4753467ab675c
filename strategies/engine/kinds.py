"""Every strategy kind and its parameters, declared once: validation, the kinds endpoint and the form read this."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from cryptodesk.money import NumberRejected, parse_bounded_decimal


class ParamError(ValueError):
    """One parameter is wrong; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # int or Decimal
    default: int | Decimal | None  # None: optional, off when absent
    minimum: int | Decimal
    maximum: int | Decimal
    description: str

    @property
    def optional(self) -> bool:
        return self.default is None

    def clean(self, raw: object) -> int | Decimal:
        """The value checked for shape and bounds before it is ever built: a huge exponent or a 5,000-digit
        string is refused on its size, never turned into an int first."""
        if isinstance(raw, str):
            pattern = _PLAIN_INTEGER if self.kind is int else _PLAIN_DECIMAL
            if len(raw) > MAX_PARAM_CHARS or not pattern.fullmatch(raw):
                expected = "a whole number" if self.kind is int else "a number"
                raise ParamError(self.name, f"{self.name} must be {expected} written with the digits 0-9.")
        try:
            value = parse_bounded_decimal(raw)
        except NumberRejected:
            if isinstance(raw, Decimal | int) and not isinstance(raw, bool) and _is_huge(raw):
                raise ParamError(self.name, self._bounds_message()) from None
            raise ParamError(self.name, f"{self.name} must be a number.") from None
        if not self.minimum <= value <= self.maximum:  # bounded first: the int below is small
            raise ParamError(self.name, self._bounds_message())
        if self.kind is int:
            if value != value.to_integral_value():
                raise ParamError(self.name, f"{self.name} must be a whole number.")
            return int(value)
        return value

    def _bounds_message(self) -> str:
        return f"{self.name} must be between {self.minimum} and {self.maximum}."


MAX_PARAM_CHARS = 40  # far longer than any bound written out
_PLAIN_INTEGER = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: "¹²" and "١٢" are not numbers here
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _is_huge(value: Decimal | int) -> bool:
    """A finite number refused for its size (not its shape): out of every parameter's bounds."""
    if isinstance(value, int):
        return True
    return value.is_finite() and value != 0 and value.adjusted() > 0


@dataclass(frozen=True)
class Kind:
    name: str
    label: str
    description: str
    params: tuple[Param, ...]
    check: Callable[[dict], None] = field(default=lambda params: None)
    no_exits: str = ""  # why the protective exits do not apply to this kind (it then does not declare them)

    def defaults(self) -> dict:
        return {param.name: param.default for param in self.params if not param.optional}

    def validate(self, raw: dict | None) -> dict:
        """Defaults filled in, types and bounds checked, cross-parameter rules applied; unknown keys refused.
        An optional parameter absent or null is off: it is left out of the result."""
        raw = dict(raw or {})
        unknown = sorted(set(raw) - {param.name for param in self.params})
        if unknown:
            name = unknown[0]
            if self.no_exits and name in PROTECTIVE_NAMES:
                raise ParamError(name, f"{name} does not apply to {self.name}: {self.no_exits}")
            raise ParamError(name, f"{name} is not a parameter of {self.name}.")
        cleaned = {
            param.name: param.clean(raw.get(param.name, param.default))
            for param in self.params
            if not param.optional or raw.get(param.name) is not None
        }
        self.check(cleaned)
        return cleaned


def _fast_below_slow(params: dict) -> None:
    if params["fast"] >= params["slow"]:
        raise ParamError("fast", "fast must be shorter than slow.")


def _lower_below_upper(params: dict) -> None:
    if params["lower"] >= params["upper"]:
        raise ParamError("lower", "lower must be below upper.")


# Protective exits, optional on every kind that holds one position (fractions of a price: 0.05 = 5 %). The smallest
# is a basis point; a stop or trail can be at most 99 % away, a target at most +10,000 %.
PROTECTIVE = (
    Param(
        "stop_loss_pct",
        Decimal,
        None,
        Decimal("0.0001"),
        Decimal("0.99"),
        "Stop loss: sell on the first close at or below the entry price × (1 − this). 0.05 = 5 %; empty: none.",
    ),
    Param(
        "take_profit_pct",
        Decimal,
        None,
        Decimal("0.0001"),
        Decimal(100),
        "Take profit: sell on the first close at or above the entry price × (1 + this). 0.2 = 20 %; empty: none.",
    ),
    Param(
        "trailing_stop_pct",
        Decimal,
        None,
        Decimal("0.0001"),
        Decimal("0.99"),
        "Trailing stop: sell on the first close at or below the highest close since the entry × (1 − this). "
        "0.1 = 10 %; empty: none.",
    ),
)
PROTECTIVE_NAMES = frozenset(param.name for param in PROTECTIVE)

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in [
        Kind(
            "sma_crossover",
            "SMA crossover",
            "Buy when the fast simple moving average crosses above the slow one; sell when it crosses below.",
            (
                Param("fast", int, 20, 2, 500, "Bars in the fast average."),
                Param("slow", int, 50, 3, 1000, "Bars in the slow average."),
                *PROTECTIVE,
            ),
            _fast_below_slow,
        ),
        Kind(
            "ema_crossover",
            "EMA crossover",
            "Like the SMA crossover, with exponential averages (α = 2 / (n + 1)) that react faster.",
            (
                Param("fast", int, 12, 2, 500, "Bars in the fast average."),
                Param("slow", int, 26, 3, 1000, "Bars in the slow average."),
                *PROTECTIVE,
            ),
            _fast_below_slow,
        ),
        Kind(
            "rsi_reversion",
            "RSI mean reversion",
            "Buy when the RSI falls below `lower` (oversold); sell when it rises above `upper` (overbought).",
            (
                Param("period", int, 14, 2, 200, "Bars in Wilder's RSI."),
                Param("lower", Decimal, Decimal(30), Decimal(1), Decimal(99), "Oversold level."),
                Param("upper", Decimal, Decimal(70), Decimal(1), Decimal(99), "Overbought level."),
                *PROTECTIVE,
            ),
            _lower_below_upper,
        ),
        Kind(
            "breakout",
            "Breakout",
            "Buy when the close breaks above the highest close of the last `lookback` bars; "
            "sell when it breaks below the lowest.",
            (Param("lookback", int, 20, 2, 500, "Bars that define the range."), *PROTECTIVE),
        ),
        Kind(
            "dca",
            "Dollar-cost averaging",
            "Buy `amount` USD every `every_days` days, whatever the price; hold to the end.",
            (
                Param("amount", Decimal, Decimal(100), Decimal("0.01"), Decimal(10) ** 9, "USD per purchase."),
                Param("every_days", int, 7, 1, 365, "Days between purchases."),
            ),
            no_exits="it buys lots on a schedule and holds every lot to the end, so there is no single entry to stop.",
        ),
    ]
}

TIMEFRAMES = {"1d": 86_400_000, "1h": 3_600_000}  # bar length in milliseconds


def validate(kind: str, params: dict | None) -> dict:
    if kind not in KINDS:
        raise ParamError("kind", f"Unknown kind; use one of {', '.join(KINDS)}.")
    return KINDS[kind].validate(params)
