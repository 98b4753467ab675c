"""Strategy, backtest, optimisation and paper-run pages: the list, the form built from the kind declarations, a
strategy, a backtest, a grid of its parameters optimised, a strategy trading on paper with its drift report.

A strategy page shows the user's own strategies and everyone's published ones; anything else is a 404, for
operators too (they read the rest in the admin). Only the owner edits. A backtest and a paper run are their
runner's alone.
Changes are POSTs that call one service and redirect; a refusal is shown beside its field with status 400.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from uuid import uuid4

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from cryptodesk.errors import DomainError
from cryptodesk.forms import add_service_errors, submit_once
from cryptodesk.money import CONTEXT, quantize
from cryptodesk.templatetags.numbers import fraction_pct, money, tone
from cryptodesk.timestamps import from_ms

from . import optimizations, selectors, services
from .engine.kinds import KINDS, TIMEFRAMES
from .forms import BacktestForm, OptimizationForm, PaperRunForm, StrategyForm, described, param_label
from .models import Backtest, Optimization, PaperRun, Strategy

PUBLISHED = Strategy.Visibility.PUBLISHED
PUBLISHED_SHOWN = 100
BACKTESTS_SHOWN = 20
PAPER_RUNS_SHOWN = 20
QUEUED_HINT_AFTER_S = 20  # a backtest still queued this long suggests no worker is listening
MINUS = "\u2212"
QUANTITY_PLACES = 8  # enough to read a trade's size; the exact figure is in the API


# --- helpers ----------------------------------------------------------------------------------------


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def _strategy_url(strategy_id: int) -> str:
    return reverse("strategies:strategy-detail", args=[strategy_id])


def _with_last_return(rows: list[Strategy]) -> list[Strategy]:
    """Each row's last backtest's return, signed and toned for display."""
    for row in rows:
        last_return = _number((row.last_backtest.metrics if row.last_backtest else {}).get("total_return"))
        row.last_return, row.last_return_tone = _signed_pct(last_return), tone(last_return)
    return rows


def _number(value) -> Decimal | None:
    """A metric as an exact Decimal for display (metrics are JSON numbers or decimal strings, or null)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def _signed_pct(fraction: Decimal | None) -> str:
    text = fraction_pct(fraction)
    if fraction is None or text in {"0.00%", "-0.00%"}:
        return text.lstrip("-")
    return ("+" if fraction > 0 else MINUS) + text.lstrip("-")


# --- list -----------------------------------------------------------------------------------------


@login_required
@require_GET
def strategy_list_view(request: HttpRequest) -> HttpResponse:
    rows = selectors.strategy_list(request.user, published_limit=PUBLISHED_SHOWN)
    context = {
        "mine": _with_last_return(rows["mine"]),
        "published": _with_last_return(rows["published"]),
        "published_shown": PUBLISHED_SHOWN,
    }
    return render(request, "strategies/strategy_list.html", context)


# --- create and edit -----------------------------------------------------------------------------


def _form_page(request: HttpRequest, form: StrategyForm, *, status: int = 200) -> HttpResponse:
    """The whole form, or (for htmx, when the kind changes) only the chosen kind's parameter inputs."""
    if request.method == "GET" and _is_htmx(request):
        response = render(request, "strategies/_params.html", {"form": form})
    else:
        kinds = [{"label": kind.label, "about": described(kind.description)} for kind in KINDS.values()]
        context = {"form": form, "strategy": form.strategy, "kinds": kinds}
        response = render(request, "strategies/strategy_form.html", context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_http_methods(["GET", "POST"])
def strategy_create_view(request: HttpRequest) -> HttpResponse:
    """GET shows the form (`?kind=` picks the kind); the POST creates the strategy."""
    if request.method == "GET":
        return _form_page(request, StrategyForm(user=request.user, kind=request.GET.get("kind")))
    form = StrategyForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            strategy = services.create_strategy(owner=request.user, **form.service_arguments())
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request, f"Strategy “{strategy.name}” saved: run a backtest to see how it would have done."
            )
            return redirect(_strategy_url(strategy.pk))
    return _form_page(request, form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def strategy_edit_view(request: HttpRequest, strategy_id: int) -> HttpResponse:
    """Only the owner edits: anyone else's strategy, published or not, is a 404 here."""
    strategy = get_object_or_404(selectors.own_strategies(request.user), pk=strategy_id)
    if request.method == "GET":
        return _form_page(request, StrategyForm(user=request.user, strategy=strategy, kind=request.GET.get("kind")))
    form = StrategyForm(request.POST, user=request.user, strategy=strategy)
    if form.is_valid():
        try:
            services.update_strategy(strategy=strategy, user=request.user, **form.service_arguments())
        except DomainError as exc:
            add_service_errors(form, exc)
            strategy.refresh_from_db()  # the page shows what is stored, not the refused change
        else:
            messages.success(request, f"Strategy “{strategy.name}” updated.")
            return redirect(_strategy_url(strategy.pk))
    return _form_page(request, form, status=400)


@login_required
@require_POST
def strategy_delete_view(request: HttpRequest, strategy_id: int) -> HttpResponse:
    """Only the owner deletes; a strategy others still use is archived, their runs kept."""
    strategy = get_object_or_404(selectors.own_strategies(request.user), pk=strategy_id)
    if services.delete_strategy(strategy=strategy, user=request.user):
        messages.success(request, f"Strategy “{strategy.name}” deleted, with its backtests.")
    else:
        messages.success(
            request,
            f"Strategy “{strategy.name}” deleted. Others still have backtests, paper runs or copies of it: "
            "theirs are kept.",
        )
    return redirect("strategies:strategy-list")


@login_required
@require_POST
def strategy_clone_view(request: HttpRequest, strategy_id: int) -> HttpResponse:
    original = get_object_or_404(selectors.page_strategies(request.user), pk=strategy_id)
    copy = services.clone_strategy(strategy=original, user=request.user)
    messages.success(request, f"Cloned “{original.name}”: this private copy is yours to change and backtest.")
    return redirect(_strategy_url(copy.pk))


# --- a strategy ----------------------------------------------------------------------------------


def _param_rows(strategy: Strategy) -> list[dict]:
    kind = KINDS.get(strategy.kind)
    if kind is None:
        return [{"name": name, "label": name, "value": value, "help": ""} for name, value in strategy.params.items()]
    return [
        {
            "name": param.name,
            "label": param_label(param),
            "value": strategy.params.get(param.name, param.default),
            "help": param.description,
        }
        for param in kind.params
    ]


def _strategy_page(
    request: HttpRequest,
    strategy: Strategy,
    *,
    form: BacktestForm | None = None,
    paper_form: PaperRunForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    cloned_from = selectors.readable_clone_source(user, strategy)
    backtests = selectors.strategy_backtests(user, strategy, limit=BACKTESTS_SHOWN)
    for backtest in backtests:
        total_return = _number(backtest.metrics.get("total_return"))
        buy_and_hold = _number(backtest.metrics.get("buy_and_hold_return"))
        backtest.total_return, backtest.total_return_tone = _signed_pct(total_return), tone(total_return)
        backtest.buy_and_hold, backtest.buy_and_hold_tone = _signed_pct(buy_and_hold), tone(buy_and_hold)
    context = {
        "strategy": strategy,
        "kind_description": described(KINDS[strategy.kind].description) if strategy.kind in KINDS else "",
        "is_mine": strategy.owner_id == user.pk,
        "params": _param_rows(strategy),
        "cloned_from": cloned_from,
        "cloned_from_gone": strategy.cloned_from_id is not None and cloned_from is None,
        "backtests": backtests,
        "form": form or BacktestForm.for_strategy(strategy),
        "submission_token": uuid4().hex,  # the run form's: a second POST with it returns the first backtest
        "paper_form": paper_form or PaperRunForm(user=user),
        "paper_runs": selectors.strategy_paper_runs(user, strategy, limit=PAPER_RUNS_SHOWN),
    }
    return render(request, "strategies/strategy_detail.html", context, status=status)


@login_required
@require_GET
def strategy_detail_view(request: HttpRequest, strategy_id: int) -> HttpResponse:
    return _strategy_page(request, get_object_or_404(selectors.page_strategies(request.user), pk=strategy_id))


@login_required
@require_POST
def backtest_run_view(request: HttpRequest, strategy_id: int) -> HttpResponse:
    """Queue a backtest of a readable strategy and go to its page, which shows progress until it is done."""
    strategy = get_object_or_404(selectors.page_strategies(request.user), pk=strategy_id)
    form = BacktestForm(request.POST)
    if form.is_valid():

        def queue() -> str:
            backtest = services.queue_backtest(strategy=strategy, user=request.user, **form.service_arguments())
            return str(backtest.pk)

        try:
            backtest_id, created = submit_once(
                user_id=request.user.pk, scope="backtest", token=request.POST.get("submission_token", ""), create=queue
            )
        except DomainError as exc:
            add_service_errors(form, exc)
        except TimeoutError:
            messages.info(request, "That backtest is still being started: it shows under your backtests shortly.")
            return redirect(_strategy_url(strategy.pk))
        else:
            if not created:
                messages.info(request, "That backtest was already started: it was not run twice.")
            return redirect("strategies:backtest-detail", backtest_id=backtest_id)
    return _strategy_page(request, strategy, form=form, status=400)


# --- a backtest ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    key: str
    label: str
    value: str
    help: str
    tone: str = ""
    note: str = ""


def _ratio(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:.2f}".replace("-", MINUS)


def _metric_groups(backtest: Backtest) -> list[tuple[str, list[Card]]]:
    """The metrics as cards with a one-line explanation each, grouped: return, risk, trading."""
    m = {name: _number(value) for name, value in backtest.metrics.items()}
    trades = int(m.get("trades") or 0)
    duration = m.get("max_drawdown_duration_days")
    drawdown = m.get("max_drawdown")
    profit_factor = _ratio(m.get("profit_factor"))
    if m.get("profit_factor") is None and trades and m.get("win_rate") == 1:
        profit_factor = "No losses"
    fee = f"{backtest.fee_bps.normalize():f}"
    returns = [
        Card(
            "total_return",
            "Total return",
            _signed_pct(m.get("total_return")),
            "Final equity over the initial capital, fees and slippage included.",
            tone(m.get("total_return")),
        ),
        Card(
            "cagr",
            "CAGR",
            _signed_pct(m.get("cagr")),
            "The same result as a steady yearly growth rate (365-day years).",
            tone(m.get("cagr")),
        ),
        Card(
            "buy_and_hold_return",
            "Buy & hold",
            _signed_pct(m.get("buy_and_hold_return")),
            "Buying on the first bar and holding to the last, with no fees.",
            tone(m.get("buy_and_hold_return")),
        ),
        Card(
            "final_equity",
            "Final equity",
            money(m.get("final_equity")),
            f"Cash at the end, from {money(backtest.initial_capital)} at the start.",
        ),
    ]
    risk = [
        Card(
            "max_drawdown",
            "Max drawdown",
            MINUS + fraction_pct(drawdown) if drawdown else fraction_pct(drawdown),
            "The deepest fall of equity from a previous peak.",
            "down" if drawdown else "",
        ),
        Card(
            "max_drawdown_duration_days",
            "Longest drawdown",
            "—" if duration is None else f"{duration:.0f} day{'s' if round(duration) != 1 else ''}",
            "The longest stretch spent below a previous equity peak.",
        ),
        Card(
            "sharpe",
            "Sharpe ratio",
            _ratio(m.get("sharpe")),
            "Mean daily return over its volatility, × √365, risk-free 0. Above 1 is good.",
        ),
        Card(
            "sortino",
            "Sortino ratio",
            _ratio(m.get("sortino")),
            "Like Sharpe, but only the losing days count as risk.",
        ),
    ]
    trading = [
        Card("trades", "Trades", f"{trades:,}", "Closed round trips: a buy and the sell that closes it."),
        Card("win_rate", "Win rate", fraction_pct(m.get("win_rate"), 1), "Share of round trips that made money."),
        Card(
            "profit_factor",
            "Profit factor",
            profit_factor,
            "Gross profit over gross loss; above 1 makes money.",
        ),
        Card("exposure", "Exposure", fraction_pct(m.get("exposure"), 1), "Share of the bars spent holding the coin."),
        Card("fees_paid", "Fees paid", money(m.get("fees_paid")), f"{fee} bps on every buy and every sell."),
    ]
    return [("Return", returns), ("Risk", risk), ("Trading", trading)]


def _day(day: date) -> str:
    return f"{day:%b} {day.day}, {day.year}"


def _range_note(backtest: Backtest) -> str:
    """Why the bars used cover less than the range asked for (more than a bar missing at an end), else ""."""
    bar = timedelta(milliseconds=TIMEFRAMES.get(backtest.timeframe, TIMEFRAMES["1d"]))
    reasons = []
    if backtest.data_start and backtest.data_start - backtest.start > bar:
        reasons.append(f"stored history starts on {_day(_utc_date(backtest.data_start))}")
    if backtest.data_end and backtest.end - backtest.data_end > bar:
        reasons.append(f"the last stored bar is on {_day(_utc_date(backtest.data_end))}")
    if not reasons:
        return ""
    asked = f"{_day(_utc_date(backtest.start))} – {_day(_utc_date(backtest.end))}"
    return f"You asked for {asked}, but {' and '.join(reasons)}: the test ran on the bars available."


def _utc_date(moment: datetime | None) -> date | None:
    return moment.astimezone(UTC).date() if moment else None


def _quantity(value) -> Decimal | None:
    number = _number(value)
    return None if number is None else quantize(number, places=QUANTITY_PLACES)


def _trade_rows(backtest: Backtest) -> list[dict]:
    rows = []
    for trade in backtest.trades:
        pnl, ret = _number(trade.get("pnl")), _number(trade.get("return"))
        rows.append(
            {
                "entry_time": from_ms(int(trade["entry_time"])),
                "exit_time": from_ms(int(trade["exit_time"])),
                "entry_price": trade.get("entry_price"),
                "exit_price": trade.get("exit_price"),
                "quantity": _quantity(trade.get("quantity")),
                "pnl": pnl,
                "return": _signed_pct(ret),
                "tone": tone(pnl),
            }
        )
    return rows


def _backtest_context(backtest: Backtest, user) -> dict:
    done = backtest.status == Backtest.Status.SUCCEEDED
    requested = (_utc_date(backtest.start), _utc_date(backtest.end))
    used = (_utc_date(backtest.data_start), _utc_date(backtest.data_end))
    metrics = backtest.metrics if done else {}
    waited = (timezone.now() - backtest.created_at).total_seconds()
    strategy_return, market_return = _number(metrics.get("total_return")), _number(metrics.get("buy_and_hold_return"))
    edge = None
    if strategy_return is not None and market_return is not None:
        with localcontext(CONTEXT):
            edge = strategy_return - market_return
    return {
        "backtest": backtest,
        "strategy_readable": selectors.is_page_readable(user, backtest.strategy_id),
        "finished": backtest.status in {Backtest.Status.SUCCEEDED, Backtest.Status.FAILED},
        "requested": requested,
        "used": used,
        "range_note": _range_note(backtest) if done else "",
        "metric_groups": _metric_groups(backtest) if done else [],
        "total_return": _signed_pct(strategy_return),
        "total_return_tone": tone(strategy_return),
        "buy_and_hold": _signed_pct(market_return),
        "buy_and_hold_tone": tone(market_return),
        "beat_market": edge is not None and edge > 0,
        "edge": "—" if edge is None else _points(abs(edge)).removesuffix(" pp").lstrip("+"),
        "final_equity": money(_number(metrics.get("final_equity"))),
        "trade_rows": _trade_rows(backtest) if done else [],
        "params": [(name, value) for name, value in backtest.params.items()],
        "kind_label": KINDS[backtest.kind].label if backtest.kind in KINDS else backtest.kind,
        "stuck": backtest.status == Backtest.Status.QUEUED and waited > QUEUED_HINT_AFTER_S,
        "api_url": reverse("api:backtest-detail", args=[backtest.pk]),
    }


@login_required
@require_GET
def backtest_detail_view(request: HttpRequest, backtest_id) -> HttpResponse:
    """The page, or for htmx the results block alone: it polls itself until the run has finished."""
    backtest = get_object_or_404(selectors.own_backtests(request.user), pk=backtest_id)
    template = "strategies/_backtest_results.html" if _is_htmx(request) else "strategies/backtest_detail.html"
    response = render(request, template, _backtest_context(backtest, request.user))
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- paper trading ---------------------------------------------------------------------------------


@login_required
@require_POST
def paper_run_start_view(request: HttpRequest, strategy_id: int) -> HttpResponse:
    """Trade a readable strategy on one of the user's portfolios; a refusal is shown beside the portfolio."""
    strategy = get_object_or_404(selectors.page_strategies(request.user), pk=strategy_id)
    form = PaperRunForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            run = services.start_paper_run(
                strategy=strategy, user=request.user, portfolio=form.cleaned_data["portfolio"]
            )
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                f"“{strategy.name}” now trades on paper in {run.portfolio.name}: it acts after each market sync "
                "that brings a new bar.",
            )
            return redirect("strategies:paper-run-detail", run_id=run.pk)
    return _strategy_page(request, strategy, paper_form=form, status=400)


@login_required
@require_GET
def paper_run_list_view(request: HttpRequest) -> HttpResponse:
    runs = selectors.paper_runs_with_fill_counts(request.user)
    return render(request, "strategies/paper_run_list.html", {"runs": runs})


def _bar_time(moment: datetime, timeframe: str) -> str:
    """A bar's time in UTC, as precise as its timeframe."""
    moment = moment.astimezone(UTC)
    return _day(moment.date()) if timeframe == "1d" else f"{_day(moment.date())} {moment:%H:%M}"


def _points(difference: Decimal | None) -> str:
    if difference is None:
        return "—"
    with localcontext(CONTEXT):
        text = f"{abs(difference) * 100:.2f}"
    if text == "0.00":
        return "0.00 pp"
    return ("+" if difference > 0 else MINUS) + text + " pp"


def _drift_context(run: PaperRun) -> dict:
    """The drift report shaped for the page: both returns, both trade lists, and why they can differ."""
    try:
        report = services.drift_report(run)
    except ObjectDoesNotExist:  # the coin has lost its quote: nothing to value the paper holding at
        return {"drift": None}
    paper, backtest = report["paper"], report["backtest"]
    paper_return = _number(paper["return"])
    backtest_return = _number(backtest["return"]) if backtest else None
    difference = _number(report["return_difference"])
    fills = [
        {
            "time": fill["time"],
            "bar": _bar_time(from_ms(int(fill["bar_time"])), run.timeframe),
            "side": fill["side"],
            "quantity": _quantity(fill["quantity"]),
            "price": fill["price"],
            "fee": fill["fee"],
        }
        for fill in paper["fills"]
    ]
    trades = [
        {
            "entry_time": _bar_time(from_ms(int(trade["entry_time"])), run.timeframe),
            "exit_time": _bar_time(from_ms(int(trade["exit_time"])), run.timeframe),
            "entry_price": trade["entry_price"],
            "exit_price": trade["exit_price"],
            "quantity": _quantity(trade["quantity"]),
        }
        for trade in (backtest["trades"] if backtest else [])
    ]
    active = run.status == PaperRun.Status.ACTIVE
    bars = "daily" if run.timeframe == "1d" else "hourly"
    explanations = [report["notes"]]
    if not fills and active:
        explanations.append(
            "No fills yet: the strategy acts after the next market sync on a new bar, and only when its rule "
            "signals a buy or a sell on that bar."
        )
    if backtest is None:
        explanations.append(
            f"No backtest to compare with yet: it needs at least two {bars} bars since the run started, "
            "stored by the market sync."
        )
    else:
        explanations.append(
            "The backtest closes a position still open at the last bar's close; the paper run keeps holding it, "
            "valued at the latest synced price."
        )
    explanations.append(
        "An order refused at a sync (a stale price, say) is retried at the next one, so a paper fill can come a "
        "bar later than the backtest's trade."
    )
    return {
        "drift": report,
        "period": report["period"],
        "paper_return": _signed_pct(paper_return),
        "paper_return_tone": tone(paper_return),
        "paper_equity": money(_number(paper["equity"])),
        "backtest_return": _signed_pct(backtest_return),
        "backtest_return_tone": tone(backtest_return),
        "backtest_equity": money(_number(backtest["equity"])) if backtest else "—",
        "difference": _points(difference),
        "fills": fills,
        "backtest_trades": trades,
        "explanations": explanations,
    }


@login_required
@require_GET
def paper_run_detail_view(request: HttpRequest, run_id) -> HttpResponse:
    run = get_object_or_404(selectors.paper_runs_for(request.user), pk=run_id)
    context = {
        "run": run,
        "strategy_readable": selectors.is_page_readable(request.user, run.strategy_id),
        "kind_label": KINDS[run.kind].label if run.kind in KINDS else run.kind,
        "params": list(run.params.items()),
        "last_bar": _bar_time(from_ms(run.last_bar_ms), run.timeframe) if run.last_bar_ms is not None else None,
        **_drift_context(run),
    }
    return render(request, "strategies/paper_run_detail.html", context)


@login_required
@require_POST
def paper_run_stop_view(request: HttpRequest, run_id) -> HttpResponse:
    run = get_object_or_404(selectors.paper_runs_for(request.user), pk=run_id)
    if run.status == PaperRun.Status.ACTIVE:
        services.stop_paper_run(run=run)
        messages.success(request, "Paper run stopped: it places no more orders. What it bought stays in the portfolio.")
    return redirect("strategies:paper-run-detail", run_id=run.pk)


# --- optimisations ---------------------------------------------------------------------------------

OPTIMIZATIONS_SHOWN = 10
PERCENT_METRICS = frozenset({"total_return", "cagr", "max_drawdown", "win_rate", "exposure", "buy_and_hold_return"})
RESULT_COLUMNS = (
    ("total_return", "Return"),
    ("cagr", "CAGR"),
    ("sharpe", "Sharpe"),
    ("sortino", "Sortino"),
    ("max_drawdown", "Max drawdown"),
    ("win_rate", "Win rate"),
    ("profit_factor", "Profit factor"),
    ("trades", "Trades"),
)
OBJECTIVE_NAMES = {name: label for name, label in RESULT_COLUMNS}


def _metric_text(name: str, value) -> str:
    """One metric as the results table prints it: returns signed percentages, drawdowns negative, ratios to 2."""
    number = _number(value)
    if number is None:
        return "—"
    if name == "trades":
        return f"{int(number):,}"
    if name == "max_drawdown":
        return MINUS + fraction_pct(number) if number else fraction_pct(number)
    if name in {"total_return", "cagr"}:
        return _signed_pct(number)
    if name in PERCENT_METRICS:
        return fraction_pct(number, 1)
    return _ratio(number)


def _metric_cell(name: str, value) -> dict:
    number = _number(value)
    return {
        "text": _metric_text(name, value),
        "sort": "" if number is None else format(number, "f"),
        "tone": "down"
        if name == "max_drawdown" and number
        else (tone(number) if name in {"total_return", "cagr"} else ""),
    }


def _param_text(value) -> str:
    return "off" if value is None else str(value)


def _sort_key(value):
    number = _number(value)
    return (0, number, "") if number is not None else (1, Decimal(0), str(value))


def _heatmap(optimization, rows: list[dict], varied: list[str]) -> dict | None:
    """With exactly two parameters varied: the objective over their grid, rows the first, columns the second."""
    if len(varied) != 2:
        return None
    y_name, x_name = varied
    y_values = sorted({row["params"].get(y_name) for row in rows}, key=_sort_key)
    x_values = sorted({row["params"].get(x_name) for row in rows}, key=_sort_key)
    objective = optimization.objective
    found = {(row["params"].get(y_name), row["params"].get(x_name)): row["metrics"].get(objective) for row in rows}
    return {
        "x_name": x_name,
        "y_name": y_name,
        "x_values": [_param_text(value) for value in x_values],
        "rows": [
            {
                "value": _param_text(y),
                "cells": [
                    {**_metric_cell(objective, found.get((y, x))), "x": _param_text(x), "missing": (y, x) not in found}
                    for x in x_values
                ],
            }
            for y in y_values
        ],
    }


def _window_rows(optimization) -> list[dict]:
    objective = optimization.objective
    hourly = optimization.timeframe == "1h"
    rows = []
    for number, window in enumerate(optimization.windows, start=1):
        in_sample, out_of_sample = window.get("in_sample") or {}, window.get("out_of_sample") or {}
        rows.append(
            {
                "number": number,
                "train": _span(window["train_start"], window["train_end"], hourly=hourly),
                "test": _span(window["test_start"], window["test_end"], hourly=hourly),
                "params": ", ".join(f"{name} {value}" for name, value in (window.get("params") or {}).items())
                or "none: stayed in cash",
                "in_sample": _metric_cell(objective, in_sample.get(objective)) if in_sample else _metric_cell("", None),
                "out_of_sample": _metric_cell(objective, out_of_sample.get(objective)),
                "return": _metric_cell("total_return", out_of_sample.get("total_return")),
            }
        )
    return rows


def _span(first_ms: int, last_ms: int, *, hourly: bool) -> str:
    first, last = from_ms(int(first_ms)).astimezone(UTC), from_ms(int(last_ms)).astimezone(UTC)
    if hourly:
        return f"{_day(first.date())} {first:%H:%M} – {_day(last.date())} {last:%H:%M}"
    return f"{_day(first.date())} – {_day(last.date())}"


def _comparison(optimization) -> list[dict]:
    """The full range's best (in sample) beside the stitched test windows (out of sample), metric by metric."""
    in_sample = (optimization.best or {}).get("metrics") or {}
    out_of_sample = optimization.oos_metrics or {}
    return [
        {
            "key": name,
            "label": label,
            "in_sample": _metric_cell(name, in_sample.get(name)),
            "out_of_sample": _metric_cell(name, out_of_sample.get(name)),
        }
        for name, label in RESULT_COLUMNS
    ]


def _optimization_context(optimization, user) -> dict:
    done = optimization.status == Optimization.Status.SUCCEEDED
    grid = optimization.grid or {}
    varied = [name for name, values in grid.items() if len(values) > 1] or list(grid)
    rows = optimizations.result_rows(optimization) if done else []
    best_index = (optimization.best or {}).get("index")
    table = [
        {
            "index": index,
            "is_best": index == best_index,
            "params": [
                {
                    "name": name,
                    "text": _param_text(row["params"].get(name)),
                    "sort": _param_sort(row["params"].get(name)),
                }
                for name in varied
            ],
            "metrics": [
                {"label": label, **_metric_cell(name, row["metrics"].get(name))} for name, label in RESULT_COLUMNS
            ],
        }
        for index, row in enumerate(rows)
    ]
    deflation = optimization.deflated_sharpe or {}
    dsr = _number(deflation.get("value"))
    waited = (timezone.now() - optimization.created_at).total_seconds()
    return {
        "optimization": optimization,
        "strategy_readable": selectors.is_page_readable(user, optimization.strategy_id),
        "finished": optimization.status in {Optimization.Status.SUCCEEDED, Optimization.Status.FAILED},
        "kind_label": KINDS[optimization.kind].label if optimization.kind in KINDS else optimization.kind,
        "objective_label": OBJECTIVE_NAMES.get(optimization.objective, optimization.objective),
        "minimised": optimization.objective == "max_drawdown",
        "grid": [(name, ", ".join(_param_text(value) for value in values)) for name, values in grid.items()],
        "varied": varied,
        "columns": RESULT_COLUMNS,
        "table": table,
        "evaluated": len(rows),
        "best": optimization.best,
        "best_params": list(((optimization.best or {}).get("params") or {}).items()),
        "best_metrics": [
            {"label": label, **_metric_cell(name, ((optimization.best or {}).get("metrics") or {}).get(name))}
            for name, label in RESULT_COLUMNS
        ],
        "heatmap": _heatmap(optimization, rows, varied) if done else None,
        "windows": _window_rows(optimization) if done else [],
        "comparison": _comparison(optimization) if done and optimization.oos_metrics else [],
        "dsr": None if dsr is None else f"{dsr:.2f}",
        "dsr_percent": fraction_pct(dsr, 0) if dsr is not None else "—",
        "deflation": deflation,
        "deflation_sharpe": _ratio(_number(deflation.get("sharpe"))),
        "deflation_expected": _ratio(_number(deflation.get("expected_maximum_sharpe"))),
        "deflation_psr": fraction_pct(_number(deflation.get("probabilistic_sharpe")), 0),
        "deflation_skewness": _ratio(_number(deflation.get("skewness"))),
        "deflation_kurtosis": _ratio(_number(deflation.get("kurtosis"))),
        "stuck": optimization.status == Optimization.Status.QUEUED and waited > QUEUED_HINT_AFTER_S,
        "api_url": reverse("api:optimization-detail", args=[optimization.pk]),
    }


def _param_sort(value) -> str:
    number = _number(value)
    return "" if number is None else format(number, "f")


@login_required
@require_http_methods(["GET", "POST"])
def optimization_create_view(request: HttpRequest, strategy_id: int) -> HttpResponse:
    """The grid form for a readable strategy; the POST queues the run and goes to its page."""
    strategy = get_object_or_404(selectors.page_strategies(request.user), pk=strategy_id)
    status = 200
    if request.method == "GET":
        form = OptimizationForm.for_strategy(strategy)
    else:
        form = OptimizationForm(request.POST, strategy=strategy)
        if form.is_valid():

            def queue() -> str:
                optimization = optimizations.queue_optimization(
                    strategy=strategy, user=request.user, **form.service_arguments()
                )
                return str(optimization.pk)

            try:
                optimization_id, created = submit_once(
                    user_id=request.user.pk,
                    scope="optimization",
                    token=request.POST.get("submission_token", ""),
                    create=queue,
                )
            except DomainError as exc:
                add_service_errors(form, exc)
            except TimeoutError:
                messages.info(request, "That optimisation is still being started: it shows below shortly.")
                return redirect("strategies:optimization-create", strategy_id=strategy.pk)
            else:
                if not created:
                    messages.info(request, "That optimisation was already started: it was not run twice.")
                return redirect("strategies:optimization-detail", optimization_id=optimization_id)
        status = 400
    context = {
        "strategy": strategy,
        "form": form,
        "submission_token": uuid4().hex,
        "recent": optimizations.own_optimizations(request.user).filter(strategy=strategy)[:OPTIMIZATIONS_SHOWN],
        "kind_label": KINDS[strategy.kind].label if strategy.kind in KINDS else strategy.kind,
    }
    return render(request, "strategies/optimization_form.html", context, status=status)


@login_required
@require_GET
def optimization_detail_view(request: HttpRequest, optimization_id) -> HttpResponse:
    """The page, or for htmx the results block alone: it polls itself until the run has finished."""
    optimization = get_object_or_404(optimizations.own_optimizations(request.user), pk=optimization_id)
    template = "strategies/_optimization_results.html" if _is_htmx(request) else "strategies/optimization_detail.html"
    response = render(request, template, _optimization_context(optimization, request.user))
    patch_vary_headers(response, ["HX-Request"])
    return response
