"""Market fixtures: a CoinGecko double (respx) and a client that never really sleeps."""

import httpx
import pytest
import respx

from market.budget import CallBudget
from market.coingecko import CoinGeckoClient

BASE = "https://cg.test/api/v3"


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def cg_mock():
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(sleeps):
    made = []

    def make(**kwargs) -> CoinGeckoClient:
        kwargs.setdefault("base_url", BASE)
        kwargs.setdefault("api_key", "")
        kwargs.setdefault("budget", CallBudget(limit=1000, key="test:calls", sleep=sleeps))
        kwargs.setdefault("sleep", sleeps)
        client = CoinGeckoClient(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def html_page(status: int) -> httpx.Response:
    return httpx.Response(
        status, text="<html><body><h1>Bad gateway</h1></body></html>", headers={"content-type": "text/html"}
    )
