"""Order placement and fills, transfers, snapshots, alerts: the only code that moves cash or coins.

Every write locks the portfolio row first (then its holding): two orders in one portfolio run one after
the other, and a fixed lock order cannot deadlock. Constraints in the database are the last line of defence.
"""

import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from functools import partial

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from cryptodesk.errors import Conflict, DomainError
from cryptodesk.money import CONTEXT, MAX_AMOUNT, PERCENT, mul, quantize
from cryptodesk.outbox import apply_async_on_commit, enqueue_on_commit
from market import selectors as market_selectors
from market.models import Coin, Quote

from . import pricing, signals
from .models import (
    Alert,
    CashTransfer,
    Holding,
    IdempotencyKey,
    Notification,
    Order,
    Portfolio,
    PortfolioSnapshot,
    Trade,
)

logger = logging.getLogger(__name__)


class OrderRefused(DomainError):
    slug = "order-refused"
    title = "Order refused"


class IdempotencyMismatch(DomainError):
    status = 422
    slug = "idempotency-key-reused"
    title = "Idempotency-Key reused with another request"


class NotFound(DomainError):
    status = 404
    slug = "not-found"
    title = "Not Found"


class InvalidIdempotencyKey(DomainError):
    slug = "invalid-idempotency-key"
    title = "Invalid Idempotency-Key"


IDEMPOTENCY_KEY_LENGTH = IdempotencyKey._meta.get_field("key").max_length
IDEMPOTENCY_KEY_CHARS = re.compile(r"[!-~]+(?: [!-~]+)*")


class FillRefused(DomainError):
    slug = "fill-refused"
    title = "Fill refused"


def fee_for(notional: Decimal) -> Decimal:
    """PAPER_FEE_BPS of the notional, rounded up: the desk never undercharges."""
    return pricing.fee(notional)


def _ensure_fits(values: dict[str, Decimal], *, field: str, error: type[DomainError] = OrderRefused) -> None:
    """Every amount this write would store stays below MAX_AMOUNT (what an AMOUNT column holds)."""
    for label, value in values.items():
        if not pricing.fits(value):
            raise error(
                f"This would make the {label} {abs(value).normalize(CONTEXT):f}, more than a portfolio can hold "
                f"(below {MAX_AMOUNT:f}).",
                field=field,
            )


def body_hash(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- portfolios and transfers ---------------------------------------------------------------------


PORTFOLIO_NAME_TAKEN = "You already have a portfolio with this name."
WATCHLIST_NAME_TAKEN = "You already have a watchlist with this name."


def _name_taken(qs, *, name: str, exclude_pk=None) -> bool:
    qs = qs.filter(name=name)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    return qs.exists()


def _save_unique_name(instance, *, taken, message: str, check: bool = True, **save_kwargs) -> None:
    """Save a row whose (owner, name) is unique: a twin request that wins the race is a 400 on `name`, not a 500."""
    if check and taken():
        raise DomainError(message, field="name")
    try:
        with transaction.atomic():  # a savepoint: the outer transaction survives the unique violation
            instance.save(**save_kwargs)
    except IntegrityError:
        if taken():
            raise DomainError(message, field="name") from None
        raise


@transaction.atomic
def create_portfolio(*, owner, name: str, starting_cash: Decimal, base_currency: str = "usd") -> Portfolio:
    portfolio = Portfolio(
        owner=owner, name=name, base_currency=base_currency, starting_cash=starting_cash, cash=starting_cash
    )
    _save_unique_name(
        portfolio,
        taken=partial(_name_taken, Portfolio.objects.filter(owner=owner), name=name),
        message=PORTFOLIO_NAME_TAKEN,
    )
    if starting_cash > 0:
        CashTransfer.objects.create(portfolio=portfolio, kind=CashTransfer.Kind.DEPOSIT, amount=starting_cash)
    _portfolio_changed(portfolio.pk)
    return portfolio


def _locked_portfolio(*, user, portfolio_id) -> Portfolio:
    """The user's own portfolio, row-locked for the rest of the transaction (operators do not trade for others)."""
    portfolio = Portfolio.objects.select_for_update().filter(pk=portfolio_id, owner=user).first()
    if portfolio is None:
        raise NotFound("Portfolio not found.", field="portfolio")
    return portfolio


@transaction.atomic
def transfer_cash(
    *,
    user,
    portfolio_id,
    kind: str,
    amount: Decimal,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> tuple[CashTransfer, bool]:
    """Deposit or withdraw. Returns (transfer, created): a replayed Idempotency-Key returns the original."""
    key_row = None
    if idempotency_key is not None:
        digest = body_hash({"transfer": str(portfolio_id), "kind": kind, "amount": amount})
        key_row, claimed = _claim_idempotency_key(user=user, key=idempotency_key, digest=digest)
        if not claimed:
            return key_row.transfer, False
    portfolio = _locked_portfolio(user=user, portfolio_id=portfolio_id)
    with localcontext(CONTEXT):
        if kind == CashTransfer.Kind.WITHDRAWAL:
            if amount > portfolio.available_cash:
                raise OrderRefused(
                    "You can withdraw at most {available:money} (cash not held by open orders).",
                    field="amount",
                    values={"available": portfolio.available_cash},
                )
            portfolio.cash -= amount
        else:
            portfolio.cash += amount
    _ensure_fits({"cash": portfolio.cash}, field="amount")
    portfolio.save(update_fields=["cash"])
    transfer = CashTransfer.objects.create(
        portfolio=portfolio, kind=kind, amount=amount, created_at=now or timezone.now()
    )
    if key_row is not None:
        key_row.transfer = transfer
        key_row.save(update_fields=["transfer"])
    _portfolio_changed(portfolio.pk)
    return transfer, True


@transaction.atomic
def rename_portfolio(*, portfolio: Portfolio, name: str) -> Portfolio:
    previous = portfolio.name
    portfolio.name = name
    try:
        _save_unique_name(
            portfolio,
            taken=partial(
                _name_taken, Portfolio.objects.filter(owner_id=portfolio.owner_id), name=name, exclude_pk=portfolio.pk
            ),
            message=PORTFOLIO_NAME_TAKEN,
            update_fields=["name"],
        )
    except DomainError:
        portfolio.name = previous
        raise
    return portfolio


@transaction.atomic
def delete_portfolio(*, portfolio: Portfolio) -> None:
    Trade.objects.filter(portfolio=portfolio).delete()  # trades protect their orders; both go with the portfolio
    portfolio.delete()


# --- orders ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fill:
    price: Decimal
    notional: Decimal
    fee: Decimal
    cash_delta: Decimal  # negative for buys
    realized_pnl: Decimal | None


def _quote(coin_id: str) -> Quote:
    quote = Quote.objects.select_related("coin").filter(coin_id=coin_id).first()
    if quote is None:
        raise OrderRefused("This coin has no price yet: it cannot be traded.", field="coin")
    return quote


def _holding(portfolio: Portfolio, coin_id: str, *, create: bool) -> Holding | None:
    holding = Holding.objects.select_for_update().filter(portfolio=portfolio, coin_id=coin_id).first()
    if holding is None and create:
        holding = Holding.objects.create(portfolio=portfolio, coin_id=coin_id)
    return holding


def _apply_buy(portfolio: Portfolio, holding: Holding, quantity: Decimal, price: Decimal) -> Fill:
    priced = pricing.buy_cost(quantity=quantity, price=price)
    with localcontext(CONTEXT):  # 80 digits: a (38,18) × (38,18) product is exact before it is rounded
        old_basis = holding.quantity * holding.average_cost
        holding.quantity += quantity
        holding.average_cost = quantize((old_basis + priced.total) / holding.quantity, rounding=ROUND_HALF_EVEN)
        portfolio.cash -= priced.total
    fill = Fill(price=price, notional=priced.notional, fee=priced.fee, cash_delta=-priced.total, realized_pnl=None)
    _ensure_fits_after(portfolio, holding, fill)
    return fill


def _apply_sell(portfolio: Portfolio, holding: Holding, quantity: Decimal, price: Decimal) -> Fill:
    priced = pricing.sell_proceeds(quantity=quantity, price=price)
    with localcontext(CONTEXT):
        realized = priced.total - mul(quantity, holding.average_cost)
        holding.quantity -= quantity
        holding.realized_pnl += realized
        if holding.quantity == 0:
            holding.average_cost = Decimal(0)
        portfolio.cash += priced.total
    fill = Fill(price=price, notional=priced.notional, fee=priced.fee, cash_delta=priced.total, realized_pnl=realized)
    _ensure_fits_after(portfolio, holding, fill)
    return fill


def _ensure_fits_after(portfolio: Portfolio, holding: Holding, fill: Fill) -> None:
    _ensure_fits(
        {
            "notional": fill.notional,
            "cash": portfolio.cash,
            "holding": holding.quantity,
            "average cost": holding.average_cost,
            "realized P&L": holding.realized_pnl,
        },
        field="quantity",
    )


def _record_fill(order: Order, fill: Fill, *, now: datetime, holding: Holding) -> Trade:
    """Book a fill (the caller saved the portfolio's cash): the holding, the order, its trade, a bought bracket."""
    holding.updated_at = now
    holding.save()
    order.status = Order.Status.FILLED
    order.filled_price = fill.price
    order.fee = fill.fee
    order.filled_at = now
    order.reserved = Decimal(0)
    order.save(update_fields=["status", "filled_price", "fee", "filled_at", "reserved"])
    trade = Trade.objects.create(
        order=order,
        portfolio_id=order.portfolio_id,
        coin_id=order.coin_id,
        side=order.side,
        quantity=order.quantity,
        price=fill.price,
        notional=fill.notional,
        fee=fill.fee,
        realized_pnl=fill.realized_pnl,
        executed_at=now,
    )
    if order.stop_loss_price is not None or order.take_profit_price is not None:
        _place_bracket(order, holding, now=now)
    _portfolio_changed(order.portfolio_id)
    return trade


def _place_bracket(parent: Order, holding: Holding, *, now: datetime) -> list[Order]:
    """The filled buy's stop loss and take profit: sells of what it bought, one-cancels-the-other, holding its
    coins once between them (whichever triggers first cancels the other and sells them)."""
    group = uuid.uuid4() if parent.stop_loss_price is not None and parent.take_profit_price is not None else None
    children = []
    for type, trigger in (
        (Order.Type.STOP, parent.stop_loss_price),
        (Order.Type.TAKE_PROFIT, parent.take_profit_price),
    ):
        if trigger is None:
            continue
        child = Order(
            portfolio_id=parent.portfolio_id,
            coin_id=parent.coin_id,
            side=Order.Side.SELL,
            type=type,
            quantity=parent.quantity,
            stop_price=trigger,
            parent=parent,
            oco_group=group,
            created_at=now,
        )
        if not children:  # the first holds the coins for both
            with localcontext(CONTEXT):
                holding.reserved_quantity += parent.quantity
            holding.save(update_fields=["reserved_quantity"])
            child.reserved = parent.quantity
        child.save()
        children.append(child)
    for child in children:
        signals.order_changed.send(sender=Order, order=child)
    return children


def _refuse_not_enough_cash(needed: Decimal, available: Decimal) -> OrderRefused:
    return OrderRefused(
        "Not enough cash: this order needs {needed:money} (fee included); {available:money} is available.",
        field="quantity",
        values={"needed": needed, "available": available},
    )


def _refuse_not_enough_coin(symbol: str, wanted: Decimal, holding: Holding | None) -> OrderRefused:
    held = holding.quantity if holding else Decimal(0)
    available = held - (holding.reserved_quantity if holding else 0)
    return OrderRefused(
        "You cannot sell {wanted:qty} {symbol}: you hold {held:qty}, {available:qty} of it available "
        "(open sell orders hold the rest).",
        field="quantity",
        values={"wanted": wanted, "symbol": symbol, "held": held, "available": available},
    )


def validate_idempotency_key(key: str) -> str:
    """1 to 200 printable ASCII characters (what the column holds and a header may carry)."""
    if not key or len(key) > IDEMPOTENCY_KEY_LENGTH or not IDEMPOTENCY_KEY_CHARS.fullmatch(key):
        raise InvalidIdempotencyKey(
            f"An Idempotency-Key is 1 to {IDEMPOTENCY_KEY_LENGTH} printable ASCII characters "
            "(letters, digits, punctuation, inner spaces).",
            field="Idempotency-Key",
        )
    return key


def _claim_idempotency_key(*, user, key: str, digest: str) -> tuple[IdempotencyKey, bool]:
    """Insert the key first: a concurrent twin waits on the unique index, then finds ours (claimed False)."""
    validate_idempotency_key(key)
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(owner=user, key=key, body_hash=digest), True
    except IntegrityError:
        existing = IdempotencyKey.objects.select_related("order", "transfer").get(owner=user, key=key)
        if existing.body_hash != digest:
            raise IdempotencyMismatch("This Idempotency-Key was already used with a different request.") from None
        return existing, False


@transaction.atomic
def place_order(
    *,
    user,
    portfolio_id,
    coin_id: str,
    side: str,
    type: str,
    quantity: Decimal,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    trail_percent: Decimal | None = None,
    trail_amount: Decimal | None = None,
    stop_loss_price: Decimal | None = None,
    take_profit_price: Decimal | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> tuple[Order, bool]:
    """Place (and for market orders, fill) an order. Returns (order, created): a replayed key returns the original.

    Protective orders (stop, stop limit, take profit, trailing stop) rest, holding what they would spend, until a
    price write triggers them (`trigger_orders`); a buy may carry a bracket, placed when it fills."""
    now = now or timezone.now()
    terms = {
        "limit_price": limit_price,
        "stop_price": stop_price,
        "trail_percent": trail_percent,
        "trail_amount": trail_amount,
        "stop_loss_price": stop_loss_price,
        "take_profit_price": take_profit_price,
    }
    key_row = None
    if idempotency_key is not None:
        body = {"portfolio": str(portfolio_id), "coin": coin_id, "side": side, "type": type, "quantity": quantity}
        # a protective term only when given: a key stored before they existed still replays
        body |= {"limit_price": limit_price} | {name: value for name, value in terms.items() if value is not None}
        key_row, claimed = _claim_idempotency_key(user=user, key=idempotency_key, digest=body_hash(body))
        if not claimed:
            return key_row.order, False
    portfolio = _locked_portfolio(user=user, portfolio_id=portfolio_id)
    quote = _quote(coin_id)
    terms = _order_terms(type=type, side=side, market_price=quote.current_price, **terms)
    order = Order(
        portfolio=portfolio, coin_id=coin_id, side=side, type=type, quantity=quantity, created_at=now, **terms
    )
    if type == Order.Type.MARKET:
        if market_selectors.is_stale(quote.last_updated, now=now) and not settings.PAPER_ALLOW_STALE_PRICES:
            raise OrderRefused(
                f"The last price of {coin_id} is older than {int(settings.MARKET_STALE_AFTER.total_seconds() // 60)} "
                "minutes: market orders wait for a fresh price (a limit order can be placed now).",
                field="coin",
            )
        holding = _holding(portfolio, coin_id, create=side == Order.Side.BUY)
        if side == Order.Side.BUY:
            needed = pricing.buy_cost(quantity=quantity, price=quote.current_price).total
            if needed > portfolio.available_cash:
                raise _refuse_not_enough_cash(needed, portfolio.available_cash)
            fill = _apply_buy(portfolio, holding, quantity, quote.current_price)
        else:
            if holding is None or quantity > holding.available_quantity:
                raise _refuse_not_enough_coin(quote.coin.symbol.upper(), quantity, holding)
            fill = _apply_sell(portfolio, holding, quantity, quote.current_price)
        portfolio.save(update_fields=["cash"])
        order.save()
        _record_fill(order, fill, now=now, holding=holding)
    else:
        # a resting order holds what its fill would take: a buy's cost at its limit (or trigger), a sell's coins
        price = order.limit_price if order.limit_price is not None else order.stop_price
        holding = _holding(portfolio, coin_id, create=False)
        _reserve(portfolio, holding, order, price=price, symbol=quote.coin.symbol.upper())
        order.save()
        if type == Order.Type.LIMIT:
            transaction.on_commit(partial(_fill_if_crossed, order.pk))  # a limit already through the market fills now
    if key_row is not None:
        key_row.order = order
        key_row.save(update_fields=["order"])
    signals.order_changed.send(sender=Order, order=order)
    return order, True


def _reserve(portfolio: Portfolio, holding: Holding | None, order: Order, *, price: Decimal, symbol: str) -> None:
    """Hold a resting order's cash (a buy, at `price` with its fee) or coins (a sell), after checking its fill at
    that price fits what the columns hold; a better price is checked again at the fill."""
    side, quantity = order.side, order.quantity
    priced = pricing.price_order(side=side, quantity=quantity, price=price)
    reserve = pricing.reservation(side=side, quantity=quantity, limit_price=price)
    held = holding.quantity if holding is not None else Decimal(0)
    with localcontext(CONTEXT):
        after = {"notional": priced.notional}
        if side == Order.Side.BUY:
            after["holding"] = held + quantity
        else:
            after["cash"] = portfolio.cash + priced.total
    _ensure_fits(after, field="quantity")
    if side == Order.Side.BUY:
        if reserve > portfolio.available_cash:
            raise _refuse_not_enough_cash(reserve, portfolio.available_cash)
        with localcontext(CONTEXT):
            portfolio.reserved_cash += reserve
        portfolio.save(update_fields=["reserved_cash"])
    else:
        if holding is None or quantity > holding.available_quantity:
            raise _refuse_not_enough_coin(symbol, quantity, holding)
        with localcontext(CONTEXT):
            holding.reserved_quantity += quantity
        holding.save(update_fields=["reserved_quantity"])
    order.reserved = reserve


# which terms each order type takes (all others must be absent)
TYPE_TERMS = {
    Order.Type.MARKET: set(),
    Order.Type.LIMIT: {"limit_price"},
    Order.Type.STOP: {"stop_price"},
    Order.Type.STOP_LIMIT: {"stop_price", "limit_price"},
    Order.Type.TAKE_PROFIT: {"stop_price"},
    Order.Type.TRAILING_STOP: {"trail_percent", "trail_amount"},
}
TERM_LABELS = {
    "limit_price": "a limit price",
    "stop_price": "a stop price",
    "trail_percent": "a trail percent",
    "trail_amount": "a trail amount",
}


def _order_terms(*, type: str, side: str, market_price: Decimal, **given) -> dict:
    """The order's price terms, checked against its type and the market; a trailing stop's first stop and peak."""
    label = Order.Type(type).label.lower()
    taken = TYPE_TERMS[type]
    for name in TERM_LABELS:
        if given[name] is not None and name not in taken:
            raise OrderRefused(f"A {label} order takes no {name.replace('_', ' ')}.", field=name)
    for name in taken - {"trail_percent", "trail_amount"}:
        if given[name] is None:
            raise OrderRefused(f"A {label} order needs {TERM_LABELS[name]}.", field=name)
    terms = {name: given[name] for name in TERM_LABELS}
    shown = f"{market_price.normalize():f}"
    if type == Order.Type.TAKE_PROFIT and side == Order.Side.BUY:
        raise OrderRefused("A take-profit order sells a position: use a limit buy to buy lower.", field="side")
    if type == Order.Type.TRAILING_STOP:
        percent, amount = given["trail_percent"], given["trail_amount"]
        if (percent is None) == (amount is None):
            raise OrderRefused(
                "A trailing stop needs a trail percent or a trail amount (one of them).", field="trail_percent"
            )
        if percent is not None and not 0 < percent < 100:
            raise OrderRefused("The trail percent is between 0 and 100.", field="trail_percent")
        if amount is not None and side == Order.Side.SELL and amount >= market_price:
            raise OrderRefused(f"The trail amount must be below the current price ({shown}).", field="trail_amount")
        terms["trail_peak"] = market_price
        terms["stop_price"] = pricing.trail_stop(
            side=side, peak=market_price, trail_percent=percent, trail_amount=amount
        )
        _ensure_fits({"stop price": terms["stop_price"]}, field="trail_amount")
    elif given["stop_price"] is not None and pricing.is_triggered(
        type=type, side=side, stop_price=given["stop_price"], market_price=market_price
    ):
        where = "above" if type == Order.Type.TAKE_PROFIT or side == Order.Side.BUY else "below"
        raise OrderRefused(
            f"The stop price of a {side} {label} order must be {where} the current price ({shown}): this one would "
            "trigger at once (a market or limit order trades now).",
            field="stop_price",
        )
    _check_bracket(type=type, side=side, market_price=market_price, terms=terms, **given)
    return terms


def _check_bracket(*, type, side, market_price, terms, stop_loss_price, take_profit_price, **_) -> None:
    terms["stop_loss_price"], terms["take_profit_price"] = stop_loss_price, take_profit_price
    if stop_loss_price is None and take_profit_price is None:
        return
    if side != Order.Side.BUY:
        field = "stop_loss_price" if stop_loss_price is not None else "take_profit_price"
        raise OrderRefused("A bracket (stop loss, take profit) protects a buy: a sell takes none.", field=field)
    entry = terms["limit_price"] or (terms["stop_price"] if type != Order.Type.TRAILING_STOP else None) or market_price
    shown = f"{entry.normalize():f}"
    if stop_loss_price is not None and stop_loss_price >= entry:
        raise OrderRefused(f"The stop loss must be below the entry price ({shown}).", field="stop_loss_price")
    if take_profit_price is not None and take_profit_price <= entry:
        raise OrderRefused(f"The take profit must be above the entry price ({shown}).", field="take_profit_price")


def _release_or_hand_over(portfolio: Portfolio, order: Order) -> None:
    """An order leaving the book gives back what it holds, unless an open one-cancels-the-other sibling still needs
    those coins: then the sibling holds them."""
    if order.oco_group is not None and order.reserved > 0:
        heir = (
            Order.objects.select_for_update()
            .filter(oco_group=order.oco_group, status=Order.Status.OPEN)
            .exclude(pk=order.pk)
            .first()
        )
        if heir is not None:
            heir.reserved, order.reserved = order.reserved, Decimal(0)
            heir.save(update_fields=["reserved"])
            return
    _release(portfolio, order)


def _release(portfolio: Portfolio, order: Order) -> None:
    if order.side == Order.Side.BUY:
        with localcontext(CONTEXT):
            portfolio.reserved_cash -= order.reserved
        portfolio.save(update_fields=["reserved_cash"])
    else:
        # in Python under the lock, not F(): SQLite would do this subtraction in floating point
        holding = _holding(portfolio, order.coin_id, create=False)
        with localcontext(CONTEXT):
            holding.reserved_quantity -= order.reserved
        holding.save(update_fields=["reserved_quantity"])


@transaction.atomic
def cancel_order(*, user, order_id) -> Order:
    order = Order.objects.filter(pk=order_id, portfolio__owner=user).select_related("portfolio").first()
    if order is None:
        raise NotFound("Order not found.")
    portfolio = _locked_portfolio(user=user, portfolio_id=order.portfolio_id)
    order.refresh_from_db()  # re-check under the lock: a fill may have won
    if order.status != Order.Status.OPEN:
        raise Conflict(f"This order is {order.status}: only open orders can be cancelled.")
    _release_or_hand_over(portfolio, order)
    order.status = Order.Status.CANCELLED
    order.cancelled_at = timezone.now()
    order.reserved = Decimal(0)
    order.save(update_fields=["status", "cancelled_at", "reserved"])
    signals.order_changed.send(sender=Order, order=order)
    return order


def _crossing(qs):
    """Open limit orders the market is through: limits, and stop limits their trigger made limits."""
    limits = Q(type=Order.Type.LIMIT) | Q(type=Order.Type.STOP_LIMIT, triggered_at__isnull=False)
    return qs.filter(limits, status=Order.Status.OPEN).filter(
        Q(side=Order.Side.BUY, coin__quote__current_price__lte=F("limit_price"))
        | Q(side=Order.Side.SELL, coin__quote__current_price__gte=F("limit_price"))
    )


# errors that belong to the order's own numbers: it is rejected with the reason; anything else leaves it open
ORDER_DATA_ERRORS = (DomainError, DataError, IntegrityError, ArithmeticError)
UNBOOKABLE = "This order could not be booked at the fill price (its amounts are out of range): it was rejected."


def _fill_if_crossed(order_id) -> bool:
    """Fill one open limit order if the market is through its limit; an unbookable fill rejects the order."""
    try:
        with transaction.atomic():  # a savepoint when called in a batch: a failure undoes this order only
            return _fill_crossed(order_id)
    except ORDER_DATA_ERRORS as exc:
        reason = exc.detail if isinstance(exc, DomainError) else UNBOOKABLE
        logger.warning("limit order %s rejected at fill: %s", order_id, reason, exc_info=exc)
        _reject(order_id, reason=reason)
        return False


def _fill_crossed(order_id) -> bool:
    order = _crossing(Order.objects.filter(pk=order_id)).select_related("portfolio").first()
    if order is None:
        return False
    portfolio = Portfolio.objects.select_for_update().get(pk=order.portfolio_id)
    order = Order.objects.select_for_update().get(pk=order_id)
    if order.status != Order.Status.OPEN:
        return False  # cancelled or filled meanwhile
    market = Quote.objects.get(coin_id=order.coin_id).current_price
    now = timezone.now()
    _release(portfolio, order)
    holding = _holding(portfolio, order.coin_id, create=order.side == Order.Side.BUY)
    price = pricing.limit_fill_price(side=order.side, limit_price=order.limit_price, market_price=market)
    apply = _apply_buy if order.side == Order.Side.BUY else _apply_sell
    try:
        fill = apply(portfolio, holding, order.quantity, price)
    except OrderRefused as exc:
        raise FillRefused(exc.detail, field=exc.field) from exc
    portfolio.save(update_fields=["cash", "reserved_cash"])
    _record_fill(order, fill, now=now, holding=holding)
    signals.order_changed.send(sender=Order, order=order)
    return True


def _reject(order_id, *, reason: str) -> None:
    """Reject an open order and release what it reserved, so its owner sees why it did not fill."""
    with transaction.atomic():
        portfolio_id = Order.objects.filter(pk=order_id).values_list("portfolio_id", flat=True).first()
        if portfolio_id is None:
            return
        portfolio = Portfolio.objects.select_for_update().get(pk=portfolio_id)
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.status != Order.Status.OPEN:
            return
        _release_or_hand_over(portfolio, order)
        order.status = Order.Status.REJECTED
        order.reject_reason = reason[: Order._meta.get_field("reject_reason").max_length]
        order.reserved = Decimal(0)
        order.save(update_fields=["status", "reject_reason", "reserved"])
        signals.order_changed.send(sender=Order, order=order)


def fill_limit_orders(*, coin_ids: list[str] | None = None) -> int:
    """Every open limit order the last prices crossed, each in its own savepoint: one bad order stops no other."""
    qs = _crossing(Order.objects.all())
    if coin_ids is not None:
        qs = qs.filter(coin_id__in=coin_ids)
    filled = 0
    for order_id in qs.order_by("created_at").values_list("pk", flat=True):
        try:
            filled += _fill_if_crossed(order_id)
        except DatabaseError:
            logger.exception("limit order %s not filled this time", order_id)  # transient: it stays open
    return filled


# --- protective orders: triggered by price writes -------------------------------------------------

PROTECTIVE_TYPES = (Order.Type.STOP, Order.Type.STOP_LIMIT, Order.Type.TAKE_PROFIT, Order.Type.TRAILING_STOP)


def trigger_orders(*, coin_ids: list[str] | None = None) -> int:
    """After a price write: move every trailing stop the price favoured, then trigger each protective order the
    price reached, each in its own savepoint (one bad order stops no other). Returns how many triggered.

    Statements per call do not grow with the open orders: one read of them with their prices, one update of the
    trailing stops that moved; only a triggered order costs its own (its fill)."""
    triggered = 0
    for order_id in _ratchet_and_find_due(coin_ids):
        try:
            triggered += _trigger_if_reached(order_id)
        except DatabaseError:
            logger.exception("protective order %s not triggered this time", order_id)  # transient: it stays open
    return triggered


def _ratchet_and_find_due(coin_ids: list[str] | None) -> list:
    waiting = Order.objects.filter(status=Order.Status.OPEN, type__in=PROTECTIVE_TYPES, triggered_at__isnull=True)
    if coin_ids is not None:
        waiting = waiting.filter(coin_id__in=coin_ids)
    due, moved = [], []
    with transaction.atomic():
        # the coins' rows, in a fixed order: two price writes at once move a trailing stop one after the other,
        # never from a stale peak
        locked = coin_ids if coin_ids is not None else waiting.values_list("coin_id", flat=True)
        list(Coin.objects.select_for_update().filter(pk__in=locked).order_by("pk").values_list("pk", flat=True))
        rows = (
            waiting.filter(coin__quote__isnull=False)
            .order_by("created_at")
            .values_list(
                "pk",
                "side",
                "type",
                "stop_price",
                "trail_percent",
                "trail_amount",
                "trail_peak",
                "coin__quote__current_price",
            )
        )
        for pk, side, type, stop, percent, amount, peak, price in rows:
            if type == Order.Type.TRAILING_STOP:
                best = pricing.trail_peak(side=side, peak=peak, market_price=price)
                if best != peak:
                    stop = pricing.trail_stop(side=side, peak=best, trail_percent=percent, trail_amount=amount)
                    moved.append((pk, best, stop))
            if pricing.is_triggered(type=type, side=side, stop_price=stop, market_price=price):
                due.append(pk)
        _move_trailing_stops(moved)
    return due


MOVES_PER_STATEMENT = 20_000  # 3 parameters each, under PostgreSQL's 65,535 per statement


def _move_trailing_stops(moved: list[tuple]) -> None:
    """Write each moved trailing stop's (id, peak, stop) in one statement: on PostgreSQL an UPDATE joined to a
    VALUES list (Django's bulk_update writes a CASE per row, quadratic in the rows); elsewhere bulk_update."""
    if not moved:
        return
    if connection.vendor != "postgresql":
        rows = [Order(pk=pk, trail_peak=peak, stop_price=stop) for pk, peak, stop in moved]
        Order.objects.bulk_update(rows, ["trail_peak", "stop_price"])
        return
    table = connection.ops.quote_name(Order._meta.db_table)
    for start in range(0, len(moved), MOVES_PER_STATEMENT):
        chunk = moved[start : start + MOVES_PER_STATEMENT]
        values = ", ".join(["(%s::uuid, %s::numeric, %s::numeric)"] * len(chunk))
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS o SET trail_peak = v.peak, stop_price = v.stop "  # noqa: S608 - no user text
                f"FROM (VALUES {values}) AS v(id, peak, stop) WHERE o.id = v.id",
                [value for row in chunk for value in row],
            )


def _trigger_if_reached(order_id) -> bool:
    try:
        with transaction.atomic():  # a savepoint when called in a batch: a failure undoes this order only
            return _trigger(order_id)
    except ORDER_DATA_ERRORS as exc:
        reason = exc.detail if isinstance(exc, DomainError) else UNBOOKABLE
        logger.warning("protective order %s rejected at its trigger: %s", order_id, reason, exc_info=exc)
        _reject(order_id, reason=reason)
        return False


def _trigger(order_id) -> bool:
    """Under the portfolio lock, with the price as it is now: a stop limit becomes a limit order; any other
    protective order fills at market, at this first price seen past its trigger (a gap fills beyond the stop),
    cancelling its one-cancels-the-other siblings."""
    portfolio_id = Order.objects.filter(pk=order_id).values_list("portfolio_id", flat=True).first()
    if portfolio_id is None:
        return False
    portfolio = Portfolio.objects.select_for_update().get(pk=portfolio_id)
    order = Order.objects.select_for_update().get(pk=order_id)
    if order.status != Order.Status.OPEN or order.triggered_at is not None:
        return False  # cancelled, filled or triggered meanwhile
    market = Quote.objects.get(coin_id=order.coin_id).current_price
    if not pricing.is_triggered(type=order.type, side=order.side, stop_price=order.stop_price, market_price=market):
        return False  # the price went back before this order's turn
    now = timezone.now()
    order.triggered_at = now
    order.save(update_fields=["triggered_at"])
    if order.type == Order.Type.STOP_LIMIT:
        signals.order_changed.send(sender=Order, order=order)
        transaction.on_commit(partial(_fill_if_crossed, order.pk))  # a limit the market is already through
        return True
    _cancel_siblings(portfolio, order, now=now)
    _release(portfolio, order)
    holding = _holding(portfolio, order.coin_id, create=order.side == Order.Side.BUY)
    if order.side == Order.Side.BUY:
        needed = pricing.buy_cost(quantity=order.quantity, price=market).total
        if needed > portfolio.available_cash:
            raise FillRefused(_refuse_not_enough_cash(needed, portfolio.available_cash).detail, field="quantity")
        fill = _apply_buy(portfolio, holding, order.quantity, market)
    else:
        if holding is None or order.quantity > holding.available_quantity:
            raise FillRefused("The coins this order was to sell are no longer held: it was rejected.", field="quantity")
        fill = _apply_sell(portfolio, holding, order.quantity, market)
    portfolio.save(update_fields=["cash", "reserved_cash"])
    _record_fill(order, fill, now=now, holding=holding)
    signals.order_changed.send(sender=Order, order=order)
    return True


def _cancel_siblings(portfolio: Portfolio, order: Order, *, now: datetime) -> None:
    if order.oco_group is None:
        return
    siblings = Order.objects.select_for_update().filter(oco_group=order.oco_group, status=Order.Status.OPEN)
    for sibling in siblings.exclude(pk=order.pk).order_by("pk"):
        _release(portfolio, sibling)
        sibling.status, sibling.cancelled_at, sibling.reserved = Order.Status.CANCELLED, now, Decimal(0)
        sibling.save(update_fields=["status", "cancelled_at", "reserved"])
        signals.order_changed.send(sender=Order, order=sibling)


# --- snapshots ------------------------------------------------------------------------------------


def _portfolio_changed(portfolio_id) -> None:
    """Its cash or holdings moved: today's snapshot is taken again and the change announced, both after commit."""
    from .tasks import take_snapshot_task

    enqueue_on_commit(take_snapshot_task, portfolio_id)
    signals.portfolio_changed.send(sender=Portfolio, portfolio_id=portfolio_id)


def take_snapshot(*, portfolio_id, now: datetime | None = None) -> PortfolioSnapshot | None:
    """Today's value (upserted): end of day once the day is over, refreshed after every trade and transfer."""
    now = now or timezone.now()
    with transaction.atomic():
        # under the portfolio lock: two fills' snapshots cannot land out of order
        portfolio = Portfolio.objects.select_for_update().filter(pk=portfolio_id).first()
        if portfolio is None:
            return None
        return _write_snapshot(portfolio, now)


def _write_snapshot(portfolio: Portfolio, now: datetime) -> PortfolioSnapshot:
    from .selectors import portfolio_valuation

    valuation = portfolio_valuation(portfolio)
    today = now.date()
    # summed in Python: SQLite would add decimals in floating point
    net_flow = Decimal(0)
    for kind, amount in CashTransfer.objects.filter(portfolio=portfolio, created_at__date=today).values_list(
        "kind", "amount"
    ):
        net_flow += amount if kind == CashTransfer.Kind.DEPOSIT else -amount
    snapshot, _ = PortfolioSnapshot.objects.update_or_create(
        portfolio=portfolio,
        date=today,
        defaults={
            "cash": valuation.cash,
            "market_value": valuation.market_value,
            "total_value": valuation.total_value,
            "net_flow": net_flow,
            "taken_at": now,
        },
    )
    return snapshot


def snapshot_all_portfolios(*, now: datetime | None = None) -> int:
    count = 0
    for portfolio_id in Portfolio.objects.values_list("pk", flat=True).iterator():
        take_snapshot(portfolio_id=portfolio_id, now=now)
        count += 1
    return count


# --- alerts and notifications ---------------------------------------------------------------------


def _alert_met(alert: Alert, quote: Quote) -> bool:
    if alert.condition == Alert.Condition.PRICE_ABOVE:
        return quote.current_price > alert.threshold
    if alert.condition == Alert.Condition.PRICE_BELOW:
        return quote.current_price < alert.threshold
    change = quote.price_change_percentage_24h
    if change is None:
        return False
    if alert.condition == Alert.Condition.CHANGE_24H_ABOVE:
        return change > alert.threshold
    return change < alert.threshold


def evaluate_alerts(*, coin_ids: list[str] | None = None) -> int:
    """Fire each active alert once per crossing (from not met to met); returns how many fired."""
    alerts = Alert.objects.filter(is_active=True).select_related("coin", "coin__quote", "owner")
    if coin_ids is not None:
        alerts = alerts.filter(coin_id__in=coin_ids)
    fired = 0
    for alert in alerts:
        try:
            fired += _evaluate_alert(alert)
        except Exception:
            # any failure undoes this alert's savepoint only: it is evaluated again on the next price update
            logger.exception("alert %s not evaluated", alert.pk)
    return fired


def _evaluate_alert(alert: Alert) -> bool:
    quote = getattr(alert.coin, "quote", None)
    if quote is None:
        return False
    met = _alert_met(alert, quote)
    if met == alert.is_met:
        return False
    with transaction.atomic():
        # claim the crossing: a concurrent evaluation that saw the same change updates nothing
        changed = Alert.objects.filter(pk=alert.pk, is_met=alert.is_met).update(
            is_met=met, last_triggered_at=timezone.now() if met else F("last_triggered_at")
        )
        if changed and met:
            notify_alert(alert, quote)
            return True
    return False


def notify_alert(alert: Alert, quote: Quote) -> Notification:
    label = alert.get_condition_display().lower()
    threshold = f"{alert.threshold.normalize():f}"
    title = f"{alert.coin.name}: {label} {threshold}"
    body = f"{alert.coin.name} ({alert.coin.symbol.upper()}) is at {quote.current_price.normalize():f} USD"
    if quote.price_change_percentage_24h is not None:
        body += f", {quote.price_change_percentage_24h.normalize():f} % over 24 h"
    notification = Notification.objects.create(
        user=alert.owner, kind="alert", title=title, body=body + ".", link=f"/markets/{alert.coin_id}/"
    )
    signals.notification_created.send(sender=Notification, notification=notification)
    if alert.notify_email and alert.owner.email_verified:
        from .tasks import send_alert_email_task

        # one task per message, after commit: a failing send never touches the notification or other alerts
        apply_async_on_commit(send_alert_email_task, args=[notification.pk], robust=True)
    return notification


def mark_notifications_read(*, user, notification_id=None) -> int:
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if notification_id is not None:
        qs = qs.filter(pk=notification_id)
    return qs.update(read_at=timezone.now())


# --- watchlists -----------------------------------------------------------------------------------


@transaction.atomic
def save_watchlist(*, owner, name: str, coin_ids: list[str], watchlist=None):
    from .models import Watchlist

    taken = partial(
        _name_taken,
        Watchlist.objects.filter(owner=owner),
        name=name,
        exclude_pk=watchlist.pk if watchlist is not None else None,
    )
    if taken():
        raise DomainError(WATCHLIST_NAME_TAKEN, field="name")
    known = set(Coin.objects.filter(pk__in=coin_ids).values_list("pk", flat=True))
    unknown = [coin for coin in coin_ids if coin not in known]
    if unknown:
        raise DomainError(f"Unknown coin ids: {', '.join(sorted(unknown))}.", field="coins")
    if watchlist is None:
        watchlist = Watchlist(owner=owner, name=name)
        _save_unique_name(watchlist, taken=taken, message=WATCHLIST_NAME_TAKEN, check=False)
    else:
        previous, watchlist.name = watchlist.name, name
        try:
            _save_unique_name(watchlist, taken=taken, message=WATCHLIST_NAME_TAKEN, check=False, update_fields=["name"])
        except DomainError:
            watchlist.name = previous
            raise
    watchlist.coins.set(coin_ids)
    return watchlist


# --- demo -----------------------------------------------------------------------------------------

DEMO_PORTFOLIO = "Demo portfolio"
DEMO_BUYS = [("bitcoin", Decimal("0.5")), ("ethereum", Decimal("4")), ("solana", Decimal("60"))]


def seed_demo_portfolio(*, user) -> Portfolio | None:
    """A funded portfolio with a few positions, a watchlist and an alert for the demo account; once."""
    from .models import Watchlist

    if Portfolio.objects.filter(owner=user).exists():
        return None
    portfolio = create_portfolio(owner=user, name=DEMO_PORTFOLIO, starting_cash=Decimal("100000"))
    for coin_id, quantity in DEMO_BUYS:
        if Quote.objects.filter(coin_id=coin_id).exists():
            try:
                place_order(
                    user=user, portfolio_id=portfolio.pk, coin_id=coin_id, side="buy", type="market", quantity=quantity
                )
            except OrderRefused:
                pass  # a stale price in a non-demo deployment: the portfolio stays in cash
    coins = list(
        Coin.objects.filter(pk__in=["bitcoin", "ethereum", "solana", "cardano", "dogecoin"]).values_list(
            "pk", flat=True
        )
    )
    if coins and not Watchlist.objects.filter(owner=user).exists():
        save_watchlist(owner=user, name="Majors", coin_ids=coins)
    quote = Quote.objects.filter(coin_id=DEMO_TRIGGER_COIN).first()
    if quote is not None:
        Alert.objects.get_or_create(
            owner=user,
            coin_id=DEMO_TRIGGER_COIN,
            condition=Alert.Condition.PRICE_ABOVE,
            defaults={"threshold": quantize(quote.current_price * (1 + DEMO_TRIGGER_BAND), places=2)},
        )
    return portfolio


DEMO_TRIGGER_COIN = "bitcoin"
DEMO_TRIGGER_BAND = Decimal("0.005")  # half a percent either way: a few minutes of the demo ticker reach it
DEMO_LIMIT_QUANTITY = Decimal("0.05")


def seed_demo_triggers(*, user) -> list[str]:
    """Price alerts and resting limit orders half a percent either side of the demo's bitcoin price, so a ticking
    demo fires an alert and fills an order within minutes. The alerts are ensured on every seed; the orders are
    placed once (a portfolio that has had a limit order keeps its history as it is)."""
    portfolio = Portfolio.objects.filter(owner=user, name=DEMO_PORTFOLIO).first()
    quote = Quote.objects.filter(coin_id=DEMO_TRIGGER_COIN).first()
    if portfolio is None or quote is None:
        return []
    above = quantize(quote.current_price * (1 + DEMO_TRIGGER_BAND), places=2)
    below = quantize(quote.current_price * (1 - DEMO_TRIGGER_BAND), places=2)
    added = []
    for condition, threshold in ((Alert.Condition.PRICE_ABOVE, above), (Alert.Condition.PRICE_BELOW, below)):
        alert, created = Alert.objects.get_or_create(
            owner=user, coin_id=DEMO_TRIGGER_COIN, condition=condition, defaults={"threshold": threshold}
        )
        if created:
            added.append(f"an alert {alert.get_condition_display().lower()} {threshold}")
    if not Order.objects.filter(portfolio=portfolio, type=Order.Type.LIMIT).exists():
        for side, limit in ((Order.Side.BUY, below), (Order.Side.SELL, above)):
            try:
                place_order(
                    user=user,
                    portfolio_id=portfolio.pk,
                    coin_id=DEMO_TRIGGER_COIN,
                    side=side,
                    type=Order.Type.LIMIT,
                    quantity=DEMO_LIMIT_QUANTITY,
                    limit_price=limit,
                )
            except DomainError:
                continue  # no bitcoin to sell (its demo buy was refused): the buy still rests
            added.append(f"a limit {side} of {DEMO_LIMIT_QUANTITY} at {limit}")
    if not added:
        return []
    return [f"Demo {DEMO_TRIGGER_COIN} triggers for {user.email}: {', '.join(added)}."]


def add_coin_to_watchlist(*, watchlist, coin_id: str) -> None:
    """One insert (ignored if present): two adds at once cannot lose each other."""
    watchlist.coins.add(coin_id)


def remove_coin_from_watchlist(*, watchlist, coin_id: str) -> None:
    watchlist.coins.remove(coin_id)


def delete_watchlist(*, watchlist) -> None:
    watchlist.delete()


# --- alerts ---------------------------------------------------------------------------------------


CHANGE_CONDITIONS = {Alert.Condition.CHANGE_24H_ABOVE, Alert.Condition.CHANGE_24H_BELOW}
PERCENT_PLACES = PERCENT["decimal_places"]
MAX_PERCENT = Decimal(10) ** (PERCENT["max_digits"] - PERCENT["decimal_places"])  # every PERCENT value is below it
MIN_CHANGE_PCT = Decimal(-100)  # a price cannot fall by more than all of it


def check_alert_threshold(*, condition: str, threshold: Decimal) -> None:
    """A 24 h change threshold is a percentage that fits the quotes' PERCENT column and can happen."""
    if condition not in CHANGE_CONDITIONS:
        return
    if threshold != quantize(threshold, places=PERCENT_PLACES):
        raise DomainError(f"A 24 h change has at most {PERCENT_PLACES} decimal places.", field="threshold")
    if threshold < MIN_CHANGE_PCT:
        raise DomainError("A 24 h change cannot be below -100 % (the whole price).", field="threshold")
    if threshold >= MAX_PERCENT:
        raise DomainError(f"A 24 h change must be below {MAX_PERCENT:,} %.", field="threshold")


def save_alert(*, owner, alert: Alert | None = None, **fields) -> Alert:
    """Create or change an alert; a changed alert starts afresh and fires on its next crossing."""
    alert = alert or Alert(owner=owner)
    check_alert_threshold(
        condition=fields.get("condition", alert.condition), threshold=fields.get("threshold", alert.threshold)
    )
    for name, value in fields.items():
        setattr(alert, name, value)
    alert.is_met = False
    alert.save()
    return alert


def set_alert_active(*, alert: Alert, active: bool) -> Alert:
    alert.is_active = active
    alert.is_met = False
    alert.save(update_fields=["is_active", "is_met"])
    return alert


def delete_alert(*, alert: Alert) -> None:
    alert.delete()
