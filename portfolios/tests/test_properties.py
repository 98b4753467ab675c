"""Property test: random trading sessions against a small reference model kept by the test itself."""

import itertools
from decimal import ROUND_DOWN, ROUND_UP, Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from accounts.models import User
from market.models import Quote
from portfolios import services
from portfolios.models import Holding, Order, Portfolio

from .conftest import set_price

EXAMPLES = 60
Q18 = Decimal(1).scaleb(-18)
_users = itertools.count()

quantities = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("40"), places=4)
# prices move and limits sit within ±25 % of the current price, so limit orders really do cross
factors = st.decimals(min_value=Decimal("0.75"), max_value=Decimal("1.25"), places=2)
amounts = st.decimals(min_value=Decimal("1"), max_value=Decimal("5000"), places=2)


def fee(notional: Decimal) -> Decimal:
    return (notional * Decimal(10) / Decimal(10_000)).quantize(Q18, rounding=ROUND_UP)


class Reference:
    """What the desk should hold, computed independently of the services."""

    def __init__(self, cash: Decimal):
        self.cash, self.reserved_cash = cash, Decimal(0)
        self.quantity, self.reserved_quantity = Decimal(0), Decimal(0)
        self.transfers = cash
        self.open: dict[str, tuple[str, Decimal, Decimal, Decimal]] = {}  # id → side, quantity, limit, reserved

    def buy_cost(self, quantity: Decimal, price: Decimal) -> Decimal:
        notional = (quantity * price).quantize(Q18, rounding=ROUND_UP)
        return notional + fee(notional)

    def sell_proceeds(self, quantity: Decimal, price: Decimal) -> Decimal:
        notional = (quantity * price).quantize(Q18, rounding=ROUND_DOWN)
        return notional - fee(notional)


class TradingSession(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.user = User.objects.create_user(f"prop{next(_users)}@example.com", "a-long-enough-pass-1")
        self.price = Decimal("100")
        set_price("bitcoin", "100")
        self.portfolio = services.create_portfolio(owner=self.user, name="P", starting_cash=Decimal("10000"))
        self.model = Reference(Decimal("10000"))

    def _place(self, **kwargs):
        try:
            order, _ = services.place_order(user=self.user, portfolio_id=self.portfolio.pk, coin_id="bitcoin", **kwargs)
        except services.OrderRefused:
            return None
        return order

    @rule(amount=amounts)
    def deposit(self, amount):
        services.transfer_cash(user=self.user, portfolio_id=self.portfolio.pk, kind="deposit", amount=amount)
        self.model.cash += amount
        self.model.transfers += amount

    @rule(amount=amounts)
    def withdraw(self, amount):
        allowed = amount <= self.model.cash - self.model.reserved_cash
        try:
            services.transfer_cash(user=self.user, portfolio_id=self.portfolio.pk, kind="withdrawal", amount=amount)
        except services.OrderRefused:
            assert not allowed
            return
        assert allowed
        self.model.cash -= amount
        self.model.transfers -= amount

    @rule(quantity=quantities)
    def market_buy(self, quantity):
        cost = self.model.buy_cost(quantity, self.price)
        order = self._place(side="buy", type="market", quantity=quantity)
        assert (order is not None) == (cost <= self.model.cash - self.model.reserved_cash)
        if order:
            self.model.cash -= cost
            self.model.quantity += quantity

    @rule(quantity=quantities)
    def market_sell(self, quantity):
        order = self._place(side="sell", type="market", quantity=quantity)
        assert (order is not None) == (quantity <= self.model.quantity - self.model.reserved_quantity)
        if order:
            self.model.cash += self.model.sell_proceeds(quantity, self.price)
            self.model.quantity -= quantity

    @rule(quantity=quantities, factor=factors)
    def limit_order(self, quantity, factor):
        limit = (self.price * factor).quantize(Decimal("0.01"))
        if limit == self.price:
            return
        side = "buy" if limit < self.price else "sell"  # resting orders only: they wait for a price move
        order = self._place(side=side, type="limit", quantity=quantity, limit_price=limit)
        if side == "buy":
            reserve = self.model.buy_cost(quantity, limit)
            assert (order is not None) == (reserve <= self.model.cash - self.model.reserved_cash)
            if order:
                self.model.reserved_cash += reserve
                self.model.open[str(order.pk)] = ("buy", quantity, limit, reserve)
        else:
            assert (order is not None) == (quantity <= self.model.quantity - self.model.reserved_quantity)
            if order:
                self.model.reserved_quantity += quantity
                self.model.open[str(order.pk)] = ("sell", quantity, limit, quantity)

    @precondition(lambda self: self.model.open)
    @rule(data=st.data())
    def cancel(self, data):
        # draw a position, not an id: ids are random, and a replayed example must draw the same thing
        order_id = list(self.model.open)[data.draw(st.integers(0, len(self.model.open) - 1))]
        services.cancel_order(user=self.user, order_id=order_id)
        side, quantity, _, reserve = self.model.open.pop(order_id)
        if side == "buy":
            self.model.reserved_cash -= reserve
        else:
            self.model.reserved_quantity -= quantity

    @rule(factor=factors)
    def price_moves(self, factor):
        price = max(Decimal("0.01"), (self.price * factor).quantize(Decimal("0.01")))
        self.price = price
        Quote.objects.filter(coin_id="bitcoin").update(current_price=price)
        services.fill_limit_orders(coin_ids=["bitcoin"])
        for order_id in [
            o.pk for o in Order.objects.filter(portfolio=self.portfolio, status="open").order_by("created_at")
        ]:
            assert str(order_id) in self.model.open
        for order_id, (side, quantity, limit, reserve) in sorted(self.model.open.items()):
            if side == "buy" and price <= limit:
                self.model.reserved_cash -= reserve
                self.model.cash -= self.model.buy_cost(quantity, min(price, limit))
                self.model.quantity += quantity
                del self.model.open[order_id]
            elif side == "sell" and price >= limit:
                self.model.reserved_quantity -= quantity
                self.model.quantity -= quantity
                self.model.cash += self.model.sell_proceeds(quantity, max(price, limit))
                del self.model.open[order_id]

    @invariant()
    def matches_the_reference_and_nothing_is_negative(self):
        portfolio = Portfolio.objects.get(pk=self.portfolio.pk)
        holding = Holding.objects.filter(portfolio=portfolio, coin_id="bitcoin").first()
        quantity = holding.quantity if holding else Decimal(0)
        reserved = holding.reserved_quantity if holding else Decimal(0)
        assert portfolio.cash == self.model.cash
        assert portfolio.reserved_cash == self.model.reserved_cash
        assert quantity == self.model.quantity
        assert reserved == self.model.reserved_quantity
        assert min(portfolio.cash, portfolio.reserved_cash, quantity, reserved) >= 0
        assert portfolio.reserved_cash <= portfolio.cash
        assert reserved <= quantity

    @invariant()
    def pnl_explains_the_value_change(self):
        from portfolios.selectors import portfolio_valuation

        valuation = portfolio_valuation(Portfolio.objects.get(pk=self.portfolio.pk))
        change = valuation.total_value - self.model.transfers
        # fees are inside the P&L (in the cost basis and in sale proceeds); only the basis rounding may differ
        assert abs(valuation.realized_pnl + valuation.unrealized_pnl - change) <= Decimal("0.000001")


@pytest.mark.django_db
def test_random_trading_sessions_match_the_reference_model():
    run_state_machine_as_test(
        TradingSession,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
