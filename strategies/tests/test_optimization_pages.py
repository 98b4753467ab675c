"""Optimisation pages: the grid form built from the kind's declared parameters, errors beside their inputs, the
run's page polling until done, then the sortable table, the heatmap with its table, walk-forward windows and the
deflated Sharpe ratio; another user's run is a 404."""

import re
from datetime import UTC, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from conftest import PASSWORD
from strategies import optimizations, services
from strategies.engine.kinds import KINDS
from strategies.models import Optimization

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
DAYS = 400
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def field_errors(response, name: str) -> list[str]:
    return re.findall(rf'data-field-error="{re.escape(name)}">([^<]+)<', response.content.decode())


@pytest.fixture
def coin(db):
    from market.models import Coin, PricePoint, Quote

    coin = Coin.objects.create(id="walkcoin", symbol="walk", name="Walkcoin", market_cap_rank=1)
    first = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - DAYS * DAY
    prices = 100 * np.exp(np.cumsum(np.random.default_rng(3).normal(0.0004, 0.035, DAYS)))
    PricePoint.objects.bulk_create(
        PricePoint(coin=coin, ts=first + day * DAY, price=Decimal(f"{price:.8f}")) for day, price in enumerate(prices)
    )
    Quote.objects.create(coin=coin, current_price=Decimal(f"{prices[-1]:.8f}"), last_updated=timezone.now())
    return coin


@pytest.fixture
def strategy(alice, coin):
    return services.create_strategy(
        owner=alice, name="Cross", kind="sma_crossover", params={"fast": 10, "slow": 30}, coin=coin
    )


@pytest.fixture
def alice_client(client, alice):
    assert client.post("/login/", {"email": alice.email, "password": PASSWORD}).status_code == 302
    return client


def form_data(**changes) -> dict:
    today = timezone.now().astimezone(UTC).date()
    data = {
        "start": (today - timedelta(days=380)).isoformat(),
        "end": today.isoformat(),
        "initial_capital": "10000",
        "fee_bps": "10",
        "slippage_bps": "0",
        "objective": "sharpe",
        "train_bars": "180",
        "test_bars": "60",
    }
    data.update(changes)
    return data


def submit(client, strategy, capture, **changes):
    with capture(execute=True):
        return client.post(f"/strategies/{strategy.pk}/optimize/", form_data(**changes))


def test_the_strategy_page_links_to_the_form_with_every_declared_parameter(alice_client, strategy):
    page = alice_client.get(f"/strategies/{strategy.pk}/").content.decode()
    assert f'href="/strategies/{strategy.pk}/optimize/" data-testid="optimise"' in page
    response = alice_client.get(f"/strategies/{strategy.pk}/optimize/")
    assert response.status_code == 200
    html = response.content.decode()
    for param in KINDS["sma_crossover"].params:
        for name in (param.name, f"{param.name}.from", f"{param.name}.to", f"{param.name}.step"):
            assert f'name="grid.{name}"' in html
    assert 'data-max-combinations="2000"' in html
    assert 'src="/static/js/optimization.js"' in html
    assert "<script>" not in html  # no inline script: the page's behaviour is in its own file
    assert 'id="glossary-dsr"' in html


def test_a_grid_runs_and_its_page_shows_the_table_and_the_heatmap(
    alice_client, strategy, django_capture_on_commit_callbacks
):
    response = submit(
        alice_client,
        strategy,
        django_capture_on_commit_callbacks,
        **{"grid.fast": "5, 10, 20", "grid.slow.from": "15", "grid.slow.to": "35", "grid.slow.step": "10"},
    )
    assert response.status_code == 302, field_errors(response, "grid.fast") or response.content.decode()[:3000]
    assert re.fullmatch(rf"/optimizations/{UUID}/", response["Location"])
    optimization = Optimization.objects.get()
    assert optimization.grid == {"fast": [5, 10, 20], "slow": [15, 25, 35]}
    assert (optimization.status, optimization.skipped) == ("succeeded", 1)  # fast 20, slow 15: refused
    html = alice_client.get(response["Location"]).content.decode()
    table = html.split('data-testid="results-table"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr") == 1 + len(optimizations.result_rows(optimization))  # the header and one per row
    assert table.count('data-best="1"') == 1
    heatmap = html.split("data-heatmap ", 1)[1].split("</table>", 1)[0]
    assert heatmap.count('<th scope="row"') == 3  # fast 5, 10, 20
    assert heatmap.count("data-missing") == optimization.skipped
    assert 'data-testid="dsr-value"' in html
    assert "hx-get" not in html  # finished: no more polling


def test_errors_stand_beside_their_inputs(alice_client, strategy, django_capture_on_commit_callbacks):
    response = submit(alice_client, strategy, django_capture_on_commit_callbacks, **{"grid.fast": "5, 900"})
    assert response.status_code == 400
    assert field_errors(response, "grid.fast") == ["fast must be between 2 and 500."]
    response = submit(
        alice_client,
        strategy,
        django_capture_on_commit_callbacks,
        **{"grid.slow.from": "20", "grid.slow.to": "10", "grid.slow.step": "0"},
    )
    assert field_errors(response, "grid.slow.step") == ["The step must be a whole number above 0."]
    response = submit(
        alice_client,
        strategy,
        django_capture_on_commit_callbacks,
        **{"grid.fast": "5", "grid.fast.from": "2", "grid.fast.to": "4", "grid.fast.step": "1"},
    )
    assert field_errors(response, "grid.fast") == ["Give a list or a range, not both."]
    response = submit(
        alice_client,
        strategy,
        django_capture_on_commit_callbacks,
        **{
            "grid.fast.from": "2",
            "grid.fast.to": "60",
            "grid.fast.step": "1",
            "grid.slow": " ".join(map(str, range(61, 100))),
        },
    )
    assert response.status_code == 400
    assert "2,301 combinations are more than the 2,000 allowed" in response.content.decode()
    response = submit(alice_client, strategy, django_capture_on_commit_callbacks, walk_forward="on", train_bars="")
    assert field_errors(response, "train_bars") == ["Give a number of bars."]
    assert not Optimization.objects.exists()


def test_walk_forward_shows_its_windows(alice_client, strategy, django_capture_on_commit_callbacks):
    response = submit(
        alice_client, strategy, django_capture_on_commit_callbacks, **{"grid.fast": "3 5 8"}, walk_forward="on"
    )
    assert response.status_code == 302
    optimization = Optimization.objects.get()
    assert (optimization.train_bars, optimization.test_bars) == (180, 60)
    html = alice_client.get(response["Location"]).content.decode()
    windows = html.split('data-testid="windows"', 1)[1].split("</table>", 1)[0]
    assert windows.count("<tr>") - 1 == len(optimization.windows) >= 2  # the header row, then one per window
    assert 'data-testid="oos-comparison"' in html
    assert 'data-testid="heatmap"' not in html  # one parameter varied


def test_a_running_optimisation_polls_and_others_cannot_see_it(alice, bob, client, strategy, monkeypatch):
    monkeypatch.setattr(optimizations, "enqueue_on_commit", lambda *args: None)
    optimization = optimizations.queue_optimization(
        strategy=strategy,
        user=alice,
        start=timezone.now() - 100 * DAY,
        end=timezone.now(),
        grid={"fast": [5, 6]},
        objective="sharpe",
        initial_capital=Decimal(1000),
        fee_bps=Decimal(10),
        slippage_bps=Decimal(0),
    )
    assert client.post("/login/", {"email": bob.email, "password": PASSWORD}).status_code == 302
    assert client.get(f"/optimizations/{optimization.pk}/").status_code == 404
    assert client.get(f"/strategies/{strategy.pk}/optimize/").status_code == 404  # a private strategy
    client.logout()
    assert client.post("/login/", {"email": alice.email, "password": PASSWORD}).status_code == 302
    fragment = client.get(f"/optimizations/{optimization.pk}/", headers={"HX-Request": "true"})
    html = fragment.content.decode()
    assert html.lstrip().startswith('<div id="optimization-results"')
    assert f'hx-get="/optimizations/{optimization.pk}/"' in html
    assert 'data-testid="progress"' in html


def test_operators_read_optimisations_in_the_admin(client, alice, strategy, monkeypatch):
    from conftest import make_user

    monkeypatch.setattr(optimizations, "enqueue_on_commit", lambda *args: None)
    optimization = optimizations.queue_optimization(
        strategy=strategy,
        user=alice,
        start=timezone.now() - 100 * DAY,
        end=timezone.now(),
        grid={"fast": [5, 6]},
        objective="sharpe",
        initial_capital=Decimal(1000),
        fee_bps=Decimal(10),
        slippage_bps=Decimal(0),
    )
    make_user("ops@example.com", role="admin")
    assert client.post("/login/", {"email": "ops@example.com", "password": PASSWORD}).status_code == 302
    assert client.get("/admin/strategies/optimization/").status_code == 200
    page = client.get(f"/admin/strategies/optimization/{optimization.pk}/change/")
    assert page.status_code == 200
    assert 'name="objective"' not in page.content.decode()  # read-only: a run's inputs are frozen
    assert client.get("/admin/strategies/optimization/add/").status_code == 403
