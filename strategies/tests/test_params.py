"""Strategy parameters: every hostile number is a 400 naming `params.<field>`, refused fast, before any conversion."""

import re
import time
from decimal import Decimal

import pytest
from django.utils import timezone

from conftest import PASSWORD
from market.models import Coin, Quote
from strategies import services
from strategies.engine.kinds import KINDS, ParamError, validate
from strategies.models import Strategy

pytestmark = pytest.mark.django_db

HOSTILE = [
    "1e2000000",  # a JSON number: arrives as Decimal
    "-1e2000000",
    "1e-2000000",
    '"1e3"',
    '"¹²"',
    '"١٢"',  # Arabic-Indic digits
    '"\uff11\uff12"',  # full-width digits
    '"' + "9" * 5000 + '"',
    "1" + "0" * 5000 + ".5",
    '"NaN"',
    '"Infinity"',
    '"-inf"',
    '"12.5"',
    "12.5",
    '"12 "',
    '" 12"',
    '""',
    "true",
    "null",
    "[12]",
    '{"a": 1}',
]


@pytest.fixture
def coin(db) -> Coin:
    coin = Coin.objects.create(id="bitcoin", symbol="btc", name="Bitcoin", market_cap_rank=1)
    Quote.objects.create(coin=coin, current_price="50000", last_updated=timezone.now())
    return coin


@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize(("kind", "field"), [("sma_crossover", "fast"), ("dca", "amount"), ("rsi_reversion", "lower")])
def test_api_refuses_hostile_numbers_fast(alice_api, coin, raw, kind, field):
    body = f'{{"name": "x", "kind": "{kind}", "coin": "bitcoin", "params": {{"{field}": {raw}}}}}'
    assert (
        alice_api.post("/api/v1/strategies/", {}, format="json").status_code == 400
    )  # warm: only the refusal is timed
    started = time.perf_counter()
    response = alice_api.post("/api/v1/strategies/", body, content_type="application/json")
    elapsed = time.perf_counter() - started
    if kind != "sma_crossover" and raw in {'"12.5"', "12.5"}:
        # 12.5 is a fine decimal parameter: amount is in bounds, lower 12.5 is valid too
        assert response.status_code == 201, response.content
        return
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    if raw.startswith(("1e", "-1e", "1" + "0" * 100)):  # an oversized JSON number: refused while parsing
        assert problem["detail"].startswith("Malformed JSON")
    else:
        assert f"params.{field}" in problem["errors"]
    assert elapsed < 2  # a converted huge number takes minutes; 2 s allows a loaded CI
    assert not Strategy.objects.exists()


def test_api_refuses_a_5000_digit_json_integer(alice_api, coin):
    body = '{"name": "x", "kind": "sma_crossover", "coin": "bitcoin", "params": {"fast": ' + "9" * 5000 + "}}"
    response = alice_api.post("/api/v1/strategies/", body, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert not Strategy.objects.exists()


FORM_HOSTILE = ["1e2000000", "¹²", "١٢", "9" * 5000, "1e3", "NaN", "Infinity", "12.5", "1" + "0" * 5000]


@pytest.mark.parametrize("raw", FORM_HOSTILE, ids=range(len(FORM_HOSTILE)))
def test_form_refuses_hostile_numbers_beside_the_field(client, alice, coin, raw):
    assert client.post("/login/", {"email": alice.email, "password": PASSWORD}).status_code == 302
    body = {
        "name": "x",
        "description": "",
        "kind": "sma_crossover",
        "coin": "bitcoin",
        "timeframe": "1d",
        "params.fast": raw,
        "params.slow": "20",
    }
    assert client.post("/strategies/new/", {}).status_code == 400  # warm: only the refusal is timed
    started = time.perf_counter()
    response = client.post("/strategies/new/", body)
    assert time.perf_counter() - started < 2  # a converted huge number takes minutes; 2 s allows a loaded CI
    assert response.status_code == 400
    assert 'data-field-error="params.fast"' in response.content.decode()
    assert not Strategy.objects.exists()


ENGINE_HOSTILE = [Decimal("1e2000000"), Decimal("-1e999999"), Decimal("1E+5000"), 10**5000, Decimal("NaN"), 12.0, "+"]


@pytest.mark.parametrize("raw", ENGINE_HOSTILE, ids=range(len(ENGINE_HOSTILE)))
def test_validate_bounds_without_converting(raw):
    started = time.perf_counter()
    with pytest.raises(ParamError) as caught:
        validate("sma_crossover", {"fast": raw, "slow": 30})
    assert caught.value.field == "fast"
    assert time.perf_counter() - started < 2  # a converted huge number takes minutes; 2 s allows a loaded CI


@pytest.mark.parametrize(
    ("raw", "expected"), [(5, 5), ("5", 5), ("+5", 5), (Decimal("5"), 5), (Decimal("5.000"), 5), (Decimal("5E0"), 5)]
)
def test_plain_whole_numbers_still_pass(raw, expected):
    assert validate("sma_crossover", {"fast": raw, "slow": 30})["fast"] == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("100", Decimal(100)), ("0.5", Decimal("0.5")), (Decimal("7.25"), Decimal("7.25"))]
)
def test_plain_decimals_still_pass(raw, expected):
    assert validate("dca", {"amount": raw})["amount"] == expected


EVERY_PARAM = [(kind.name, param.name) for kind in KINDS.values() for param in kind.params]
PAGE_HOSTILE = ["¹²", "9" * 5000, "1e2000000", "\uff11\uff12", "-1e2000000", "NaN"]


@pytest.mark.parametrize(
    "raw", PAGE_HOSTILE, ids=["superscript", "5000-digits", "1e2000000", "fullwidth", "neg", "nan"]
)
@pytest.mark.parametrize(("kind", "field"), EVERY_PARAM, ids=[f"{kind}.{field}" for kind, field in EVERY_PARAM])
def test_every_kinds_params_refuse_hostile_numbers_on_the_page(client, alice, coin, kind, field, raw):
    assert client.post("/login/", {"email": alice.email, "password": PASSWORD}).status_code == 302
    body = {"name": "x", "description": "", "kind": kind, "coin": "bitcoin", "timeframe": "1d"}
    body |= {f"params.{param.name}": str(param.default) for param in KINDS[kind].params if not param.optional}
    body[f"params.{field}"] = raw
    assert client.post("/strategies/new/", {}).status_code == 400  # warm: only the refusal is timed
    started = time.perf_counter()
    response = client.post("/strategies/new/", body)
    assert time.perf_counter() - started < 2  # a converted 1e2000000 takes far longer
    assert response.status_code == 400
    page = response.content.decode()
    assert f'data-field-error="params.{field}"' in page
    assert len(re.findall(r'data-field-error="params\.', page)) == 1  # beside that field alone
    assert not Strategy.objects.exists()
    strategy = Strategy.objects.create(
        owner=alice, name="Mine", kind=kind, params=services.clean_params(kind, {}), coin=coin, timeframe="1d"
    )
    edited = client.post(f"/strategies/{strategy.pk}/edit/", body | {"name": "Edited"})
    assert edited.status_code == 400
    assert f'data-field-error="params.{field}"' in edited.content.decode()
    strategy.refresh_from_db()
    assert strategy.name == "Mine"
