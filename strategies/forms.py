"""Browser forms for strategies and backtests: parameter inputs come from the kind declarations."""

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, localcontext

from django import forms
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from cryptodesk.forms import BoundedDecimalField, BoundedIntegerField, CoinChoiceField, amount_field
from cryptodesk.money import CONTEXT, NumberRejected, parse_bounded_decimal
from market.models import Coin
from portfolios.models import Portfolio

from . import selectors
from .engine.kinds import KINDS, TIMEFRAMES, Kind, Param, ParamError
from .models import Strategy

PARAM_PREFIX = "params."  # a parameter's field is named as the service names its errors: "params.fast"
TIMEFRAME_LABELS = {"1d": "Daily bars (1d)", "1h": "Hourly bars (1h)"}
DECIMAL_STEP = Decimal("0.01")
DEFAULT_BACKTEST_DAYS = 365
MAX_CAPITAL = Decimal(10) ** 15
MAX_BPS = Decimal(1000)


def described(text: str) -> str:
    """A declaration's description as HTML: escaped, with `name` references set as code."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: plain text
        return format_html("{}", text)
    pairs = [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
    return format_html("{}{}", format_html_join("", "{}<code>{}</code>", pairs), parts[-1])


def param_label(param: Param) -> str:
    return param.name.replace("_", " ").capitalize()


class ParamField(forms.Field):
    """A strategy parameter typed in a number input, cleaned by its declaration (Param.clean) alone: the same
    bounds, digits and refusals as the API."""

    def __init__(self, *, param: Param, **kwargs):
        self.param = param
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return self.param.clean(value)
        except ParamError as exc:
            raise forms.ValidationError(exc.message, code="invalid") from None


def param_field(param: Param, initial) -> forms.Field:
    """A number input bounded as the declaration says, its default filled in and its description as help; an
    optional parameter (a protective exit) may be left empty, which leaves it off."""
    if param.kind is int:
        step = "1"
    else:
        exponent = param.minimum.as_tuple().exponent if isinstance(param.minimum, Decimal) else 0
        step = str(min(DECIMAL_STEP, Decimal(1).scaleb(exponent)) if isinstance(exponent, int) else DECIMAL_STEP)
    attrs = {"min": str(param.minimum), "max": str(param.maximum), "step": step}
    if param.kind is not int:
        attrs["inputmode"] = "decimal"
    return ParamField(
        param=param,
        label=param_label(param),
        required=not param.optional,
        initial=initial,
        help_text=param.description,
        widget=forms.NumberInput(attrs=attrs),
    )


def kind_for(value: object, fallback: str | None = None) -> Kind:
    """The declared kind named `value`, else `fallback`'s, else the first one."""
    if isinstance(value, str) and value in KINDS:
        return KINDS[value]
    if fallback in KINDS:
        return KINDS[fallback]
    return next(iter(KINDS.values()))


class StrategyForm(forms.Form):
    """Name, coin, timeframe and the chosen kind's parameters; visibility is shown to publishers only."""

    name = forms.CharField(max_length=120, widget=forms.TextInput(attrs={"placeholder": "e.g. Golden cross on BTC"}))
    description = forms.CharField(
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "What the idea is, and when you expect it to work."}),
    )
    kind = forms.ChoiceField(label="Strategy kind", choices=[(kind.name, kind.label) for kind in KINDS.values()])
    coin = CoinChoiceField()
    timeframe = forms.ChoiceField(
        choices=[(name, TIMEFRAME_LABELS.get(name, name)) for name in TIMEFRAMES],
        initial="1d",
    )
    visibility = forms.ChoiceField(
        choices=Strategy.Visibility.choices,
        required=False,
        initial=Strategy.Visibility.PRIVATE,
        widget=forms.RadioSelect,
        help_text="Published strategies can be read, backtested and cloned by every signed-in user.",
    )

    def __init__(self, data=None, *, user, strategy: Strategy | None = None, kind: str | None = None):
        self.user = user
        self.strategy = strategy
        initial = {}
        if strategy is not None:
            initial = {
                "name": strategy.name,
                "description": strategy.description,
                "kind": strategy.kind,
                "coin": strategy.coin_id,
                "timeframe": strategy.timeframe,
                "visibility": strategy.visibility,
            }
        chosen = kind_for(data.get("kind") if data is not None else kind, strategy.kind if strategy else None)
        initial["kind"] = chosen.name
        super().__init__(data, initial=initial)
        self.fields[
            "timeframe"
        ].help_text = f"Hourly bars need hourly history, kept for the last {settings.MARKET_KEEP_HOURLY_DAYS} days."
        self.chosen_kind = chosen
        if strategy is not None:  # the saved coin stays a choice even if it has lost its quote since
            self.fields["coin"].queryset = (
                Coin.objects.filter(Q(quote__isnull=False) | Q(pk=strategy.coin_id))
                .select_related("quote")
                .order_by(F("market_cap_rank").asc(nulls_last=True), "id")
            )
        saved = strategy.params if strategy is not None and strategy.kind == chosen.name else {}
        for param in chosen.params:
            self.fields[PARAM_PREFIX + param.name] = param_field(param, saved.get(param.name, param.default))

    @property
    def can_publish(self) -> bool:
        return bool(self.user.can_publish_strategies)

    @property
    def kind_description(self) -> str:
        return described(self.chosen_kind.description)

    @property
    def param_inputs(self) -> list[dict]:
        """Each parameter's bound field with its declaration (bounds and default for the hint)."""
        return [{"field": self[PARAM_PREFIX + param.name], "param": param} for param in self.chosen_kind.params]

    @property
    def show_visibility(self) -> bool:
        """Publishers choose; anyone else sees the field only to read why a forced choice was refused."""
        return self.can_publish or bool(self["visibility"].errors)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the strategy a name.")
        return name

    def clean_visibility(self) -> str:
        value = self.cleaned_data.get("visibility")
        if value:
            return value
        return self.strategy.visibility if self.strategy is not None else Strategy.Visibility.PRIVATE

    def clean(self) -> dict:
        data = super().clean()
        data["params"] = {
            name.removeprefix(PARAM_PREFIX): value
            for name, value in data.items()
            if name.startswith(PARAM_PREFIX) and value is not None
        }
        return data

    def service_arguments(self) -> dict:
        """What create_strategy and update_strategy take; visibility only when it is a change."""
        data = self.cleaned_data
        arguments = {
            "name": data["name"],
            "description": data["description"],
            "kind": data["kind"],
            "params": data["params"],
            "coin": data["coin"],
            "timeframe": data["timeframe"],
        }
        current = self.strategy.visibility if self.strategy is not None else Strategy.Visibility.PRIVATE
        if data["visibility"] != current or self.strategy is None:
            arguments["visibility"] = data["visibility"]
        return arguments


def _today() -> date:
    return timezone.now().astimezone(UTC).date()


class BacktestForm(forms.Form):
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    end = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="Dates are UTC; the end day is included.",
    )
    initial_capital = amount_field(
        label="Initial capital (USD)",
        min_value=Decimal("0.01"),
        max_value=MAX_CAPITAL,
        initial=Decimal(10_000),
        error_messages={"min_value": "Enter a capital above 0."},
    )
    fee_bps = BoundedDecimalField(
        label="Fee (bps)",
        max_digits=8,
        decimal_places=4,
        min_value=Decimal(0),
        max_value=MAX_BPS,
        initial=Decimal(10),
        help_text="Paid on each side: 10 bps = 0.1 %.",
        widget=forms.NumberInput(attrs={"step": "0.01"}),
    )
    slippage_bps = BoundedDecimalField(
        label="Slippage (bps)",
        max_digits=8,
        decimal_places=4,
        min_value=Decimal(0),
        max_value=MAX_BPS,
        initial=Decimal(0),
        help_text="Fills are this much worse than the close.",
        widget=forms.NumberInput(attrs={"step": "0.01"}),
    )

    def __init__(self, data=None, **kwargs):
        today = _today()
        kwargs.setdefault("initial", {"start": today - timedelta(days=DEFAULT_BACKTEST_DAYS), "end": today})
        super().__init__(data, **kwargs)

    @classmethod
    def for_strategy(cls, strategy) -> "BacktestForm":
        """The default range, starting no earlier than the first whole day the strategy's timeframe has stored
        history for (an hourly strategy's year would otherwise reach back into daily-only prices)."""
        form = cls()
        start, end = form.initial["start"], form.initial["end"]
        since = datetime.combine(start, time.min, tzinfo=UTC)
        coverage = selectors.history_coverage(strategy.coin_id, strategy.timeframe, since=since)
        if coverage is not None and coverage.mixes_bar_sizes(datetime.combine(end, time.max, tzinfo=UTC)):
            form.initial["start"] = min(coverage.first_whole_day, end)
        return form

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end <= start:
            self.add_error("end", "The end must be after the start.")
        if start and start > _today():
            self.add_error("start", "The start cannot be in the future.")
        return data

    def service_arguments(self) -> dict:
        """The range as aware UTC datetimes: from the start day's first moment to the end day's last."""
        data = self.cleaned_data
        return {
            "start": datetime.combine(data["start"], time.min, tzinfo=UTC),
            "end": datetime.combine(data["end"], time.max, tzinfo=UTC),
            "initial_capital": data["initial_capital"],
            "fee_bps": data["fee_bps"],
            "slippage_bps": data["slippage_bps"],
        }


class PortfolioChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"{obj.name} · ${obj.available_cash:,.2f}"


class PaperRunForm(forms.Form):
    """Which of the user's portfolios the strategy trades on paper."""

    portfolio = PortfolioChoiceField(
        queryset=None,
        empty_label=None,
        error_messages={
            "required": "Choose one of your portfolios.",
            "invalid_choice": "Choose one of your portfolios.",
        },
        help_text="The run trades with the cash this portfolio has available now (shown beside its name).",
    )

    def __init__(self, data=None, *, user, **kwargs):
        super().__init__(data, **kwargs)
        self.fields["portfolio"].queryset = Portfolio.objects.filter(owner=user).order_by("created_at", "id")


# --- optimisations -----------------------------------------------------------------------------------

GRID_PREFIX = "grid."  # a parameter's list input is named as the service names its errors: "grid.fast"
RANGE_PARTS = ("from", "to", "step")
OBJECTIVE_LABELS = {
    "sharpe": "Sharpe ratio (highest)",
    "total_return": "Total return (highest)",
    "cagr": "CAGR (highest)",
    "sortino": "Sortino ratio (highest)",
    "max_drawdown": "Max drawdown (lowest)",
    "profit_factor": "Profit factor (highest)",
    "win_rate": "Win rate (highest)",
}


def _grid_input(param: Param, part: str) -> forms.CharField:
    attrs = {"autocomplete": "off", "spellcheck": "false", "data-grid-part": part}
    if part == "values":
        attrs["placeholder"] = "e.g. 10, 20, 30" if param.kind is int else "e.g. 0.05, 0.1"
        label, help_text = f"{param_label(param)}: values", ""
    else:
        attrs["inputmode"] = "numeric" if param.kind is int else "decimal"
        label, help_text = f"{param_label(param)}: {part}", ""
    return forms.CharField(
        label=label, required=False, max_length=2000, help_text=help_text, widget=forms.TextInput(attrs=attrs)
    )


class OptimizationForm(BacktestForm):
    """The backtest inputs, an objective, and for each of the kind's parameters a list of values or a range
    (from, to, step); a parameter left empty keeps the strategy's value. Optionally walk-forward windows."""

    objective = forms.ChoiceField(choices=list(OBJECTIVE_LABELS.items()), initial="sharpe", label="Rank by")
    walk_forward = forms.BooleanField(
        required=False,
        label="Walk-forward",
        help_text="Optimise on each train window, then trade its best on the test window after it.",
    )
    train_bars = BoundedIntegerField(label="Train bars", required=False, min_value=2, initial=180)
    test_bars = BoundedIntegerField(label="Test bars", required=False, min_value=2, initial=60)

    def __init__(self, data=None, *, strategy: Strategy, **kwargs):
        super().__init__(data, **kwargs)
        self.strategy = strategy
        self.kind = KINDS[strategy.kind]
        for param in self.kind.params:
            self.fields[GRID_PREFIX + param.name] = _grid_input(param, "values")
            for part in RANGE_PARTS:
                self.fields[f"{GRID_PREFIX}{param.name}.{part}"] = _grid_input(param, part)

    @classmethod
    def for_strategy(cls, strategy) -> "OptimizationForm":
        """The backtest form's default range for this strategy (BacktestForm.for_strategy)."""
        return cls(strategy=strategy, initial=BacktestForm.for_strategy(strategy).initial)

    @property
    def max_combinations(self) -> int:
        return settings.OPTIMIZE_MAX_COMBINATIONS

    @property
    def grid_inputs(self) -> list[dict]:
        """Each parameter's list input and range inputs, with its declaration and the strategy's value."""
        return [
            {
                "param": param,
                "label": param_label(param),
                "current": self.strategy.params.get(param.name, param.default),
                "values": self[GRID_PREFIX + param.name],
                "range": [self[f"{GRID_PREFIX}{param.name}.{part}"] for part in RANGE_PARTS],
            }
            for param in self.kind.params
        ]

    def _range(self, param: Param) -> list[str] | None:
        """The values of a range (from, to, step), each checked by the declaration; None when none is given."""
        names = [f"{GRID_PREFIX}{param.name}.{part}" for part in RANGE_PARTS]
        raw = [self.cleaned_data.get(name, "").strip() for name in names]
        if not any(raw):
            return None
        if not all(raw):
            for name, text in zip(names, raw, strict=True):
                if not text:
                    self.add_error(name, "Give from, to and step, or leave all three empty.")
            return None
        bounds = []
        for name, text in zip(names[:2], raw[:2], strict=True):
            try:
                bounds.append(param.clean(text))
            except ParamError as exc:
                self.add_error(name, exc.message)
        if len(bounds) < 2:
            return None
        low, high = bounds
        try:
            step = parse_bounded_decimal(raw[2])
        except NumberRejected:
            step = None
        if step is None or step <= 0 or (param.kind is int and step != step.to_integral_value()):
            kind = "a whole number" if param.kind is int else "a number"
            self.add_error(names[2], f"The step must be {kind} above 0.")
            return None
        if high < low:
            self.add_error(names[1], "“To” must not be below “from”.")
            return None
        with localcontext(CONTEXT):
            count = int((Decimal(high) - Decimal(low)) / step) + 1
            if count > self.max_combinations:
                self.add_error(names[2], f"This range has {count:,} values: at most {self.max_combinations:,}.")
                return None
            return [str(Decimal(low) + index * step) for index in range(count)]

    def clean(self) -> dict:
        data = super().clean()
        grid: dict[str, list[str]] = {}
        for param in self.kind.params:
            name = GRID_PREFIX + param.name
            listed = [token for token in re.split(r"[\s,;]+", data.get(name, "")) if token]
            ranged = self._range(param)
            if listed and ranged is not None:
                self.add_error(name, "Give a list or a range, not both.")
            elif listed:
                grid[param.name] = listed
            elif ranged is not None:
                grid[param.name] = ranged
        data["grid"] = grid
        if data.get("walk_forward"):
            for name in ("train_bars", "test_bars"):
                if data.get(name) is None and name not in self.errors:
                    self.add_error(name, "Give a number of bars.")
        return data

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        walk_forward = None
        if data.get("walk_forward"):
            walk_forward = {"train_bars": data["train_bars"], "test_bars": data["test_bars"]}
        return {
            **super().service_arguments(),
            "grid": data["grid"],
            "objective": data["objective"],
            "walk_forward": walk_forward,
        }
