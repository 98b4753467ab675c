"""Strategy writes and backtest runs: parameters validated against the kind's declaration, results exact."""

from datetime import datetime
from decimal import Decimal
from functools import partial

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from cryptodesk.errors import DomainError
from cryptodesk.money import as_str
from cryptodesk.timestamps import from_ms, to_ms
from market.models import PricePoint
from portfolios import services as portfolio_services
from portfolios.models import Holding, Order, Portfolio

from .engine import backtest as engine
from .engine import convert, metrics
from .engine.kinds import KINDS, TIMEFRAMES, ParamError, validate
from .models import Backtest, PaperFill, PaperRun, Strategy

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


# --- paper trading a strategy ---------------------------------------------------------------------

QUANTITY_STEP = Decimal("0.00000001")
WARMUP_BARS = 1200  # history before the newest bar the indicators may need (slow ≤ 1000)


def _bars_until(coin_id: str, timeframe: str, *, since, until=None):
    qs = PricePoint.objects.filter(coin_id=coin_id, ts__gte=since)
    if until is not None:
        qs = qs.filter(ts__lte=until)
    points = list(qs.order_by("ts").values_list("ts", "price"))
    if not points:
        return convert.to_times([]), convert.to_floats([])
    times = convert.to_times([to_ms(ts) for ts, _ in points])
    return engine.bars(times, convert.to_floats([price for _, price in points]), timeframe)


@transaction.atomic
def start_paper_run(*, strategy: Strategy, user, portfolio) -> PaperRun:
    portfolio = Portfolio.objects.select_for_update().filter(pk=portfolio.pk, owner=user).first()
    if portfolio is None:
        raise ValidationError({"portfolio": ["Choose one of your portfolios."]})
    if PaperRun.objects.filter(portfolio=portfolio, coin=strategy.coin, status=PaperRun.Status.ACTIVE).exists():
        raise ValidationError({"portfolio": [f"A strategy already trades {strategy.coin_id} in this portfolio."]})
    if portfolio.available_cash <= 0:
        raise ValidationError({"portfolio": ["This portfolio has no available cash to trade with."]})
    return PaperRun.objects.create(
        strategy=strategy,
        owner=user,
        portfolio=portfolio,
        kind=strategy.kind,
        params=dict(strategy.params),
        coin=strategy.coin,
        timeframe=strategy.timeframe,
        capital=portfolio.available_cash,
    )


def stop_paper_run(*, run) -> None:
    PaperRun.objects.filter(pk=run.pk, status=PaperRun.Status.ACTIVE).update(
        status=PaperRun.Status.STOPPED, stopped_at=timezone.now()
    )
    run.refresh_from_db()


def _run_book(run) -> tuple[Decimal, Decimal]:
    """(cash left to the run, coins it holds) from its own fills."""
    cash, quantity = run.capital, Decimal(0)
    for fill in run.fills.select_related("order"):
        order = fill.order
        if order.status != "filled":
            continue
        notional = (order.quantity * order.filled_price).quantize(Decimal(1).scaleb(-18))
        if order.side == "buy":
            cash -= notional + order.fee
            quantity += order.quantity
        else:
            cash += notional - order.fee
            quantity -= order.quantity
    return cash, quantity


def evaluate_paper_run(run, *, now: datetime | None = None) -> str | None:
    """Act on the newest bar's signal once: a market order through the portfolios service (same rules, fees,
    idempotency). Returns "buy", "sell" or None."""
    now = now or timezone.now()
    size = TIMEFRAMES[run.timeframe]
    times, closes = _bars_until(run.coin_id, run.timeframe, since=from_ms(to_ms(now) - WARMUP_BARS * size))
    if len(closes) < 2:
        return None
    bar_ms = int(times[-1])
    if run.last_bar_ms is not None and bar_ms <= run.last_bar_ms:
        return None  # this bar was already acted on
    signal = engine.signal_on_last_bar(
        kind=run.kind, params=validate(run.kind, run.params), times=times, close=closes, since_ms=to_ms(run.started_at)
    )
    if signal is None:
        PaperRun.objects.filter(pk=run.pk).update(last_bar_ms=bar_ms)
        return None
    cash, held = _run_book(run)
    quote_price = run.coin.quote.current_price
    if signal == "buy":
        fee_rate = Decimal(settings.PAPER_FEE_BPS) / Decimal(10_000)
        budget = min(cash, run.portfolio.available_cash)
        if run.kind == "dca":
            budget = min(budget, Decimal(str(run.params["amount"])))
        quantity = (budget / (quote_price * (1 + fee_rate))).quantize(QUANTITY_STEP, rounding="ROUND_DOWN")
    else:
        holding = Holding.objects.filter(portfolio=run.portfolio, coin=run.coin).first()
        available = holding.quantity - holding.reserved_quantity if holding else Decimal(0)
        quantity = min(held, available)
    if quantity <= 0:
        PaperRun.objects.filter(pk=run.pk).update(last_bar_ms=bar_ms)
        return None
    try:
        with transaction.atomic():
            order, created = portfolio_services.place_order(
                user=run.owner,
                portfolio_id=run.portfolio_id,
                coin_id=run.coin_id,
                side=signal,
                type=Order.Type.MARKET,
                quantity=quantity,
                idempotency_key=f"paper-run:{run.pk}:{bar_ms}:{signal}",
            )
            if created:
                PaperFill.objects.create(run=run, order=order, bar_ms=bar_ms)
            PaperRun.objects.filter(pk=run.pk).update(last_bar_ms=bar_ms)
    except DomainError:
        return None  # refused (a stale price, say): the next sync tries this bar again
    return signal


def evaluate_paper_runs(*, coin_ids: list[str] | None = None) -> int:
    runs = PaperRun.objects.filter(status=PaperRun.Status.ACTIVE).select_related("owner", "portfolio", "coin__quote")
    if coin_ids is not None:
        runs = runs.filter(coin_id__in=coin_ids)
    return sum(evaluate_paper_run(run) is not None for run in runs)


def drift_report(run, *, now: datetime | None = None) -> dict:
    """The paper run against a backtest of the same strategy over the same period, side by side."""
    now = now or (run.stopped_at or timezone.now())
    size = TIMEFRAMES[run.timeframe]
    times, closes = _bars_until(
        run.coin_id, run.timeframe, since=from_ms(to_ms(run.started_at) - WARMUP_BARS * size), until=now
    )
    start_ms = to_ms(run.started_at) // size * size
    trade_from = convert.index_at_or_after(times, start_ms) if len(times) else 0
    cash, held = _run_book(run)
    quote = getattr(run.coin, "quote", None)
    if quote is not None:
        price = quote.current_price
    else:  # no quote (yet): value the coins at the newest stored close
        price = convert.to_decimal(float(closes[-1]), places=18) if len(closes) else Decimal(0)
    paper_equity = cash + (held * price).quantize(Decimal(1).scaleb(-18))
    fills = [
        {
            "time": fill.order.filled_at,
            "bar_time": fill.bar_ms,
            "side": fill.order.side,
            "quantity": as_str(fill.order.quantity),
            "price": as_str(fill.order.filled_price) if fill.order.filled_price is not None else None,
            "fee": as_str(fill.order.fee) if fill.order.fee is not None else None,
        }
        for fill in run.fills.select_related("order")
    ]
    report = {
        "period": {"start": run.started_at, "end": now},
        "paper": {
            "return": convert.to_number(float(paper_equity / run.capital - 1)),
            "equity": as_str(paper_equity),
            "fills": fills,
        },
        "backtest": None,
        "return_difference": None,
        "notes": (
            "Paper orders fill at the last synced price when the sync runs; the backtest fills at bar closes. "
            "Both pay the same fee; the backtest assumes no slippage."
        ),
    }
    if len(times) - trade_from >= 2:
        simulation = engine.run(
            kind=run.kind,
            params=validate(run.kind, run.params),
            times=times,
            close=closes,
            capital=float(run.capital),
            fee_bps=float(settings.PAPER_FEE_BPS),
            slippage_bps=0.0,
            trade_from=trade_from,
        )
        figures = metrics.compute(simulation, capital=float(run.capital))
        report["backtest"] = {
            "return": convert.to_number(figures["total_return"]),
            "equity": as_str(convert.to_decimal(figures["final_equity"])),
            "trades": [
                {
                    "entry_time": int(simulation.times[t.entry_index]),
                    "exit_time": int(simulation.times[t.exit_index]),
                    "entry_price": as_str(convert.to_decimal(t.entry_price)),
                    "exit_price": as_str(convert.to_decimal(t.exit_price)),
                    "quantity": as_str(convert.to_decimal(t.quantity, places=18)),
                }
                for t in simulation.trades
            ],
        }
        report["return_difference"] = convert.to_number(report["paper"]["return"] - figures["total_return"])
    return report


# --- demo -----------------------------------------------------------------------------------------

DEMO_ANALYST_EMAIL = "analyst@cryptodesk.local"


def seed_demo_strategies(*, trader) -> list[str]:
    """A published strategy by a demo analyst (to clone) and a backtested one of the demo trader's; once."""
    from datetime import timedelta

    from accounts.models import User
    from market.models import Coin

    coin = Coin.objects.filter(pk="bitcoin", quote__isnull=False).first()
    if coin is None or Strategy.objects.filter(owner=trader).exists():
        return []
    analyst, created = User.objects.get_or_create(
        email=DEMO_ANALYST_EMAIL,
        defaults={"display_name": "Demo Analyst", "role": User.Role.ANALYST, "email_verified": True},
    )
    if created:
        analyst.set_unusable_password()  # a byline for published strategies, not a login
        analyst.save()
    if not Strategy.objects.filter(owner=analyst).exists():
        create_strategy(
            owner=analyst,
            name="BTC RSI dip buyer",
            kind="rsi_reversion",
            params={"period": 14, "lower": 30, "upper": 65},
            coin=coin,
            description="Buys oversold dips, sells into strength.",
            visibility=Strategy.Visibility.PUBLISHED,
        )
    strategy = create_strategy(
        owner=trader,
        name="BTC golden cross",
        kind="sma_crossover",
        params={"fast": 20, "slow": 50},
        coin=coin,
        description="The classic: in when the 20-day average crosses above the 50-day, out when it crosses back.",
    )
    end = timezone.now()
    queue_backtest(
        strategy=strategy,
        user=trader,
        start=end - timedelta(days=365),
        end=end,
        initial_capital=Decimal(10_000),
        fee_bps=Decimal(10),
        slippage_bps=Decimal(0),
    )
    return [f"Demo strategies: {strategy.name} (backtested) and a published one by {DEMO_ANALYST_EMAIL}."]
