"""Paper-trading pages: the dashboard, portfolios with their order ticket, watchlists, alerts, notifications.

Every page is the signed-in user's own desk: objects are looked up through the owner-scoping helper with
`write=True`, so another user's portfolio, order, watchlist or alert is a 404 (operators use the admin).
Changes are POSTs that call one service and redirect; a refusal is shown beside its field with status 400.
"""

import re
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from urllib.parse import urlencode
from uuid import uuid4

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, QuerySet, Window
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.exceptions import ValidationError

from accounts import selectors as account_selectors
from cryptodesk.api.scoping import owner_scoped
from cryptodesk.errors import DomainError
from cryptodesk.forms import add_service_errors
from cryptodesk.money import CONTEXT, as_str, quantize
from market import selectors as market_selectors
from market.models import Coin

from . import pricing, selectors, services
from .filters import TradeFilter
from .forms import (
    PRICE_CONDITIONS,
    AlertForm,
    OrderTicketForm,
    PortfolioForm,
    TransferForm,
    WatchCoinForm,
    WatchlistForm,
)
from .models import Alert, Order, Portfolio, Watchlist
from .templatetags.portfolio_tags import exact_money, fraction_pct, money, qty, share, signed_share

HUNDRED = Decimal(100)
RANGES = [("7", "7D"), ("30", "30D"), ("90", "90D"), ("365", "1Y"), ("all", "All")]
DEFAULT_WATCHLIST = "My watchlist"
MARKET_PANELS_TTL = 3600  # keyed by the market version as well: a sync makes the old entry unreachable
IDEMPOTENCY_KEY = re.compile(r"^[0-9a-f]{32}$")
NOTIFICATIONS_PER_PAGE = 30


# --- helpers ----------------------------------------------------------------------------------------


def _own(qs: QuerySet, user) -> QuerySet:
    """Pages show and change only the user's own rows, operators' included (they read others' in the admin)."""
    return owner_scoped(qs, user, write=True)


def _own_portfolio(request: HttpRequest, portfolio_id: int) -> Portfolio:
    return get_object_or_404(_own(selectors.portfolios_for(request.user), request.user), pk=portfolio_id)


def _back(request: HttpRequest, default: str) -> HttpResponse:
    """To the page the form came from (a path on this site only), else to `default`."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect(default)


def _portfolio_url(portfolio_id: int) -> str:
    return reverse("portfolios:portfolio-detail", args=[portfolio_id])


# --- dashboard -----------------------------------------------------------------------------------


@login_required
@require_GET
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """A constant number of queries whatever the data: see test_pages.test_dashboard_query_count_is_constant."""
    user = request.user
    valuations = selectors.valuations_for(user)
    totals = selectors.totals(valuations)
    unread = list(
        selectors.notifications_for(user)
        .filter(read_at__isnull=True)
        .annotate(unread_total=Window(Count("pk")))[:5]  # the count rides along with the newest five
    )
    context = {
        **market_selectors.dashboard_panels(),
        "session_count": account_selectors.active_sessions(user=user).count(),
        "valuations": valuations,
        "totals": totals,
        "positions": selectors.top_positions(valuations, totals.total_value, limit=6),
        "open_orders": selectors.open_orders(user, limit=8),
        "recent_trades": selectors.recent_trades(user, limit=8),
        "watchlists": selectors.watchlist_quotes(user),
        "unread": unread,
        "unread_notification_count": unread[0].unread_total if unread else 0,
        "ranges": RANGES,
    }
    return render(request, "dashboard.html", context)


@login_required
@require_GET
def dashboard_series_view(request: HttpRequest) -> JsonResponse:
    """The value of all the user's portfolios, rebuilt on the buckets of a portfolio's chart, for the dashboard
    chart: the shape of the portfolio history API (`interval_s`, `points` of `time` and `total_value`)."""
    key = request.GET.get("days", "30")
    if key not in selectors.PERFORMANCE_DAYS:
        return JsonResponse({"errors": {"days": [f"Use one of {', '.join(selectors.PERFORMANCE_DAYS)}."]}}, status=400)
    days = selectors.PERFORMANCE_DAYS[key]
    history = selectors.combined_history(selectors.valuations_for(request.user), days=days)
    twr = selectors.history_time_weighted_return(history)
    return JsonResponse(
        {
            "days": days,
            "interval_s": int(history.interval.total_seconds()),
            "time_weighted_return": as_str(twr) if twr is not None else None,
            "points": [
                {"time": point.time.isoformat().replace("+00:00", "Z"), "total_value": as_str(point.total_value)}
                for point in history.points
            ],
        }
    )


# --- portfolios --------------------------------------------------------------------------------


def _portfolio_list(request: HttpRequest, *, form: PortfolioForm | None = None, status: int = 200) -> HttpResponse:
    valuations = selectors.valuations_for(request.user)
    context = {"valuations": valuations, "totals": selectors.totals(valuations), "form": form or PortfolioForm()}
    return render(request, "portfolios/portfolio_list.html", context, status=status)


@login_required
@require_GET
def portfolio_list_view(request: HttpRequest) -> HttpResponse:
    return _portfolio_list(request)


@login_required
@require_POST
def portfolio_create_view(request: HttpRequest) -> HttpResponse:
    form = PortfolioForm(request.POST)
    if form.is_valid():
        try:
            portfolio = services.create_portfolio(owner=request.user, **form.cleaned_data)
        except (DomainError, ValidationError) as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Portfolio “{portfolio.name}” created with {money(portfolio.cash)} in cash.")
            return redirect(_portfolio_url(portfolio.pk))
    return _portfolio_list(request, form=form, status=400)


@dataclass(frozen=True)
class Problem:
    """Why the ticket cannot be placed as it stands, and the input it concerns."""

    field: str
    message: str


CENT = Decimal("0.01")


def _cents(value: Decimal) -> str:
    """Money in the preview: cents, and a non-zero amount below half a cent never shown as nothing."""
    if value and abs(value) < CENT / 2:
        return "< $0.01"
    return money(value)


@dataclass
class Estimate:
    """What the ticket would do, priced as the order service prices it."""

    side: str
    type: str
    coin: Coin
    quantity: Decimal
    price: Decimal
    notional: Decimal
    fee: Decimal
    total: Decimal  # cost of a buy (fee included) or proceeds of a sell (fee deducted)
    available_cash: Decimal
    cash_after: Decimal
    problems: list[Problem] = field(default_factory=list)
    market_price: Decimal | None = None
    trigger: Decimal | None = None  # a protective order's stop (a trailing stop's, where it would start)

    @property
    def trigger_distance(self) -> Decimal | None:
        """How far the trigger is from the price now, in percent of it (negative: below)."""
        if self.trigger is None or not self.market_price:
            return None
        with localcontext(CONTEXT):
            return quantize((self.trigger - self.market_price) / self.market_price * 100, places=2)

    @property
    def is_buy(self) -> bool:
        return self.side == Order.Side.BUY

    @property
    def shown(self) -> dict[str, str]:
        """The money figures as the preview prints them (the exact ones go in data attributes)."""
        return {name: _cents(getattr(self, name)) for name in ("notional", "fee", "total", "cash_after")}


def _estimate(portfolio: Portfolio, data: dict) -> Estimate:
    """Priced at what it would fill at: the market, its limit, or its trigger (a gap past a stop fills beyond)."""
    coin, side, kind, quantity = data["coin"], data["side"], data["type"], data["quantity"]
    quote = getattr(coin, "quote", None)
    trigger = data.get("stop_price")
    if kind == Order.Type.TRAILING_STOP:
        trigger = pricing.trail_stop(
            side=side,
            peak=quote.current_price,
            trail_percent=data.get("trail_percent"),
            trail_amount=data.get("trail_amount"),
        )
    price = data["limit_price"] or trigger or quote.current_price
    available = portfolio.available_cash
    problems = []
    priced = pricing.price_order(side=side, quantity=quantity, price=price)
    notional, fee, total = priced.notional, priced.fee, priced.total
    if side == Order.Side.BUY:
        with localcontext(CONTEXT):
            cash_after = available - total
        if total > available:
            problems.append(
                Problem(
                    "quantity",
                    f"Not enough cash: this order needs {money(total)} (fee included); {money(available)} is available.",
                )
            )
    else:
        with localcontext(CONTEXT):
            cash_after = available + total
        holding = portfolio.holdings.filter(coin=coin).first()
        free = holding.available_quantity if holding else Decimal(0)
        if quantity > free:
            problems.append(Problem("quantity", f"You have {qty(free)} {coin.symbol.upper()} available to sell."))
    if (
        kind == Order.Type.MARKET
        and market_selectors.is_stale(quote.last_updated)
        and not settings.PAPER_ALLOW_STALE_PRICES
    ):
        problems.append(
            Problem(
                "coin",
                "The last price is stale: market orders wait for the next sync (a limit order can be placed).",
            )
        )
    return Estimate(
        side,
        kind,
        coin,
        quantity,
        price,
        notional,
        fee,
        total,
        available,
        cash_after,
        problems,
        market_price=quote.current_price,
        trigger=trigger,
    )


def _preview_context(portfolio: Portfolio, data=None, *, shown_errors=()) -> dict:
    """The estimate for a complete ticket, else what is still wrong (a field left empty is not an error yet).

    `blocked` says the order cannot be placed as it stands, `blocked_reasons` why, once: a problem already
    shown beside its field (`shown_errors`, after a refused POST) is not repeated beside the button.
    """
    context = {"estimate": None, "blocked": False, "blocked_reasons": [], "fee_bps": settings.PAPER_FEE_BPS}
    if data is None:
        return context
    form = OrderTicketForm(data)  # afresh: a service's refusal added to a posted form is not a typo
    if form.is_valid():
        estimate = _estimate(portfolio, form.cleaned_data)
        context["estimate"] = estimate
        problems = estimate.problems
    else:
        problems = []
        for name, errors in form.errors.as_data().items():
            label = form.fields[name].label if name in form.fields else None
            for error in errors:
                if error.code != "required":
                    problems.extend(Problem(name, f"{label}: {m}" if label else m) for m in error.messages)
    context["blocked"] = bool(problems)
    reasons = [problem.message for problem in problems if problem.field not in shown_errors]
    if problems and not reasons:
        reasons = ["Correct the field marked above to place this order."]
    context["blocked_reasons"] = reasons
    return context


def _risk_rows(risk: selectors.Risk) -> list[dict]:
    """Each figure with its explanation, and for one that is missing (—) why, and when it will appear."""
    hhi = risk.herfindahl_index
    with localcontext(CONTEXT):
        equal = f" Yours matches {quantize(1 / hhi, places=1)} equal-sized positions." if hhi else ""
    rows = [
        {
            "key": "volatility",
            "label": "Volatility",
            "value": fraction_pct(risk.volatility),
            "help": "How much the value swings, annualised: the spread of daily returns × √365.",
        },
        {
            "key": "max_drawdown",
            "label": "Max drawdown",
            "value": fraction_pct(risk.max_drawdown),
            "help": "The deepest fall from a peak over the past year.",
        },
        {
            "key": "sharpe",
            "label": "Sharpe ratio",
            "value": f"{risk.sharpe:.2f}" if risk.sharpe is not None else "—",
            "help": "Return per unit of risk (risk-free rate 0); above 1 is good, below 0 loses money.",
        },
        {
            "key": "value_at_risk_95",
            "label": "1-day VaR (95%)",
            "value": money(risk.value_at_risk_95),
            "help": "On 19 days in 20 a day's loss should stay below this, judging by past days.",
        },
        {
            "key": "largest_holding_pct",
            "label": "Largest holding",
            "value": share(risk.largest_holding_pct),
            "help": "The biggest position's share of total value, cash included.",
        },
        {
            "key": "herfindahl_index",
            "label": "Herfindahl index",
            "value": f"{hhi:.3f}" if hhi is not None else "—",
            "help": "Concentration of the coins held: 1 is a single coin, 1/n is n equal coins." + equal,
        },
    ]
    for row in rows:
        row["missing"] = risk.missing.get(row["key"], "")
    return rows


MINUS = "\u2212"
BENCHMARK_DAYS = "30"  # the range the performance chart opens on (_range_switch.html)


def _ratio(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:.2f}".replace("-", MINUS)


def _benchmark_rows(against: selectors.Benchmark) -> list[dict]:
    """Alpha, beta, tracking error and information ratio against the coin, each with its explanation and, for one
    that is missing (—), why."""
    name = against.coin.name
    with localcontext(CONTEXT):
        alpha = signed_share(against.alpha * HUNDRED) if against.alpha is not None else "—"
    rows = [
        {
            "key": "alpha",
            "label": "Alpha",
            "value": alpha,
            "help": f"The return a year beyond what following {name} explains (beta × its return), from daily "
            "returns, risk-free rate 0.",
        },
        {
            "key": "beta",
            "label": "Beta",
            "value": _ratio(against.beta),
            "help": f"How far the portfolio moves when {name} moves 1%: 1 in step, 0 unrelated, below 0 against it.",
        },
        {
            "key": "tracking_error",
            "label": "Tracking error",
            "value": fraction_pct(against.tracking_error),
            "help": f"How far the daily returns stray from {name}'s, annualised: the spread of the differences × √365.",
        },
        {
            "key": "information_ratio",
            "label": "Information ratio",
            "value": _ratio(against.information_ratio),
            "help": f"The return a year beyond {name}'s per unit of tracking error; above 0.5 is good, below 0 trails it.",
        },
    ]
    for row in rows:
        row["missing"] = against.missing.get(row["key"], "")
    return rows


def _benchmark_context(request: HttpRequest, portfolio: Portfolio) -> dict:
    """The performance card against a coin with stored prices (`?benchmark=`, else bitcoin), over the range the chart
    opens on; an unknown coin falls back to bitcoin."""
    coins = list(selectors.benchmark_coins())
    wanted = request.GET.get("benchmark", "")
    coin_id = wanted if wanted in {coin.pk for coin in coins} else selectors.DEFAULT_BENCHMARK
    try:
        result = selectors.performance(
            portfolio, days=selectors.PERFORMANCE_DAYS[BENCHMARK_DAYS], benchmark=coin_id
        ).benchmark
    except DomainError:  # not even bitcoin on this desk yet
        return {"benchmark": None, "benchmark_coins": coins}
    twr = result.time_weighted_return
    return {
        "benchmark": result,
        "benchmark_coins": coins,
        "benchmark_rows": _benchmark_rows(result),
        "benchmark_twr": "—" if twr is None else signed_share(twr * HUNDRED),
        "benchmark_twr_missing": result.missing.get("benchmark.twr", ""),
    }


DONUT_SLICES = 7


def _donut(valuation: selectors.Valuation) -> list[dict]:
    """Slices of an SVG ring of circumference 100: the biggest coins, the rest, then cash."""
    total = valuation.total_value
    if total <= 0:
        return []
    rows = sorted(valuation.rows, key=lambda row: -row.market_value)
    slices = [
        (row.coin.symbol.upper(), row.coin.name, row.market_value, f"slice-{i}")
        for i, row in enumerate(rows[:DONUT_SLICES])
    ]
    rest = sum((row.market_value for row in rows[DONUT_SLICES:]), Decimal(0))
    if rest > 0:
        slices.append(("Other", f"{len(rows) - DONUT_SLICES} more coins", rest, "slice-other"))
    if valuation.cash > 0:
        slices.append(("Cash", "US dollars", valuation.cash, "slice-cash"))
    segments, start = [], Decimal(0)
    for label, title, value, css in slices:
        pct = value / total * HUNDRED
        if pct >= Decimal("0.05"):
            segments.append(
                {
                    "label": label,
                    "title": title,
                    "value": value,
                    "pct": pct,
                    "css": css,
                    "dasharray": f"{pct:.3f} {HUNDRED - pct:.3f}",
                    "dashoffset": f"{(Decimal(25) - start) % HUNDRED:.3f}",  # clockwise from 12 o'clock
                }
            )
        start += pct
    return segments


def _portfolio_page(
    request: HttpRequest,
    portfolio: Portfolio,
    *,
    ticket: OrderTicketForm | None = None,
    transfer: TransferForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    valuation = selectors.portfolio_valuation(portfolio)
    risk = selectors.risk(portfolio)
    if ticket is None:
        coin = request.GET.get("coin", "")
        ticket = OrderTicketForm(initial={"coin": coin} if coin else {})
    open_orders = list(
        selectors.orders_for_owner(user)
        .filter(portfolio=portfolio, status=Order.Status.OPEN)
        .select_related("coin", "coin__quote")
    )
    context = {
        "portfolio": portfolio,
        "valuation": valuation,
        "day_change_pct": (
            quantize(valuation.day_change / (valuation.total_value - valuation.day_change) * HUNDRED, places=4)
            if valuation.day_change is not None and valuation.total_value - valuation.day_change > 0
            else None
        ),
        "holdings": sorted(valuation.rows, key=lambda row: (-row.market_value, row.coin.pk)),
        "donut": _donut(valuation),
        "risk": risk,
        "risk_rows": _risk_rows(risk),
        "open_orders": open_orders,
        "protection": _protection(open_orders),
        "trades": list(selectors.trades_for(user).filter(portfolio=portfolio)[:20]),
        "ticket": ticket,
        "ticket_key": uuid4().hex,
        "transfer": transfer or TransferForm(),
        "ranges": RANGES,
        "csv_url": f"{reverse('api:trade-list')}?{urlencode({'format': 'csv', 'portfolio': portfolio.pk})}",
        **_preview_context(portfolio, ticket.data if ticket.is_bound else None, shown_errors=ticket.errors),
        **_benchmark_context(request, portfolio),
    }
    return render(request, "portfolios/portfolio_detail.html", context, status=status)


@login_required
@require_GET
def portfolio_detail_view(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    return _portfolio_page(request, _own_portfolio(request, portfolio_id))


@login_required
@require_GET
def order_preview_view(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    """The ticket's estimate, refreshed by htmx as the user types; nothing is written."""
    portfolio = _own_portfolio(request, portfolio_id)
    context = {**_preview_context(portfolio, request.GET), "swap_actions": True}
    return render(request, "portfolios/_ticket_preview.html", context)


def _protection(open_orders: list[Order]) -> dict[str, dict[str, Order]]:
    """Per coin, the open sell orders guarding the position: its nearest stop below, its nearest target above."""
    guards: dict[str, dict[str, Order]] = {}
    for order in open_orders:
        if order.side != Order.Side.SELL or order.stop_price is None:
            continue
        role = "target" if order.type == Order.Type.TAKE_PROFIT else "stop"
        held = guards.setdefault(order.coin_id, {}).get(role)
        if held is None or (
            order.stop_price < held.stop_price if role == "target" else order.stop_price > held.stop_price
        ):
            guards[order.coin_id][role] = order
    return guards


def _resting_message(order: Order) -> str:
    """A protective order placed: what triggers it."""
    what = f"{order.get_type_display()} {order.side} of {as_str(order.quantity)} {order.coin.symbol.upper()}"
    if order.type == Order.Type.TRAILING_STOP:
        trail = f"{as_str(order.trail_percent)} %" if order.trail_percent is not None else money(order.trail_amount)
        return f"{what} placed: it trails the best price by {trail}, now at {money(order.stop_price)}."
    return f"{what} placed: it triggers at {money(order.stop_price)}."


def _filled_message(order: Order) -> str:
    verb = "Bought" if order.side == Order.Side.BUY else "Sold"
    return (
        f"{verb} {as_str(order.quantity)} {order.coin.symbol.upper()} at {money(order.filled_price)} "
        f"(fee {money(order.fee)})."
    )


@login_required
@require_POST
def order_place_view(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    portfolio = _own_portfolio(request, portfolio_id)
    form = OrderTicketForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        key = request.POST.get("idempotency_key", "")
        try:
            order, created = services.place_order(
                user=request.user,
                portfolio_id=portfolio.pk,
                coin_id=data["coin"].pk,
                side=data["side"],
                type=data["type"],
                quantity=data["quantity"],
                **form.terms(),
                idempotency_key=f"ticket:{key}" if IDEMPOTENCY_KEY.match(key) else None,  # a double submit: one order
            )
        except (DomainError, ValidationError) as exc:
            add_service_errors(form, exc)
        else:
            order.refresh_from_db()  # a limit already through the market has filled on commit
            if not created:
                messages.info(request, "That order was already placed: it was not sent twice.")
            elif order.status == Order.Status.FILLED:
                messages.success(request, _filled_message(order))
            elif order.type != Order.Type.LIMIT:
                messages.success(request, _resting_message(order))
            else:
                messages.success(
                    request,
                    f"Limit {order.side} of {as_str(order.quantity)} {order.coin.symbol.upper()} at "
                    f"{money(order.limit_price)} placed: it fills when the market reaches it.",
                )
            return redirect(_portfolio_url(portfolio.pk))
    return _portfolio_page(request, portfolio, ticket=form, status=400)


@login_required
@require_POST
def order_cancel_view(request: HttpRequest, order_id) -> HttpResponse:
    order = get_object_or_404(selectors.orders_for_owner(request.user), pk=order_id)
    try:
        services.cancel_order(user=request.user, order_id=order.pk)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Order cancelled: what it held is available again.")
    return _back(request, _portfolio_url(order.portfolio_id))


@login_required
@require_POST
def transfer_view(request: HttpRequest, portfolio_id: int) -> HttpResponse:
    portfolio = _own_portfolio(request, portfolio_id)
    form = TransferForm(request.POST)
    if form.is_valid():
        try:
            transfer, _ = services.transfer_cash(user=request.user, portfolio_id=portfolio.pk, **form.cleaned_data)
        except (DomainError, ValidationError) as exc:
            add_service_errors(form, exc)
        else:
            done = "Deposited" if transfer.kind == transfer.Kind.DEPOSIT else "Withdrew"
            messages.success(request, f"{done} {money(transfer.amount)}.")
            return redirect(_portfolio_url(portfolio.pk))
    return _portfolio_page(request, portfolio, transfer=form, status=400)


@login_required
@require_GET
def trade_coin_view(request: HttpRequest, coin_id: str) -> HttpResponse:
    """ "Trade" on a coin: the order ticket of the user's first portfolio, with that coin chosen."""
    portfolio = _own(selectors.portfolios_for(request.user), request.user).order_by("created_at", "id").first()
    if portfolio is None:
        messages.info(request, "Create a paper portfolio first: then trade from its order ticket.")
        return redirect("portfolios:portfolio-list")
    return redirect(f"{_portfolio_url(portfolio.pk)}?{urlencode({'coin': coin_id})}#ticket")


# --- watchlists --------------------------------------------------------------------------------


def _own_watchlist(request: HttpRequest, watchlist_id: int) -> Watchlist:
    return get_object_or_404(_own(selectors.watchlists_for(request.user), request.user), pk=watchlist_id)


def _watchlists_page(
    request: HttpRequest,
    *,
    form: WatchlistForm | None = None,
    renaming: tuple[int, WatchlistForm] | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "watchlists": selectors.watchlists_with_quotes(request.user),
        "form": form or WatchlistForm(),
        "renaming_id": renaming[0] if renaming else None,
        "renaming_form": renaming[1] if renaming else None,
    }
    return render(request, "portfolios/watchlists.html", context, status=status)


@login_required
@require_GET
def watchlists_view(request: HttpRequest) -> HttpResponse:
    return _watchlists_page(request)


@login_required
@require_POST
def watchlist_create_view(request: HttpRequest) -> HttpResponse:
    form = WatchlistForm(request.POST)
    if form.is_valid():
        try:
            watchlist = services.save_watchlist(owner=request.user, name=form.cleaned_data["name"], coin_ids=[])
        except (DomainError, ValidationError) as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Watchlist “{watchlist.name}” created: add coins from the markets.")
            return redirect("portfolios:watchlists")
    return _watchlists_page(request, form=form, status=400)


def _coin_ids(watchlist: Watchlist) -> list[str]:
    return [coin.pk for coin in watchlist.coins.all()]


@login_required
@require_POST
def watchlist_rename_view(request: HttpRequest, watchlist_id: int) -> HttpResponse:
    watchlist = _own_watchlist(request, watchlist_id)
    form = WatchlistForm(request.POST)
    if form.is_valid():
        try:
            services.save_watchlist(
                owner=request.user, name=form.cleaned_data["name"], coin_ids=_coin_ids(watchlist), watchlist=watchlist
            )
        except (DomainError, ValidationError) as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Watchlist renamed to “{watchlist.name}”.")
            return redirect("portfolios:watchlists")
    return _watchlists_page(request, renaming=(watchlist.pk, form), status=400)


def _confirm_delete(request: HttpRequest, *, what: str, consequence: str, cancel_url: str) -> HttpResponse:
    """The question before a delete: a page of its own, or (for htmx) asked in place of the Delete button.

    Either way the answer is a plain POST with confirm=yes, so it works the same with or without JavaScript.
    """
    context = {"what": what, "consequence": consequence, "action": request.path, "cancel_url": cancel_url}
    if request.headers.get("HX-Request"):
        return render(request, "_partials/_confirm_delete.html", context)
    return render(request, "portfolios/confirm_delete.html", context)


def _confirmed(request: HttpRequest) -> bool:
    return request.method == "POST" and request.POST.get("confirm") == "yes"


@login_required
@require_http_methods(["GET", "POST"])
def watchlist_delete_view(request: HttpRequest, watchlist_id: int) -> HttpResponse:
    """Asks first (GET, or a POST without confirm=yes); deletes on the confirmed POST."""
    watchlist = _own_watchlist(request, watchlist_id)
    if not _confirmed(request):
        return _confirm_delete(
            request,
            what=f"the watchlist “{watchlist.name}”",
            consequence="Only the list goes: its coins, your alerts and your portfolios are not touched.",
            cancel_url=reverse("portfolios:watchlists"),
        )
    services.delete_watchlist(watchlist=watchlist)
    messages.success(request, f"Watchlist “{watchlist.name}” deleted.")
    return redirect("portfolios:watchlists")


@login_required
@require_POST
def watch_coin_view(request: HttpRequest) -> HttpResponse:
    """Add a coin to the chosen watchlist, else the first one, else a new "My watchlist"."""
    form = WatchCoinForm(request.POST)
    if not form.is_valid():
        raise Http404("No such coin")
    coin = get_object_or_404(market_selectors.coin_rows(), pk=form.cleaned_data["coin"])
    mine = _own(selectors.watchlists_for(request.user), request.user)
    if form.cleaned_data["watchlist"]:
        watchlist = get_object_or_404(mine, pk=form.cleaned_data["watchlist"])
    else:
        watchlist = mine.order_by("created_at", "id").first()
    if watchlist is None:
        watchlist = services.save_watchlist(owner=request.user, name=DEFAULT_WATCHLIST, coin_ids=[coin.pk])
    else:
        services.add_coin_to_watchlist(watchlist=watchlist, coin_id=coin.pk)
    if request.headers.get("HX-Request"):
        return render(request, "portfolios/_watch_star.html", {"coin": coin, "watched": True})
    messages.success(request, f"{coin.name} is on your watchlist “{watchlist.name}”.")
    return _back(request, reverse("portfolios:watchlists"))


@login_required
@require_POST
def watchlist_remove_coin_view(request: HttpRequest, watchlist_id: int, coin_id: str) -> HttpResponse:
    watchlist = _own_watchlist(request, watchlist_id)
    if coin_id in _coin_ids(watchlist):
        services.remove_coin_from_watchlist(watchlist=watchlist, coin_id=coin_id)
        messages.success(request, f"Removed from “{watchlist.name}”.")
    return _back(request, reverse("portfolios:watchlists"))


# --- alerts ------------------------------------------------------------------------------------


def _own_alert(request: HttpRequest, alert_id: int) -> Alert:
    return get_object_or_404(_own(selectors.alerts_for(request.user), request.user), pk=alert_id)


def describe_alert(alert: Alert) -> str:
    """ "Bitcoin price above $120.00", "Bitcoin 24 h change below −5%": an alert in words, numbers as printed."""
    what = {
        Alert.Condition.PRICE_ABOVE: "price above",
        Alert.Condition.PRICE_BELOW: "price below",
        Alert.Condition.CHANGE_24H_ABOVE: "24 h change above",
        Alert.Condition.CHANGE_24H_BELOW: "24 h change below",
    }.get(alert.condition, alert.condition)
    if alert.condition in PRICE_CONDITIONS:
        return f"{alert.coin.name} {what} {exact_money(alert.threshold)}"
    return f"{alert.coin.name} {what} {qty(alert.threshold)}%"


def _alerts_page(request: HttpRequest, *, form: AlertForm | None = None, status: int = 200) -> HttpResponse:
    if form is None:
        coin = request.GET.get("coin", "")
        form = AlertForm(initial={"coin": coin} if coin else {})
    alerts = _own(selectors.alerts_for(request.user), request.user).select_related("coin__quote")
    return render(request, "portfolios/alerts.html", {"alerts": alerts, "form": form}, status=status)


@login_required
@require_GET
def alerts_view(request: HttpRequest) -> HttpResponse:
    return _alerts_page(request)


@login_required
@require_POST
def alert_create_view(request: HttpRequest) -> HttpResponse:
    form = AlertForm(request.POST)
    if form.is_valid():
        try:
            alert = services.save_alert(owner=request.user, **form.service_arguments())
        except DomainError as exc:
            add_service_errors(form, exc, fields={"threshold": form.threshold_field})
        else:
            messages.success(request, f"Alert set: {alert.coin.name} {alert.get_condition_display().lower()}.")
            return redirect("portfolios:alerts")
    return _alerts_page(request, form=form, status=400)


@login_required
@require_POST
def alert_toggle_view(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = _own_alert(request, alert_id)
    alert = services.set_alert_active(alert=alert, active=not alert.is_active)
    messages.success(request, f"Alert {'armed' if alert.is_active else 'paused'}.")
    return redirect("portfolios:alerts")


@login_required
@require_http_methods(["GET", "POST"])
def alert_delete_view(request: HttpRequest, alert_id: int) -> HttpResponse:
    """Asks first (GET, or a POST without confirm=yes); deletes on the confirmed POST."""
    alert = _own_alert(request, alert_id)
    if not _confirmed(request):
        return _confirm_delete(
            request,
            what=f"the alert “{describe_alert(alert)}”",
            consequence="Its past notifications stay; pausing it instead keeps the alert for later.",
            cancel_url=reverse("portfolios:alerts"),
        )
    services.delete_alert(alert=alert)
    messages.success(request, "Alert deleted.")
    return redirect("portfolios:alerts")


# --- notifications -----------------------------------------------------------------------------


@login_required
@require_GET
def notifications_view(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.notifications_for(request.user), NOTIFICATIONS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "portfolios/notifications.html", {"page": page})


@login_required
@require_POST
def notification_read_view(request: HttpRequest, notification_id: int) -> HttpResponse:
    notification = get_object_or_404(selectors.notifications_for(request.user), pk=notification_id)
    services.mark_notifications_read(user=request.user, notification_id=notification.pk)
    return _back(request, reverse("portfolios:notifications"))


@login_required
@require_POST
def notifications_read_all_view(request: HttpRequest) -> HttpResponse:
    count = services.mark_notifications_read(user=request.user)
    messages.success(request, f"Marked {count} notification{'s' if count != 1 else ''} as read.")
    return _back(request, reverse("portfolios:notifications"))


# --- trades ---------------------------------------------------------------------------------------

TRADES_PER_PAGE = 50


@login_required
@require_GET
def trades_view(request: HttpRequest) -> HttpResponse:
    """Every trade of the user's portfolios, filtered like the API (same FilterSet), with a CSV of the same view."""
    trades = selectors.trades_for_owner(request.user)
    filterset = TradeFilter(request.GET, queryset=trades)
    rows = filterset.qs if filterset.is_valid() else trades.none()
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "filterset": filterset,
        "page": Paginator(rows, TRADES_PER_PAGE).get_page(request.GET.get("page")),
        "portfolios": _own(selectors.portfolios_for(request.user), request.user),
        "query": query.urlencode(),
        "csv_url": f"/api/v1/trades/?{urlencode({**query.dict(), 'format': 'csv'})}",
    }
    return render(request, "portfolios/trades.html", context)
