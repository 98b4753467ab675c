"""Batch jobs: one bad limit order or alert never stops the others; alert mail is sent per message."""

import smtplib
from decimal import Decimal, InvalidOperation

import pytest
from django.core import mail

from conftest import make_user
from cryptodesk.realtime.publish import publish_notification
from portfolios import services, tasks
from portfolios.models import Alert, Holding, Notification, Order, Portfolio

from .conftest import set_price

pytestmark = pytest.mark.django_db

HUGE = Decimal(10) ** 19  # fits a column; × a price of 100 it does not


def _poisoned_sell(user) -> Order:
    """A limit sell whose fill at the market would overflow the cash and notional columns."""
    portfolio = Portfolio.objects.create(owner=user, name="Whale", starting_cash=0, cash=0)
    Holding.objects.create(portfolio=portfolio, coin_id="bitcoin", quantity=HUGE, reserved_quantity=HUGE)
    return Order.objects.create(
        portfolio=portfolio, coin_id="bitcoin", side="sell", type="limit", quantity=HUGE, limit_price=1, reserved=HUGE
    )


def test_a_fill_that_overflows_is_rejected_and_the_others_fill(alice, bob, bob_portfolio):
    poisoned = _poisoned_sell(alice)
    set_price("bitcoin", "200")
    normal, _ = services.place_order(
        user=bob,
        portfolio_id=bob_portfolio.pk,
        coin_id="bitcoin",
        side="buy",
        type="limit",
        quantity=Decimal(1),
        limit_price=Decimal(150),
    )
    set_price("bitcoin", "100")

    assert services.fill_limit_orders(coin_ids=["bitcoin"]) == 1

    normal.refresh_from_db()
    poisoned.refresh_from_db()
    assert normal.status == Order.Status.FILLED
    assert normal.filled_price == Decimal(100)
    assert poisoned.status == Order.Status.REJECTED
    assert "more than a portfolio can hold" in poisoned.reject_reason
    assert poisoned.reserved == 0
    holding = Holding.objects.get(portfolio=poisoned.portfolio)
    assert (holding.quantity, holding.reserved_quantity) == (HUGE, 0)
    assert Portfolio.objects.get(pk=poisoned.portfolio_id).cash == 0
    assert services.fill_limit_orders(coin_ids=["bitcoin"]) == 0  # rejected once, not retried every sync


def test_an_unexpected_arithmetic_error_rejects_only_that_order(
    alice, bob, alice_portfolio, bob_portfolio, monkeypatch
):
    set_price("bitcoin", "200")
    placed = {}
    for user, portfolio in ((alice, alice_portfolio), (bob, bob_portfolio)):
        placed[user.pk], _ = services.place_order(
            user=user,
            portfolio_id=portfolio.pk,
            coin_id="bitcoin",
            side="buy",
            type="limit",
            quantity=Decimal(2),
            limit_price=Decimal(150),
        )
    real_record_fill = services._record_fill

    def record_fill(order, fill, **kwargs):
        if order.portfolio_id == alice_portfolio.pk:
            raise InvalidOperation("simulated")
        return real_record_fill(order, fill, **kwargs)

    monkeypatch.setattr(services, "_record_fill", record_fill)
    set_price("bitcoin", "100")
    assert services.fill_limit_orders(coin_ids=["bitcoin"]) == 1
    alices, bobs = Order.objects.get(pk=placed[alice.pk].pk), Order.objects.get(pk=placed[bob.pk].pk)
    assert bobs.status == Order.Status.FILLED
    assert alices.status == Order.Status.REJECTED
    assert alices.reject_reason
    portfolio = Portfolio.objects.get(pk=alice_portfolio.pk)
    assert (portfolio.cash, portfolio.reserved_cash) == (Decimal(10000), 0)  # untouched, reservation released


def _alert(user, **extra) -> Alert:
    return Alert.objects.create(
        owner=user, coin_id="bitcoin", condition="price_above", threshold=Decimal(120), notify_email=True, **extra
    )


def test_one_broken_alert_does_not_stop_the_others(alice, bob, btc, monkeypatch):
    broken, working = _alert(alice), _alert(bob)
    real_notify = services.notify_alert

    def notify(alert, quote):
        if alert.pk == broken.pk:
            raise RuntimeError("simulated")
        return real_notify(alert, quote)

    monkeypatch.setattr(services, "notify_alert", notify)
    set_price("bitcoin", "125")
    assert services.evaluate_alerts(coin_ids=["bitcoin"]) == 1
    assert Notification.objects.filter(user=bob).count() == 1
    assert Notification.objects.filter(user=alice).count() == 0
    broken.refresh_from_db()
    working.refresh_from_db()
    assert (broken.is_met, working.is_met) == (False, True)  # the broken one is tried again next time


def test_a_failing_send_for_one_user_does_not_stop_another_users_mail(
    alice, bob, btc, monkeypatch, django_capture_on_commit_callbacks
):
    _alert(alice)
    _alert(bob)
    real_send = tasks.send_mail

    def send(subject, message, from_email, recipient_list, **kwargs):
        if recipient_list == [alice.email]:
            raise smtplib.SMTPRecipientsRefused({alice.email: (550, b"no such user")})
        return real_send(subject, message, from_email, recipient_list, **kwargs)

    monkeypatch.setattr(tasks, "send_mail", send)
    set_price("bitcoin", "125")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.evaluate_alerts(coin_ids=["bitcoin"]) == 2
    assert Notification.objects.filter(user=alice).count() == 1  # in-app notification kept
    assert Notification.objects.filter(user=bob).count() == 1
    assert [message.to for message in mail.outbox] == [[bob.email]]
    assert mail.outbox[0].subject == "CryptoDesk alert: Bitcoin: price above 120"


def test_a_transient_smtp_failure_is_retried(alice, btc, monkeypatch, django_capture_on_commit_callbacks):
    _alert(alice)
    real_send = tasks.send_mail
    attempts = []

    def send(*args, **kwargs):
        attempts.append(args)
        if len(attempts) == 1:
            raise smtplib.SMTPServerDisconnected("gone")
        return real_send(*args, **kwargs)

    monkeypatch.setattr(tasks, "send_mail", send)
    set_price("bitcoin", "125")
    with django_capture_on_commit_callbacks(execute=False) as dispatches:
        assert services.evaluate_alerts(coin_ids=["bitcoin"]) == 1
    mail_dispatches = [
        callback for callback in dispatches if getattr(callback, "func", None) is not publish_notification
    ]
    assert len(mail_dispatches) == 1  # the e-mail, after commit (beside the socket's notification)
    notification = Notification.objects.get(user=alice)
    result = tasks.send_alert_email_task.apply(args=[notification.pk], throw=False)  # eager: the retry runs inline
    assert result.get() is True
    assert len(attempts) == 2
    assert [message.to for message in mail.outbox] == [[alice.email]]


def test_an_unverified_user_gets_the_notification_but_no_mail(btc, django_capture_on_commit_callbacks):
    unverified = make_user("carol@example.com", email_verified=False)
    _alert(unverified)
    set_price("bitcoin", "125")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.evaluate_alerts(coin_ids=["bitcoin"]) == 1
    assert Notification.objects.filter(user=unverified).count() == 1
    assert mail.outbox == []
