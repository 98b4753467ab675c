"""Strategy writes and backtest runs: parameters validated against the kind's declaration, results exact."""

from datetime import datetime
from decimal import Decimal
from functools import partial

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from cryptodesk.errors import DomainError
from cryptodesk.money import as_str
from cryptodesk.timestamps import from_ms, to_ms
from market.models import PricePoint

from .engine import backtest as engine
from .engine import convert, metrics
from .engine.kinds import KINDS, TIMEFRAMES, ParamError, validate
from .models import Backtest, Strategy

EQUITY_POINTS_MAX = 2000  # stored curve: enough for any chart, small enough for one JSON response


class NotAllowed(DomainError):
    status = 403
    slug = "permission-denied"
    title = "Not allowed"


def clean_params(kind: str, params: dict | None) -> dict:
    """Validated, defaults filled in, JSON-ready (decimals as strings); errors name `params.<field>`."""
    try:
        cleaned = validate(kind, params)
    except ParamError as exc:
        field = "kind" if exc.field == "kind" else f"params.{exc.field}"
        raise ValidationError({field: [exc.message]}) from None
    return {name: str(value) if isinstance(value, Decimal) else value for name, value in cleaned.items()}


def _check_publish(user, visibility: str) -> None:
    if visibility == Strategy.Visibility.PUBLISHED and not user.can_publish_strategies:
        raise NotAllowed("Only analysts and admins can publish strategies.", field="visibility")


@transaction.atomic
def create_strategy(
    *,
    owner,
    name: str,
    kind: str,
    params: dict | None,
    coin,
    timeframe: str = "1d",
    description: str = "",
    visibility: str = Strategy.Visibility.PRIVATE,
) -> Strategy:
    _check_publish(owner, visibility)
    return Strategy.objects.create(
        owner=owner,
        name=name,
        description=description,
        kind=kind,
        params=clean_params(kind, params),
        coin=coin,
        timeframe=timeframe,
        visibility=visibility,
    )


@transaction.atomic
def update_strategy(*, strategy: Strategy, user, **changes) -> Strategy:
    if "visibility" in changes:
        _check_publish(user, changes["visibility"])
    kind = changes.get("kind", strategy.kind)
    if "params" in changes or "kind" in changes:
        changes["params"] = clean_params(kind, changes.get("params", strategy.params if kind == strategy.kind else {}))
    for name, value in changes.items():
        setattr(strategy, name, value)
    strategy.updated_at = timezone.now()
    strategy.save()
    return strategy


@transaction.atomic
def clone_strategy(*, strategy: Strategy, user) -> Strategy:
    """A private copy the user owns; the published original stays as it is."""
    return Strategy.objects.create(
        owner=user,
        name=f"{strategy.name} (copy)"[:120],
        description=strategy.description,
        kind=strategy.kind,
        params=dict(strategy.params),
        coin=strategy.coin,
        timeframe=strategy.timeframe,
        cloned_from=strategy,
    )


@transaction.atomic
def queue_backtest(
    *,
    strategy: Strategy,
    user,
    start: datetime,
    end: datetime,
    initial_capital: Decimal,
    fee_bps: Decimal,
    slippage_bps: Decimal,
) -> Backtest:
    if end <= start:
        raise ValidationError({"end": ["The end must be after the start."]})
    backtest = Backtest.objects.create(
        strategy=strategy,
        owner=user,
        kind=strategy.kind,
        params=dict(strategy.params),
        coin=strategy.coin,
        timeframe=strategy.timeframe,
        start=start,
        end=end,
        initial_capital=initial_capital,
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
    )
    from .tasks import run_backtest_task

    transaction.on_commit(partial(run_backtest_task.delay, str(backtest.pk)))
    return backtest


def _progress(backtest_id, value: int) -> None:
    Backtest.objects.filter(pk=backtest_id, status=Backtest.Status.RUNNING).update(progress=value)


def _sample(rows: list, limit: int) -> list:
    if len(rows) <= limit:
        return rows
    step = len(rows) / limit
    picked = [rows[int(i * step)] for i in range(limit - 1)]
    return [*picked, rows[-1]]


def run_backtest(backtest_id) -> Backtest | None:
    """Claim a queued backtest and run it; a failure is recorded with its reason, never raised to the worker."""
    if not Backtest.objects.filter(pk=backtest_id, status=Backtest.Status.QUEUED).update(
        status=Backtest.Status.RUNNING, started_at=timezone.now(), progress=5
    ):
        return None  # another worker has it, or it is done
    backtest = Backtest.objects.select_related("coin").get(pk=backtest_id)
    try:
        _run(backtest)
    except SoftTimeLimitExceeded:
        _fail(backtest.pk, "The backtest took longer than its time limit: try a shorter range or the 1d timeframe.")
    except Exception as exc:  # the run fails with a reason a person can read
        _fail(backtest.pk, str(exc)[:2000] or exc.__class__.__name__)
    backtest.refresh_from_db()
    return backtest


def _fail(backtest_id, reason: str) -> None:
    Backtest.objects.filter(pk=backtest_id).update(
        status=Backtest.Status.FAILED, error=reason, finished_at=timezone.now()
    )


def _run(backtest: Backtest) -> None:
    points = list(
        PricePoint.objects.filter(coin_id=backtest.coin_id, ts__gte=backtest.start, ts__lte=backtest.end)
        .order_by("ts")
        .values_list("ts", "price")
    )
    _progress(backtest.pk, 30)
    if len(points) < 2:
        raise ValueError(
            f"No stored {backtest.coin_id} history between {backtest.start:%Y-%m-%d} and {backtest.end:%Y-%m-%d}: "
            "sync or backfill history first."
        )
    times = convert.to_times([to_ms(ts) for ts, _ in points])
    bar_times, closes = engine.bars(times, convert.to_floats([price for _, price in points]), backtest.timeframe)
    if len(closes) < 2:
        raise ValueError(f"Only {len(closes)} {backtest.timeframe} bar in this range: a backtest needs at least two.")
    simulation = engine.run(
        kind=backtest.kind,
        params=validate(backtest.kind, backtest.params),
        times=bar_times,
        close=closes,
        capital=float(backtest.initial_capital),
        fee_bps=float(backtest.fee_bps),
        slippage_bps=float(backtest.slippage_bps),
    )
    _progress(backtest.pk, 80)
    figures = metrics.compute(simulation, capital=float(backtest.initial_capital))
    first_close = closes[0]
    capital = float(backtest.initial_capital)
    curve = [
        [
            int(ms),
            as_str(convert.to_decimal(equity, places=8)),
            as_str(convert.to_decimal(capital * close / first_close, places=8)),
        ]
        for ms, equity, close in zip(bar_times, simulation.equity, closes, strict=True)
    ]
    trades = [
        {
            "entry_time": int(bar_times[trade.entry_index]),
            "exit_time": int(bar_times[trade.exit_index]),
            "entry_price": as_str(convert.to_decimal(trade.entry_price)),
            "exit_price": as_str(convert.to_decimal(trade.exit_price)),
            "quantity": as_str(convert.to_decimal(trade.quantity, places=18)),
            "pnl": as_str(convert.to_decimal(trade.pnl)),
            "return": convert.to_number(trade.return_),
        }
        for trade in simulation.trades
    ]
    Backtest.objects.filter(pk=backtest.pk).update(
        status=Backtest.Status.SUCCEEDED,
        progress=100,
        data_start=from_ms(int(bar_times[0])),
        data_end=from_ms(int(bar_times[-1])),
        bars=len(closes),
        metrics={
            name: (
                as_str(convert.to_decimal(value)) if name in {"fees_paid", "final_equity"} else convert.to_number(value)
            )
            for name, value in figures.items()
        },
        equity_curve=_sample(curve, EQUITY_POINTS_MAX),
        trades=trades,
        finished_at=timezone.now(),
    )


def kinds_catalogue() -> list[dict]:
    return [
        {
            "kind": kind.name,
            "label": kind.label,
            "description": kind.description,
            "params": [
                {
                    "name": param.name,
                    "type": "integer" if param.kind is int else "decimal",
                    "default": param.default if param.kind is int else str(param.default),
                    "minimum": param.minimum if param.kind is int else str(param.minimum),
                    "maximum": param.maximum if param.kind is int else str(param.maximum),
                    "description": param.description,
                }
                for param in kind.params
            ],
        }
        for kind in KINDS.values()
    ]


TIMEFRAME_CHOICES = list(TIMEFRAMES)
