"""Strategy writes and backtest runs: parameters validated against the kind's declaration, results exact."""

import logging
from datetime import datetime, timedelta
from decimal import Decimal, localcontext

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from cryptodesk.errors import DomainError, FieldErrors
from cryptodesk.money import CONTEXT, as_str, mul
from cryptodesk.outbox import enqueue_on_commit
from cryptodesk.timestamps import from_ms, to_ms
from market.models import PricePoint
from portfolios import pricing
from portfolios import services as portfolio_services
from portfolios.models import Holding, Order, Portfolio

from . import selectors, signals
from .engine import backtest as engine
from .engine import convert, metrics
from .engine.kinds import KINDS, TIMEFRAMES, ParamError, validate
from .errors import NotAllowed, TooManyBacktests, field_error
from .models import Backtest, Optimization, PaperFill, PaperRun, Strategy

logger = logging.getLogger(__name__)

EQUITY_POINTS_MAX = 2500  # stored curve: every bar of the retained hourly history, one JSON response
BACKTEST_TIME_LIMIT_S = 330  # run_backtest_task's hard time limit
BACKTEST_REAP_MARGIN_S = 120  # running this much past the limit: its worker is gone
BACKTEST_MAX_ATTEMPTS = 2  # a backtest whose worker died is requeued once, then failed
ACTIVE = (Backtest.Status.QUEUED, Backtest.Status.RUNNING)


def clean_params(kind: str, params: dict | None) -> dict:
    """Validated, defaults filled in, JSON-ready (decimals as strings); errors name `params.<field>`."""
    try:
        cleaned = validate(kind, params)
    except ParamError as exc:
        field = "kind" if exc.field == "kind" else f"params.{exc.field}"
        raise field_error(field, exc.message) from None
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
def delete_strategy(*, strategy: Strategy, user) -> bool:
    """The owner's delete. A strategy others have backtested, optimised, trade on paper or cloned is archived
    instead (hidden, not runnable, their runs kept); the owner's own runs of it go either way. True if deleted."""
    strategy = Strategy.objects.select_for_update().get(pk=strategy.pk, owner=user)
    in_use = (
        strategy.backtests.exclude(owner=user).exists()
        or strategy.optimizations.exclude(owner=user).exists()
        or strategy.paper_runs.exclude(owner=user).exists()
        or strategy.clones.exclude(owner=user).exists()
    )
    if not in_use:
        strategy.delete()
        return True
    now = timezone.now()
    strategy.backtests.filter(owner=user).delete()
    strategy.optimizations.filter(owner=user).delete()
    strategy.paper_runs.filter(owner=user, status=PaperRun.Status.ACTIVE).update(
        status=PaperRun.Status.STOPPED, stopped_at=now
    )
    Strategy.objects.filter(pk=strategy.pk).update(
        archived_at=now, visibility=Strategy.Visibility.PRIVATE, updated_at=now
    )
    return False


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
        raise field_error("end", "The end must be after the start.")
    coverage = selectors.history_coverage(strategy.coin_id, strategy.timeframe, since=start)
    if coverage is not None and coverage.mixes_bar_sizes(end):
        raise _uncovered_range(strategy, coverage)
    # lock the strategy (a delete waits for this run to be counted) and the user (two requests at once must not
    # both see room under the cap)
    if not Strategy.objects.select_for_update().filter(pk=strategy.pk, archived_at__isnull=True).exists():
        raise field_error("strategy", "This strategy has been deleted by its owner: it cannot be run again.")
    # the user: two requests at once must not both see room under the cap
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    cap = settings.BACKTEST_MAX_ACTIVE_PER_USER
    active = Backtest.objects.filter(owner=user, status__in=ACTIVE).count()
    active += Optimization.objects.filter(owner=user, status__in=ACTIVE).count()  # one cap for both kinds of run
    if active >= cap:
        raise TooManyBacktests(
            f"You already have {cap} backtests queued or running: wait for one to finish, then try again."
        )
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

    enqueue_on_commit(run_backtest_task, str(backtest.pk))
    _backtests_changed([backtest.pk])
    return backtest


def _uncovered_range(strategy: Strategy, coverage: selectors.Coverage) -> FieldErrors:
    """The refusal of a range whose stored history is coarser than the strategy's bars, naming what is covered."""
    first, last, timeframe = coverage.first, coverage.last, strategy.timeframe
    unit = "hours" if timeframe == "1h" else "days"
    other = ", or the 1d timeframe" if timeframe != "1d" else ""
    return field_error(
        "start",
        f"Stored {timeframe} history of {strategy.coin.name} covers {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} "
        f"UTC; earlier prices are stored more than {engine.GAP_BARS_MAX} {unit} apart, so they would not make "
        f"{timeframe} bars. Choose a start on or after {first:%Y-%m-%d %H:%M} UTC "
        f"(whole days: from {coverage.first_whole_day:%Y-%m-%d}){other}.",
    )


def _backtests_changed(backtest_ids: list) -> None:
    if backtest_ids:
        signals.backtest_changed.send(sender=Backtest, backtest_ids=list(backtest_ids))


def _progress(backtest_id, value: int) -> None:
    if Backtest.objects.filter(pk=backtest_id, status=Backtest.Status.RUNNING).update(
        progress=value, heartbeat_at=timezone.now()
    ):
        _backtests_changed([backtest_id])


def _sample(rows: list, limit: int) -> list:
    """Every k-th row (a chart's time axis stays evenly spaced), and the last one (the final equity)."""
    if len(rows) <= limit:
        return rows
    step = -(-len(rows) // (limit - 1))  # ceiling: at most limit - 1 picks, then the last row
    picked = rows[::step]
    return picked if picked[-1] is rows[-1] else [*picked, rows[-1]]


def run_backtest(backtest_id) -> Backtest | None:
    """Claim a queued backtest and run it; a failure is recorded with its reason, never raised to the worker."""
    now = timezone.now()
    if not Backtest.objects.filter(pk=backtest_id, status=Backtest.Status.QUEUED).update(
        status=Backtest.Status.RUNNING, started_at=now, heartbeat_at=now, progress=5, attempts=F("attempts") + 1
    ):
        return None  # another worker has it, or it is done
    _backtests_changed([backtest_id])
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
    _backtests_changed([backtest_id])


def reap_runs(model, *, cutoff: datetime, max_attempts: int, error: str, task, now: datetime) -> tuple[list, list]:
    """Runs (backtests, optimisations) `running` since before `cutoff` lost their worker: requeued until they have
    been claimed `max_attempts` times, then failed with `error`. Each change is conditional, so a worker that was
    only slow and finished meanwhile keeps its result. Returns (requeued ids, failed ids)."""
    stuck = model.objects.filter(status=model.Status.RUNNING, started_at__lt=cutoff)
    worn_out = list(stuck.filter(attempts__gte=max_attempts).values_list("pk", flat=True))
    failed = model.objects.filter(pk__in=worn_out, status=model.Status.RUNNING, started_at__lt=cutoff)
    failed_ids = list(failed.values_list("pk", flat=True)) if worn_out else []
    model.objects.filter(pk__in=failed_ids).update(status=model.Status.FAILED, finished_at=now, error=error)
    requeued = []
    for run_id in list(stuck.filter(attempts__lt=max_attempts).values_list("pk", flat=True)):
        if model.objects.filter(pk=run_id, status=model.Status.RUNNING, started_at__lt=cutoff).update(
            status=model.Status.QUEUED, progress=0, started_at=None, heartbeat_at=None
        ):
            requeued.append(run_id)
            enqueue_on_commit(task, str(run_id))
    if requeued or failed_ids:
        logger.warning(
            "reaped %s whose worker stopped: %d requeued, %d failed",
            model._meta.verbose_name_plural,
            len(requeued),
            len(failed_ids),
        )
    return requeued, failed_ids


def reap_backtests(*, now: datetime | None = None) -> dict[str, int]:
    """Backtests `running` past the task's time limit plus a margin lost their worker: requeued once, then failed
    with the reason. Returns how many of each."""
    from .tasks import run_backtest_task

    now = now or timezone.now()
    requeued, failed = reap_runs(
        Backtest,
        cutoff=now - timedelta(seconds=BACKTEST_TIME_LIMIT_S + BACKTEST_REAP_MARGIN_S),
        max_attempts=BACKTEST_MAX_ATTEMPTS,
        error=(
            f"The worker running this backtest stopped {BACKTEST_MAX_ATTEMPTS} times before it finished: "
            "try a shorter range or the 1d timeframe."
        ),
        task=run_backtest_task,
        now=now,
    )
    _backtests_changed(requeued + failed)
    return {"requeued": len(requeued), "failed": len(failed)}


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
    # only the stretch stored at the timeframe's resolution: retention may have thinned the start since queueing
    covered = engine.covered_from(times, backtest.timeframe)
    prices = convert.to_floats([price for _, price in points[covered:]])
    bar_times, closes = engine.bars(times[covered:], prices, backtest.timeframe)
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
            "exit_reason": trade.exit_reason,
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
    _backtests_changed([backtest.pk])


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
                    "default": param.default if param.kind is int or param.default is None else str(param.default),
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

QUANTITY_PLACES = 8  # a paper order's quantity
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
        raise field_error("portfolio", "Choose one of your portfolios.")
    if strategy.archived_at is not None:
        raise field_error("portfolio", "This strategy has been deleted by its owner: it cannot be started again.")
    if PaperRun.objects.filter(portfolio=portfolio, coin=strategy.coin, status=PaperRun.Status.ACTIVE).exists():
        raise field_error("portfolio", f"A strategy already trades {strategy.coin_id} in this portfolio.")
    if portfolio.available_cash <= 0:
        raise field_error("portfolio", "This portfolio has no available cash to trade with.")
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
    with localcontext(CONTEXT):
        for fill in run.fills.select_related("order"):
            order = fill.order
            if order.status != Order.Status.FILLED:
                continue
            notional = pricing.notional(side=order.side, quantity=order.quantity, price=order.filled_price)
            if order.side == pricing.BUY:
                cash -= notional + order.fee
                quantity += order.quantity
            else:
                cash += notional - order.fee
                quantity -= order.quantity
    return cash, quantity


def _open_position(run) -> tuple[float, int] | None:
    """(average fill price, bar of the first buy) of the coins the run holds, from its own fills; None when flat.
    Sells leave the average as it is; selling out starts the next position afresh."""
    held, bought, paid, first_bar = Decimal(0), Decimal(0), Decimal(0), None
    with localcontext(CONTEXT):
        for fill in run.fills.select_related("order"):
            order = fill.order
            if order.status != Order.Status.FILLED:
                continue
            if order.side != pricing.BUY:
                held -= order.quantity
                continue
            if held <= 0:
                held, bought, paid, first_bar = Decimal(0), Decimal(0), Decimal(0), fill.bar_ms
            held += order.quantity
            bought += order.quantity
            paid += order.quantity * order.filled_price
        if held <= 0 or first_bar is None:
            return None
        return float(paid / bought), first_bar


def evaluate_paper_run(run, *, now: datetime | None = None) -> str | None:
    """Act on the newest bar's signal once: a market order through the portfolios service (same rules, fees,
    idempotency). Returns "buy", "sell" or None."""
    now = now or timezone.now()
    size = TIMEFRAMES[run.timeframe]
    params = validate(run.kind, run.params)
    position = _open_position(run) if engine.Exits.of(params).active else None  # a stop needs its entry
    since_ms = to_ms(now) - WARMUP_BARS * size
    if position is not None:
        since_ms = min(since_ms, position[1])  # every close since the entry, for the trailing stop's high
    times, closes = _bars_until(run.coin_id, run.timeframe, since=from_ms(since_ms))
    if len(closes) < 2:
        return None
    bar_ms = int(times[-1])
    if run.last_bar_ms is not None and bar_ms <= run.last_bar_ms:
        return None  # this bar was already acted on
    signal = engine.signal_on_last_bar(
        kind=run.kind, params=params, times=times, close=closes, since_ms=to_ms(run.started_at), position=position
    )
    if signal is None:
        PaperRun.objects.filter(pk=run.pk).update(last_bar_ms=bar_ms)
        return None
    cash, held = _run_book(run)
    if signal == pricing.BUY:
        budget = min(cash, run.portfolio.available_cash)
        if run.kind == "dca":
            budget = min(budget, Decimal(str(run.params["amount"])))
        quantity = pricing.max_buy_quantity(cash=budget, price=run.coin.quote.current_price, places=QUANTITY_PLACES)
    else:
        holding = Holding.objects.filter(portfolio=run.portfolio, coin=run.coin).first()
        quantity = min(held, holding.available_quantity if holding else Decimal(0))
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
    except DomainError as exc:  # refused (a stale price, say): the next sync tries this bar again
        _record_error(run, f"The {signal} order was refused: {exc.detail}", log=False)
        return None
    if run.last_error:
        PaperRun.objects.filter(pk=run.pk).update(last_error="", last_error_at=None)
    return signal


def _record_error(run: PaperRun, message: str, *, log: bool) -> None:
    """The reason on the run; logged when it is news (a run failing at every sync logs once, not every time)."""
    message = message[:2000]
    if log and message != run.last_error:
        logger.warning("paper run %s failed: %s", run.pk, message)
    PaperRun.objects.filter(pk=run.pk).update(last_error=message, last_error_at=timezone.now())


def evaluate_paper_runs(*, coin_ids: list[str] | None = None) -> int:
    """Every active run once, each in its own savepoint: one run's failure is recorded on it and never stops
    the others. Returns how many placed an order."""
    runs = PaperRun.objects.filter(status=PaperRun.Status.ACTIVE).select_related("owner", "portfolio", "coin__quote")
    if coin_ids is not None:
        runs = runs.filter(coin_id__in=coin_ids)
    acted = 0
    for run in runs:
        try:
            with transaction.atomic():
                acted += evaluate_paper_run(run) is not None
        except Exception as exc:  # one run's bug or bad data must not end the batch
            _record_error(run, f"{exc.__class__.__name__}: {exc}", log=True)
    return acted


def drift_report(run, *, now: datetime | None = None) -> dict:
    """The paper run against a backtest of the same strategy over the same period, side by side. The backtest is
    simulated once per newest price point and kept on the run: reading the report again costs no simulation."""
    now = now or (run.stopped_at or timezone.now())
    latest = (
        PricePoint.objects.filter(coin_id=run.coin_id, ts__lte=now).order_by("-ts").values_list("ts", "price").first()
    )
    latest_ms = to_ms(latest[0]) if latest else None
    if latest_ms is None or latest_ms != run.drift_point_ms:
        backtest = _drift_backtest(run, now=now)
        PaperRun.objects.filter(pk=run.pk).update(drift_backtest=backtest, drift_point_ms=latest_ms)
        run.drift_backtest, run.drift_point_ms = backtest, latest_ms
    backtest = run.drift_backtest
    cash, held = _run_book(run)
    quote = getattr(run.coin, "quote", None)
    if quote is not None:
        price = quote.current_price
    else:  # no quote (yet): value the coins at the newest stored price
        price = latest[1] if latest else Decimal(0)
    with localcontext(CONTEXT):
        paper_equity = cash + mul(held, price)
        paper_return = convert.to_number(float(paper_equity / run.capital - 1))
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
    return {
        "period": {"start": run.started_at, "end": now},
        "paper": {"return": paper_return, "equity": as_str(paper_equity), "fills": fills},
        "backtest": backtest,
        "return_difference": convert.to_number(paper_return - backtest["return"]) if backtest else None,
        "notes": (
            "Paper orders fill at the last synced price when the sync runs; the backtest fills at bar closes. "
            "Both pay the same fee; the backtest assumes no slippage."
        ),
    }


def _drift_backtest(run, *, now: datetime) -> dict | None:
    """The backtest half of the drift report (JSON-ready), or None while there are fewer than two bars to trade."""
    size = TIMEFRAMES[run.timeframe]
    times, closes = _bars_until(
        run.coin_id, run.timeframe, since=from_ms(to_ms(run.started_at) - WARMUP_BARS * size), until=now
    )
    start_ms = to_ms(run.started_at) // size * size
    trade_from = convert.index_at_or_after(times, start_ms) if len(times) else 0
    if len(times) - trade_from < 2:
        return None
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
    return {
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


DEMO_PAPER_STRATEGY = "ETH daily DCA"


def seed_demo_paper_run(*, trader) -> list[str]:
    """The demo portfolio traded on paper by a strategy of the demo trader's: 250 USD of ether a day, on hourly
    bars, so a fresh demo makes its first buy on the next hourly bar; once."""
    from market.models import Coin

    if Strategy.objects.filter(owner=trader, name=DEMO_PAPER_STRATEGY).exists():
        return []
    portfolio = Portfolio.objects.filter(owner=trader, name=portfolio_services.DEMO_PORTFOLIO).first()
    coin = Coin.objects.filter(pk="ethereum", quote__isnull=False).first()
    if portfolio is None or coin is None:
        return []
    try:
        with transaction.atomic():
            strategy = create_strategy(
                owner=trader,
                name=DEMO_PAPER_STRATEGY,
                kind="dca",
                params={"amount": 250, "every_days": 1},
                coin=coin,
                timeframe="1h",
                description="Buys 250 USD of ether every day, whatever the price.",
            )
            start_paper_run(strategy=strategy, user=trader, portfolio=portfolio)
    except DomainError:
        return []  # ether already traded there by another run, or no cash left: the portfolio stays as it is
    return [f"Demo paper run: {strategy.name} trades {portfolio.name}, its first buy on the next hourly bar."]
