"""Parameter optimisations: a grid of a strategy's parameters queued, claimed by one worker, each combination
backtested over the same bars (optionally walk-forward), the results kept compact on the row."""

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from cryptodesk.money import as_str
from cryptodesk.outbox import enqueue_on_commit
from cryptodesk.timestamps import from_ms, to_ms
from market.models import PricePoint

from . import selectors
from .engine import backtest as engine
from .engine import convert, optimize
from .engine.kinds import KINDS, TIMEFRAMES, ParamError, validate
from .errors import TooManyBacktests, field_error
from .models import Backtest, Optimization, Strategy
from .services import ACTIVE, _sample, _uncovered_range, clean_params, reap_runs

logger = logging.getLogger(__name__)

OPTIMIZATION_TIME_LIMIT_S = 900  # run_optimization_task's hard time limit
OPTIMIZATION_REAP_MARGIN_S = 120  # running this much past the limit: its worker is gone
OPTIMIZATION_MAX_ATTEMPTS = 2  # requeued once after a worker died, then failed
WALK_FORWARD_BARS_MAX = 100_000  # train or test window
WALK_FORWARD_WINDOWS_MAX = 50  # each window optimises the whole grid again
EQUITY_POINTS_MAX = 2500
DECIMAL_METRICS = frozenset({"fees_paid", "final_equity"})  # as a backtest stores them: decimal strings
OPTIMIZATION_ACTIVE = (Optimization.Status.QUEUED, Optimization.Status.RUNNING)


def _json_params(params: dict) -> dict:
    """Cleaned parameters as a strategy stores them: decimals as strings."""
    return {name: str(value) if isinstance(value, Decimal) else value for name, value in params.items()}


def metrics_json(figures: dict) -> dict:
    """metrics.compute's figures as a backtest stores them (strategies.services._run)."""
    return {
        name: as_str(convert.to_decimal(value)) if name in DECIMAL_METRICS else convert.to_number(value)
        for name, value in figures.items()
    }


def _grid_error(exc: ParamError):
    return field_error("grid" if exc.field == "grid" else f"grid.{exc.field}", exc.message)


def estimated_windows(*, start: datetime, end: datetime, timeframe: str, train_bars: int, test_bars: int) -> int:
    """Walk-forward windows a range can hold at most (every bar of it stored)."""
    bars = (to_ms(end) - to_ms(start)) // TIMEFRAMES[timeframe] + 1
    return max(0, (bars - train_bars - test_bars) // test_bars + 1)


@transaction.atomic
def queue_optimization(
    *,
    strategy: Strategy,
    user,
    start: datetime,
    end: datetime,
    grid: dict,
    objective: str,
    initial_capital: Decimal,
    fee_bps: Decimal,
    slippage_bps: Decimal,
    walk_forward: dict | None = None,
) -> Optimization:
    """Validate the grid against the strategy's kind (only declared parameters, each value by its declaration, at
    most OPTIMIZE_MAX_COMBINATIONS), then queue the run. Combinations the kind refuses (fast ≥ slow) are skipped
    and counted; a grid with none left is refused. Shares the per-user cap of backtests."""
    if end <= start:
        raise field_error("end", "The end must be after the start.")
    if objective not in optimize.OBJECTIVES:
        raise field_error("objective", f"Choose one of {', '.join(optimize.OBJECTIVES)}.")
    try:
        base = validate(strategy.kind, strategy.params)
    except ParamError as exc:  # saved before a rule changed: the strategy itself needs a fix first
        raise field_error("strategy", f"This strategy's parameters need a change first: {exc.message}") from None
    try:
        cleaned = optimize.clean_grid(strategy.kind, grid, max_combinations=settings.OPTIMIZE_MAX_COMBINATIONS)
    except ParamError as exc:
        raise _grid_error(exc) from None
    combos, skipped = optimize.combinations(strategy.kind, base, cleaned)
    if not combos:
        first = dict(zip(cleaned.names, (values[0] for values in cleaned.values), strict=True))
        try:
            validate(strategy.kind, {**base, **first})
        except ParamError as exc:
            raise field_error("grid", f"Every combination is refused: {exc.message}") from None
    train_bars = test_bars = None
    if walk_forward:
        train_bars, test_bars = int(walk_forward["train_bars"]), int(walk_forward["test_bars"])
        for name, value in (("train_bars", train_bars), ("test_bars", test_bars)):
            if not 2 <= value <= WALK_FORWARD_BARS_MAX:
                raise field_error(f"walk_forward.{name}", f"{name} must be between 2 and {WALK_FORWARD_BARS_MAX:,}.")
        windows = estimated_windows(
            start=start, end=end, timeframe=strategy.timeframe, train_bars=train_bars, test_bars=test_bars
        )
        if windows == 0:
            raise field_error(
                "walk_forward.train_bars",
                f"This range holds fewer than {train_bars + test_bars} {strategy.timeframe} bars: "
                "shorten the windows or widen the range.",
            )
        if windows > WALK_FORWARD_WINDOWS_MAX:
            raise field_error(
                "walk_forward.test_bars",
                f"These windows make {windows} walk-forward steps: at most {WALK_FORWARD_WINDOWS_MAX}. "
                "Use longer test windows.",
            )
    coverage = selectors.history_coverage(strategy.coin_id, strategy.timeframe, since=start)
    if coverage is not None and coverage.mixes_bar_sizes(end):
        raise _uncovered_range(strategy, coverage)
    # locks as queue_backtest takes them: the strategy (a delete waits), then the user (the shared cap)
    if not Strategy.objects.select_for_update().filter(pk=strategy.pk, archived_at__isnull=True).exists():
        raise field_error("strategy", "This strategy has been deleted by its owner: it cannot be run again.")
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    cap = settings.BACKTEST_MAX_ACTIVE_PER_USER
    if active_runs(user) >= cap:
        raise TooManyBacktests(
            f"You already have {cap} backtests or optimisations queued or running: wait for one to finish, "
            "then try again."
        )
    optimization = Optimization.objects.create(
        strategy=strategy,
        owner=user,
        kind=strategy.kind,
        params=clean_params(strategy.kind, strategy.params),
        grid={
            name: [_json_value(value) for value in values]
            for name, values in zip(cleaned.names, cleaned.values, strict=True)
        },
        objective=objective,
        coin=strategy.coin,
        timeframe=strategy.timeframe,
        start=start,
        end=end,
        initial_capital=initial_capital,
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
        train_bars=train_bars,
        test_bars=test_bars,
        combinations=cleaned.size,
        skipped=skipped,
    )
    from .tasks import run_optimization_task

    enqueue_on_commit(run_optimization_task, str(optimization.pk))
    return optimization


def _json_value(value):
    return str(value) if isinstance(value, Decimal) else value


def active_runs(user) -> int:
    """The user's backtests and optimisations queued or running: one cap for both."""
    return (
        Backtest.objects.filter(owner=user, status__in=ACTIVE).count()
        + Optimization.objects.filter(owner=user, status__in=OPTIMIZATION_ACTIVE).count()
    )


def _progress(optimization_id, percent: int) -> None:
    Optimization.objects.filter(pk=optimization_id, status=Optimization.Status.RUNNING).update(
        progress=min(max(percent, 1), 99), heartbeat_at=timezone.now()
    )


def run_optimization(optimization_id) -> Optimization | None:
    """Claim a queued optimisation and run it; a failure is recorded with its reason, never raised to the worker."""
    now = timezone.now()
    if not Optimization.objects.filter(pk=optimization_id, status=Optimization.Status.QUEUED).update(
        status=Optimization.Status.RUNNING, started_at=now, heartbeat_at=now, progress=1, attempts=F("attempts") + 1
    ):
        return None  # another worker has it, or it is done
    optimization = Optimization.objects.select_related("coin").get(pk=optimization_id)
    try:
        _run(optimization)
    except SoftTimeLimitExceeded:
        _fail(optimization.pk, "The optimisation took longer than its time limit: try fewer combinations.")
    except Exception as exc:  # the run fails with a reason a person can read
        _fail(optimization.pk, str(exc)[:2000] or exc.__class__.__name__)
    optimization.refresh_from_db()
    return optimization


def _fail(optimization_id, reason: str) -> None:
    Optimization.objects.filter(pk=optimization_id).update(
        status=Optimization.Status.FAILED, error=reason, finished_at=timezone.now()
    )


def reap_optimizations(*, now: datetime | None = None) -> dict[str, int]:
    """Optimisations `running` past the task's time limit plus a margin lost their worker: requeued once, then
    failed with the reason (as reap_backtests). Returns how many of each."""
    from .tasks import run_optimization_task

    now = now or timezone.now()
    requeued, failed = reap_runs(
        Optimization,
        cutoff=now - timedelta(seconds=OPTIMIZATION_TIME_LIMIT_S + OPTIMIZATION_REAP_MARGIN_S),
        max_attempts=OPTIMIZATION_MAX_ATTEMPTS,
        error=(
            f"The worker running this optimisation stopped {OPTIMIZATION_MAX_ATTEMPTS} times before it finished: "
            "try fewer combinations or a shorter range."
        ),
        task=run_optimization_task,
        now=now,
    )
    return {"requeued": len(requeued), "failed": len(failed)}


def _bars(optimization: Optimization):
    """The bars a backtest of the same range reads (strategies.services._run), point for point."""
    points = list(
        PricePoint.objects.filter(coin_id=optimization.coin_id, ts__gte=optimization.start, ts__lte=optimization.end)
        .order_by("ts")
        .values_list("ts", "price")
    )
    if len(points) < 2:
        raise ValueError(
            f"No stored {optimization.coin_id} history between {optimization.start:%Y-%m-%d} and "
            f"{optimization.end:%Y-%m-%d}: sync or backfill history first."
        )
    times = convert.to_times([to_ms(ts) for ts, _ in points])
    covered = engine.covered_from(times, optimization.timeframe)
    prices = convert.to_floats([price for _, price in points[covered:]])
    bar_times, closes = engine.bars(times[covered:], prices, optimization.timeframe)
    if len(closes) < 2:
        raise ValueError(
            f"Only {len(closes)} {optimization.timeframe} bar in this range: an optimisation needs at least two."
        )
    return bar_times, closes


def _last_ms(times, stop: int) -> int:
    return int(times[stop - 1])


def _run(optimization: Optimization) -> None:
    kind = optimization.kind
    base = validate(kind, optimization.params)
    grid = optimize.clean_grid(kind, optimization.grid, max_combinations=max(optimization.combinations, 1))
    combos, _ = optimize.combinations(kind, base, grid)
    times, closes = _bars(optimization)
    _progress(optimization.pk, 2)
    walk_forward = (optimization.train_bars, optimization.test_bars) if optimization.is_walk_forward else None
    if walk_forward:
        windows = len(optimize.walk_forward_windows(len(closes), *walk_forward))
        if windows > WALK_FORWARD_WINDOWS_MAX:
            raise ValueError(f"These windows make {windows} walk-forward steps: at most {WALK_FORWARD_WINDOWS_MAX}.")
    outcome = optimize.optimize(
        kind=kind,
        combos=combos,
        times=times,
        close=closes,
        capital=float(optimization.initial_capital),
        fee_bps=float(optimization.fee_bps),
        slippage_bps=float(optimization.slippage_bps),
        objective=optimization.objective,
        walk_forward=walk_forward,
        progress=lambda percent: _progress(optimization.pk, percent),
    )
    names = [param.name for param in KINDS[kind].params]
    metric_names = list(outcome.figures[0])
    rows = []
    for params, figures in zip(combos, outcome.figures, strict=True):
        stored = metrics_json(figures)
        rows.append([[_json_value(params.get(name)) for name in names], [stored[name] for name in metric_names]])
    best = None
    if outcome.best is not None:
        best = {
            "index": outcome.best,
            "params": _json_params(combos[outcome.best]),
            "metrics": metrics_json(outcome.figures[outcome.best]),
        }
    windows = [
        {
            "train_start": int(times[window.train[0]]),
            "train_end": _last_ms(times, window.train[1]),
            "test_start": int(times[window.test[0]]),
            "test_end": _last_ms(times, window.test[1]),
            "params": _json_params(combos[window.best]) if window.best is not None else None,
            "in_sample": metrics_json(window.in_sample) if window.in_sample is not None else None,
            "out_of_sample": metrics_json(window.out_of_sample),
        }
        for window in outcome.windows
    ]
    stitched = outcome.stitched
    oos_equity = []
    if stitched is not None:
        oos_equity = _sample(
            [
                [int(ms), as_str(convert.to_decimal(equity, places=8))]
                for ms, equity in zip(stitched.times, stitched.equity, strict=True)
            ],
            EQUITY_POINTS_MAX,
        )
    deflation = outcome.deflated_sharpe
    Optimization.objects.filter(pk=optimization.pk).update(
        status=Optimization.Status.SUCCEEDED,
        progress=100,
        data_start=from_ms(int(times[0])),
        data_end=from_ms(int(times[-1])),
        bars=len(closes),
        results={"params": names, "metrics": metric_names, "rows": rows},
        best=best,
        windows=windows,
        oos_metrics=metrics_json(outcome.out_of_sample) if outcome.out_of_sample is not None else None,
        oos_equity=oos_equity,
        deflated_sharpe=(
            {name: convert.to_number(value) for name, value in deflation.items()} if deflation is not None else None
        ),
        heartbeat_at=timezone.now(),
        finished_at=timezone.now(),
    )


def result_rows(optimization: Optimization) -> list[dict]:
    """The stored results as the API shows them: one {params, metrics} per combination, in grid order; an optional
    parameter that is off (null) is left out, as a strategy leaves it out."""
    results = optimization.results or {}
    names, metric_names = results.get("params", []), results.get("metrics", [])
    return [
        {
            "params": {name: value for name, value in zip(names, values, strict=True) if value is not None},
            "metrics": dict(zip(metric_names, figures, strict=True)),
        }
        for values, figures in results.get("rows", [])
    ]


# --- reads -------------------------------------------------------------------------------------------


def optimizations_for(user) -> QuerySet[Optimization]:
    """The API's optimisations: the user's own (operators read all)."""
    qs = Optimization.objects.all()
    return qs if user.is_staff else qs.filter(owner=user)


def api_optimizations(user, *, summary: bool = False, strategy_id: str | None = None) -> QuerySet[Optimization]:
    """Without the results, windows and equity for a `summary`, narrowed to one strategy id."""
    qs = optimizations_for(user)
    if summary:
        qs = qs.defer("results", "windows", "oos_equity")
    return qs.filter(strategy_id=strategy_id) if strategy_id and strategy_id.isdigit() else qs


def own_optimizations(user) -> QuerySet[Optimization]:
    """The user's own optimisations (for pages: operators' included), with strategy and coin."""
    return Optimization.objects.filter(owner=user).select_related("strategy", "coin")
