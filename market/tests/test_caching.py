"""Cached market responses: keys from the known parameters only, and a refresh that lives in a service."""

import ast
import random
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache

from cryptodesk.api import caching
from cryptodesk.api.caching import cache_key
from market import hooks, selectors
from market.api.responses import prewarm_market_caches
from market.cache import refresh_market_caches

from .test_api import COINS, add_coin

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stored_keys(monkeypatch) -> set[str]:
    """Every key the response cache writes."""
    keys: set[str] = set()
    real_set = cache.set

    def spy(key, *args, **kwargs):
        if key.startswith("api-cache:"):
            keys.add(key)
        return real_set(key, *args, **kwargs)

    monkeypatch.setattr(caching.cache, "set", spy)
    return keys


def _junk(rng: random.Random) -> str:
    name = "".join(rng.choices("abcdefghij_", k=rng.randint(1, 8)))
    return f"{name}={rng.randint(0, 10**6)}"


@pytest.mark.parametrize(
    ("url", "first_query"),
    [
        (COINS, ""),
        (COINS, "ordering=-market_cap&page_size=2"),
        (f"{COINS}bitcoin/", ""),
        (f"{COINS}bitcoin/history/", "days=7"),
        (f"{COINS}bitcoin/ohlc/", "days=30"),
        ("/api/v1/market/top/gainers/", "limit=5"),
        ("/api/v1/market/trending/", ""),
        ("/api/v1/market/global/", ""),
    ],
)
def test_junk_query_parameters_reuse_one_entry(anon_api, stored_keys, url, first_query):
    add_coin("bitcoin", "btc", "64000.5", rank=1, cap="1200000000000")
    add_coin("ethereum", "eth", "3100.25", rank=2, cap="370000000000")
    first = anon_api.get(f"{url}?{first_query}")
    assert first.status_code == 200
    assert len(stored_keys) == 1
    rng = random.Random(url)
    for _ in range(50):
        junk = "&".join(_junk(rng) for _ in range(rng.randint(1, 3)))
        response = anon_api.get(f"{url}?{junk}&{first_query}" if first_query else f"{url}?{junk}")
        assert response.status_code == 200
        assert response.content == first.content
    assert len(stored_keys) == 1


def test_defaults_and_order_normalise_to_one_entry(anon_api, stored_keys):
    add_coin("bitcoin", "btc", "64000.5", rank=1, cap="1200000000000")
    for query in ["", "page=1", "page_size=50", "page=1&page_size=50", "min_market_cap=1.0", "min_market_cap=1"]:
        assert anon_api.get(f"{COINS}?{query}").status_code == 200
    assert len(stored_keys) == 2  # everything, and everything above a market cap of 1
    for query in ["", "days=30"]:
        assert anon_api.get(f"{COINS}bitcoin/history/?{query}").status_code == 200
    assert len(stored_keys) == 3


def test_invalid_filters_are_400_even_with_the_plain_list_cached(anon_api, stored_keys):
    add_coin("bitcoin", "btc", "64000.5", rank=1, cap="1200000000000")
    assert anon_api.get(COINS).status_code == 200
    for query in ["min_market_cap=lots", "ordering=bogus"]:
        response = anon_api.get(f"{COINS}?{query}")
        assert response.status_code == 400
        assert response["Content-Type"] == "application/problem+json"
    assert len(stored_keys) == 1


def test_page_links_carry_only_known_parameters(anon_api):
    for i in range(3):
        add_coin(f"coin-{i}", f"c{i}", "1", rank=i + 1)
    body = anon_api.get(f"{COINS}?utm_source=x&page_size=1&page=2").json()
    assert body["next"] == "http://testserver/api/v1/coins/?page=3&page_size=1"
    assert body["previous"] == "http://testserver/api/v1/coins/?page_size=1"


def test_selectors_never_import_the_api():
    tree = ast.parse((ROOT / "market" / "selectors.py").read_text())
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)] + [
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    ]
    assert not [name for name in imported if "api" in name.split(".") or name.startswith("market.api")]
    code = (
        "import sys, django; django.setup(); import market.selectors, market.cache, market.services; "
        "print(sorted(m for m in sys.modules if m.startswith('market.api.views')))"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "cryptodesk.settings_test", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_the_api_prewarm_subscribes_to_market_data_changed(anon_api):
    add_coin("bitcoin", "btc", "64000.5", rank=1, cap="1200000000000", change="2.5")
    assert prewarm_market_caches in hooks._subscribers[hooks.MarketDataChanged]
    version = refresh_market_caches()
    assert selectors.market_version() == version
    for key in (
        cache_key("trending", version),
        cache_key("global", version),
        cache_key("top", version, variant="gainers:10"),
    ):
        assert cache.get(key) is not None
    body, _, _ = cache.get(cache_key("top", version, variant="gainers:10"))
    assert anon_api.get("/api/v1/market/top/gainers/").content == body
