"""Hostile input at the edge: oversized numbers, NUL bytes, unstorable datetimes, errors in any format."""

import re
import time
from decimal import Decimal
from html.parser import HTMLParser
from io import BytesIO

import pytest
from django import forms
from django.utils import timezone
from rest_framework.exceptions import ParseError

from conftest import PASSWORD
from cryptodesk.api.fields import AmountField, PercentField
from cryptodesk.api.parsers import MAX_JSON_DEPTH, DecimalJSONParser
from cryptodesk.forms import BoundedDecimalField
from cryptodesk.money import NumberRejected, parse_bounded_decimal
from market.models import Coin, Quote
from portfolios import services as portfolio_services
from portfolios.models import Trade

from .test_problems import assert_problem

pytestmark = pytest.mark.django_db

HOSTILE_NUMBERS = [
    "1e2000000",
    "1E-2000000",
    "-1e2000000",
    "NaN",
    "-Infinity",
    "Infinity",
    "¹²",
    "٣",
    " 1 ",
    "1" * 5000,
    "0." + "0" * 4999 + "1",
    "1e101",
    "",
    "0x10",
    "1_000",
]


@pytest.fixture
def btc(db) -> Quote:
    coin = Coin.objects.create(id="bitcoin", symbol="btc", name="Bitcoin", market_cap_rank=1)
    return Quote.objects.create(coin=coin, current_price=Decimal(100), last_updated=timezone.now())


@pytest.fixture
def portfolio(alice, btc):
    return portfolio_services.create_portfolio(owner=alice, name="Main", starting_cash=Decimal(10_000))


@pytest.fixture
def strategy_id(alice_api, btc) -> int:
    body = {"name": "Cross", "kind": "sma_crossover", "params": {"fast": 10, "slow": 30}, "coin": "bitcoin"}
    response = alice_api.post("/api/v1/strategies/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def post_raw(client, url: str, body: str):
    return client.generic("POST", url, data=body.encode(), content_type="application/json")


# --- the shared check ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE_NUMBERS)
def test_parse_bounded_decimal_refuses_hostile_text(text):
    with pytest.raises(NumberRejected):
        parse_bounded_decimal(text)


@pytest.mark.parametrize("value", [True, 1.5, None, [], 10**400, Decimal("1E+2000000"), Decimal("NaN")])
def test_parse_bounded_decimal_refuses_other_values(value):
    with pytest.raises(NumberRejected):
        parse_bounded_decimal(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.12345678", "0.12345678"), ("-5", "-5"), ("1e3", "1E+3"), (".5", "0.5"), (7, "7"), (Decimal("2.50"), "2.50")],
)
def test_parse_bounded_decimal_keeps_plain_numbers_exact(value, expected):
    assert parse_bounded_decimal(value) == Decimal(expected)
    assert str(parse_bounded_decimal(value)) == expected


# --- the JSON parser -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "literal",
    ["1e2000000", "1E-2000000", "-1e2000000", "1" * 5000, "1" * 101, "1." + "1" * 100, "2e101", "1e-101"],
)
def test_parser_refuses_oversized_number_literals(literal):
    started = time.perf_counter()
    with pytest.raises(ParseError, match="number too large"):
        DecimalJSONParser().parse(BytesIO(f'{{"quantity": {literal}}}'.encode()))
    assert time.perf_counter() - started < 2  # a converted huge number takes minutes; 2 s allows a loaded CI


def test_parser_keeps_ordinary_numbers():
    data = DecimalJSONParser().parse(BytesIO(b'{"a": 12, "b": -0.5, "c": 1e100, "d": [1, 2, {"e": 3}]}'))
    assert data == {"a": 12, "b": Decimal("-0.5"), "c": Decimal("1e100"), "d": [1, 2, {"e": 3}]}
    assert type(data["a"]) is int


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_parser_refuses_deep_nesting(opening):
    closing = "]" if opening == "[" else "}"
    for depth in (MAX_JSON_DEPTH + 1, 100_000):
        with pytest.raises(ParseError, match="nested"):
            DecimalJSONParser().parse(BytesIO((opening * depth + "1" + closing * depth).encode()))
    deepest = opening * MAX_JSON_DEPTH + "1" + closing * MAX_JSON_DEPTH
    assert DecimalJSONParser().parse(BytesIO(deepest.encode())) is not None


def test_nul_in_a_json_string_is_refused_by_its_field(alice_api, btc):
    response = post_raw(alice_api, "/api/v1/watchlists/", '{"name": "w\\u0000", "coins": ["bitcoin"]}')
    assert list(assert_problem(response, 400)["errors"]) == ["name"]


def test_deeply_nested_body_is_a_400_problem(alice_api):
    response = post_raw(alice_api, "/api/v1/orders/", "[" * 100_000)
    assert "nested" in assert_problem(response, 400)["detail"]


def test_huge_number_literal_in_an_order_is_a_400_problem(alice_api, portfolio):
    body = f'{{"portfolio": {portfolio.pk}, "coin": "bitcoin", "side": "buy", "type": "market", "quantity": 1e2000000}}'
    detail = assert_problem(post_raw(alice_api, "/api/v1/orders/", body), 400)["detail"]
    assert "Malformed JSON" in detail
    assert "number too large" in detail


def test_huge_strategy_param_answers_400_fast(alice_api, btc):
    started = time.perf_counter()
    body = '{"name": "x", "kind": "sma_crossover", "coin": "bitcoin", "params": {"fast": 1e2000000, "slow": 30}}'
    assert_problem(post_raw(alice_api, "/api/v1/strategies/", body), 400)
    assert time.perf_counter() - started < 2  # a converted huge number takes minutes; 2 s allows a loaded CI


# --- decimal fields through real endpoints ---------------------------------------------------------


@pytest.mark.parametrize("field", [AmountField, PercentField])
@pytest.mark.parametrize("text", HOSTILE_NUMBERS)
def test_amount_fields_refuse_hostile_text(field, text):
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the type is asserted just below
        field().run_validation(text)
    assert type(caught.value).__name__ == "ValidationError"


@pytest.mark.parametrize("text", HOSTILE_NUMBERS)
@pytest.mark.parametrize("field", ["quantity", "limit_price"])
def test_order_numbers_are_bounded(alice_api, portfolio, field, text):
    body = {"portfolio": portfolio.pk, "coin": "bitcoin", "side": "buy", "type": "limit", "quantity": "1"}
    body["limit_price"] = "50"
    body[field] = text
    problem = assert_problem(alice_api.post("/api/v1/orders/", body, format="json"), 400)
    assert list(problem["errors"]) == [field]
    assert portfolio.orders.count() == 0


def test_order_number_beyond_max_digits_is_a_400(alice_api, portfolio):
    body = {"portfolio": portfolio.pk, "coin": "bitcoin", "side": "buy", "type": "market", "quantity": "9" * 40}
    problem = assert_problem(alice_api.post("/api/v1/orders/", body, format="json"), 400)
    assert list(problem["errors"]) == ["quantity"]


@pytest.mark.parametrize("text", HOSTILE_NUMBERS)
def test_transfer_amount_is_bounded(alice_api, portfolio, text):
    body = {"kind": "deposit", "amount": text}
    response = alice_api.post(f"/api/v1/portfolios/{portfolio.pk}/transfers/", body, format="json")
    assert list(assert_problem(response, 400)["errors"]) == ["amount"]
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal(10_000)


@pytest.mark.parametrize("text", HOSTILE_NUMBERS)
def test_alert_threshold_is_bounded(alice_api, btc, text):
    body = {"coin": "bitcoin", "condition": "price_above", "threshold": text}
    response = alice_api.post("/api/v1/alerts/", body, format="json")
    assert list(assert_problem(response, 400)["errors"]) == ["threshold"]


@pytest.mark.parametrize("text", HOSTILE_NUMBERS)
@pytest.mark.parametrize("field", ["initial_capital", "fee_bps", "slippage_bps"])
def test_backtest_numbers_are_bounded(alice_api, strategy_id, field, text):
    body = {"start": "2025-01-01T00:00:00Z", "end": "2025-06-01T00:00:00Z", field: text}
    response = alice_api.post(f"/api/v1/strategies/{strategy_id}/backtests/", body, format="json")
    assert list(assert_problem(response, 400)["errors"]) == [field]


def test_plain_numbers_still_pass(alice_api, portfolio):
    body = {"portfolio": portfolio.pk, "coin": "bitcoin", "side": "buy", "type": "market", "quantity": 1.5}
    response = alice_api.post("/api/v1/orders/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["quantity"] == "1.5"


# --- form fields -----------------------------------------------------------------------------------


class _AmountForm(forms.Form):
    amount = BoundedDecimalField(max_digits=38, decimal_places=18)


@pytest.mark.parametrize("text", [text for text in HOSTILE_NUMBERS if text.strip() and text == text.strip()])
def test_form_decimal_field_refuses_hostile_text_beside_the_field(text):
    form = _AmountForm({"amount": text})
    assert not form.is_valid()
    assert list(form.errors) == ["amount"]


def test_form_decimal_field_accepts_a_typed_number_with_spaces():
    form = _AmountForm({"amount": " 12.5 "})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount"] == Decimal("12.5")


def field_errors(response, name: str) -> list[str]:
    return re.findall(rf'data-field-error="{name}">([^<]+)<', response.content.decode())


@pytest.mark.parametrize("text", ["1e2000000", "٣", "1" * 5000])
def test_pages_show_a_bounded_number_error_beside_the_field(client, alice, portfolio, text):
    assert client.post("/login/", {"email": alice.email, "password": PASSWORD}).status_code == 302
    response = client.post(f"/portfolios/{portfolio.pk}/transfers/", {"kind": "deposit", "amount": text})
    assert response.status_code in {200, 400}
    assert field_errors(response, "amount")
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal(10_000)


# --- number filters --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1e2000000", "9" * 5000, "NaN", "٣"])
def test_number_filters_are_bounded(alice_api, portfolio, text):
    body = assert_problem(alice_api.get("/api/v1/coins/", {"min_market_cap": text}), 400)
    assert list(body["errors"]) == ["min_market_cap"]
    body = assert_problem(alice_api.get("/api/v1/orders/", {"portfolio": text}), 400)
    assert list(body["errors"]) == ["portfolio"]


@pytest.mark.parametrize("text", ["1.5", "0", "-3", str(2**63)])
def test_id_filters_take_whole_numbers_a_bigint_can_hold(alice_api, portfolio, text):
    body = assert_problem(alice_api.get("/api/v1/trades/", {"portfolio": text}), 400)
    assert list(body["errors"]) == ["portfolio"]


def test_number_filters_still_filter(alice_api, portfolio, btc):
    Quote.objects.filter(pk=btc.pk).update(market_cap=Decimal(5000))
    assert alice_api.get("/api/v1/coins/", {"min_market_cap": "1e40"}).json()["count"] == 0
    assert alice_api.get("/api/v1/coins/", {"min_market_cap": "4.9e3"}).json()["count"] == 1
    assert alice_api.get("/api/v1/coins/", {"max_market_cap": "-1e-100"}).json()["count"] == 0
    assert alice_api.get("/api/v1/orders/", {"portfolio": str(portfolio.pk)}).status_code == 200


# --- NUL bytes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/coins/%00/",
        "/api/v1/coins/%00",
        "/api/v1/coins/?search=%00",
        "/api/v1/coins/?page=%00",
        "/api/v1/coins/?symbol=a%00b",
        "/api/v1/coins/?%00=1",
        "/api/v1/orders/?coin=%00",
    ],
)
def test_nul_in_api_path_or_query_is_a_400_problem(alice_api, btc, url):
    assert "NUL" in assert_problem(alice_api.get(url), 400)["detail"]


@pytest.mark.parametrize("url", ["/markets/%00/", "/markets/?search=%00", "/login/?next=%00"])
def test_nul_in_page_path_or_query_is_a_plain_400(client, btc, url):
    response = client.get(url)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


# --- datetime filters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "4479-11-08T00:09:54+19:02",
        "9999-12-31T23:59:59-05:00",
        "9999-12-31T23:59:59-00:01",
        "0001-01-01T00:00:00+01:00",
        "2025-01-01T00:00:00+18:01",
        "2025-01-01T00:00:00-18:30",
        "2025-01-01T00:00:00+23:59",
        "garbage",
        "2025-01-01T00:00:00" + "0" * 5000,
        "2025-13-01T00:00:00Z",
    ],
)
@pytest.mark.parametrize("param", ["executed_after", "executed_before"])
def test_unstorable_datetime_filter_is_a_400_with_the_param(alice_api, portfolio, param, value):
    body = assert_problem(alice_api.get("/api/v1/trades/", {param: value}), 400)
    assert list(body["errors"]) == [param]


def test_datetime_filter_with_an_offset_still_filters_exactly(alice_api, portfolio):
    response = alice_api.post(
        "/api/v1/orders/",
        {"portfolio": portfolio.pk, "coin": "bitcoin", "side": "buy", "type": "market", "quantity": "1"},
        format="json",
    )
    assert response.status_code == 201, response.content
    executed = Trade.objects.get().executed_at
    just_after = (executed + timezone.timedelta(seconds=1)).astimezone(timezone.get_fixed_timezone(-(17 * 60 + 30)))
    just_before = (executed - timezone.timedelta(seconds=1)).astimezone(timezone.get_fixed_timezone(14 * 60))
    assert alice_api.get("/api/v1/trades/", {"executed_after": just_after.isoformat()}).json()["count"] == 0
    assert alice_api.get("/api/v1/trades/", {"executed_after": just_before.isoformat()}).json()["count"] == 1
    assert alice_api.get("/api/v1/trades/", {"executed_before": just_after.isoformat()}).json()["count"] == 1


def test_unstorable_datetime_on_the_trades_page_is_not_a_500(client, alice, portfolio):
    assert client.post("/login/", {"email": alice.email, "password": PASSWORD}).status_code == 302
    response = client.get("/trades/", {"executed_after": "4479-11-08T00:09:54+19:02"})
    assert response.status_code in {200, 400}


# --- errors in any format --------------------------------------------------------------------------


def test_csv_request_with_bad_filter_answers_problem_json(alice_api, portfolio):
    response = alice_api.get("/api/v1/trades/", {"format": "csv", "executed_after": "garbage"})
    body = assert_problem(response, 400)
    assert list(body["errors"]) == ["executed_after"]


def test_unauthenticated_csv_request_answers_problem_json(anon_api):
    assert_problem(anon_api.get("/api/v1/trades/?format=csv"), 401)
    assert_problem(anon_api.get("/api/v1/trades/", HTTP_ACCEPT="text/csv"), 401)


def test_unknown_format_answers_problem_json(alice_api):
    assert_problem(alice_api.get("/api/v1/trades/?format=xml"), 404)


def test_csv_export_still_works(alice_api, portfolio):
    response = alice_api.get("/api/v1/trades/?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert b"".join(response.streaming_content).startswith(b"executed_at,portfolio")


# --- API docs --------------------------------------------------------------------------------------


class _Urls(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value]


def foreign_urls(html: str) -> list[str]:
    parser = _Urls()
    parser.feed(html)
    attribute_urls = [url for url in parser.urls if re.match(r"^(?:[a-z][a-z0-9+.-]*:)?//", url, re.IGNORECASE)]
    inline_urls = re.findall(r"https?://[^\s\"'<>)]+", html)
    return [url for url in attribute_urls + inline_urls if not url.startswith("http://testserver/")]


@pytest.mark.parametrize("url", ["/api/redoc/", "/api/docs/"])
def test_api_docs_load_every_asset_from_this_origin(client, url):
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script" in html
    assert foreign_urls(html) == []
