"""The shipped demo snapshot: built once (seeded random walks), loaded by seed_demo, anchored to "now"."""

import gzip
import json
import random
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from cryptodesk.money import CONTEXT, quantize

from ..coingecko import GlobalSnapshot, MarketRow, TrendingItem
from ..models import Coin, PricePoint, Source
from .coins import DEMO_COINS

SNAPSHOT_PATH = Path(__file__).with_name("snapshot.json.gz")
DAILY_POINTS = 358  # a year of days before the hourly week
HOURLY_POINTS = 24 * 7 + 1
SEED = 2026


def _significant(value: Decimal, digits: int = 8) -> str:
    with localcontext(CONTEXT) as context:
        context.prec = digits
        return str(+value)


def build_snapshot(*, seed: int = SEED) -> dict:
    """Random walks backwards from each coin's illustrative price: hourly for a week, daily for the year before."""
    rng = random.Random(seed)
    coins = []
    for rank, (coin_id, symbol, name, price, supply, daily_vol) in enumerate(DEMO_COINS, start=1):
        sigma_day = Decimal(daily_vol)
        sigma_hour = sigma_day / Decimal(24).sqrt()
        with localcontext(CONTEXT):
            hourly = [Decimal(price)]
            for _ in range(HOURLY_POINTS - 1):
                step = sigma_hour * Decimal(repr(rng.gauss(0, 1)))
                hourly.append(hourly[-1] / step.exp())
            daily = [hourly[-1]]
            for _ in range(DAILY_POINTS - 1):
                step = sigma_day * Decimal(repr(rng.gauss(0, 1)))
                daily.append(daily[-1] / step.exp())
        coins.append(
            {
                "id": coin_id,
                "symbol": symbol,
                "name": name,
                "rank": rank,
                "supply": supply,
                "volume_ratio": _significant(Decimal(repr(rng.uniform(0.01, 0.12))), 4),
                "hourly": [_significant(p) for p in reversed(hourly)],  # oldest first
                "daily": [_significant(p) for p in reversed(daily[1:])],
            }
        )
    trending = [coin["id"] for coin in rng.sample(coins[5:60], 7)]
    return {"version": 1, "source": "demo", "seed": seed, "coins": coins, "trending": trending}


def write_snapshot(path: Path = SNAPSHOT_PATH, *, seed: int = SEED) -> Path:
    data = json.dumps(build_snapshot(seed=seed), separators=(",", ":")).encode()
    path.write_bytes(gzip.compress(data, mtime=0))  # mtime 0: the same seed gives the same bytes
    return path


def read_snapshot(path: Path = SNAPSHOT_PATH) -> dict:
    return json.loads(gzip.decompress(path.read_bytes()), parse_float=Decimal)


def _rows(snapshot: dict, anchor: datetime, now: datetime) -> tuple[list[MarketRow], list[PricePoint]]:
    rows, points = [], []
    day_anchor = anchor.replace(hour=0)
    for coin in snapshot["coins"]:
        hourly = [Decimal(p) for p in coin["hourly"]]
        daily = [Decimal(p) for p in coin["daily"]]
        supply = Decimal(coin["supply"])
        price = hourly[-1]
        day_ago = hourly[-25]
        market_cap = quantize(price * supply, places=2)
        rows.append(
            MarketRow(
                id=coin["id"],
                symbol=coin["symbol"],
                name=coin["name"],
                image="",
                current_price=price,
                market_cap=market_cap,
                total_volume=quantize(market_cap * Decimal(coin["volume_ratio"]), places=2),
                price_change_percentage_24h=quantize((price / day_ago - 1) * 100, places=8),
                market_cap_rank=coin["rank"],
                high_24h=max(hourly[-25:]),
                low_24h=min(hourly[-25:]),
                last_updated=now,
                sparkline=hourly,
            )
        )
        for offset, value in enumerate(reversed(hourly[:-1]), start=1):
            points.append(
                PricePoint(
                    coin_id=coin["id"],
                    ts=anchor - timedelta(hours=offset),
                    price=value,
                    market_cap=quantize(value * supply, places=2),
                )
            )
        for offset, value in enumerate(reversed(daily), start=8):
            points.append(
                PricePoint(
                    coin_id=coin["id"],
                    ts=day_anchor - timedelta(days=offset),
                    price=value,
                    market_cap=quantize(value * supply, places=2),
                )
            )
    return rows, points


def load_snapshot(*, now: datetime | None = None, path: Path = SNAPSHOT_PATH) -> dict[str, int] | None:
    """Load the demo market once. Returns None when market data is already there (synced or demo): never overwritten."""
    from .. import services

    if Coin.objects.exists():
        return None
    snapshot = read_snapshot(path)
    now = now or timezone.now()
    anchor = now.replace(minute=0, second=0, microsecond=0)
    rows, points = _rows(snapshot, anchor, now)
    by_id = {row.id: row for row in rows}
    total_cap = sum((row.market_cap for row in rows), Decimal(0))
    market_total = quantize(total_cap / Decimal("0.92"), places=2)  # the long tail beyond the hundred
    with transaction.atomic():
        services.write_market_rows(rows, source=Source.DEMO)
        PricePoint.objects.bulk_create(points, ignore_conflicts=True, batch_size=5000)
        services.write_trending(
            [
                TrendingItem(
                    id=coin_id,
                    symbol=by_id[coin_id].symbol,
                    name=by_id[coin_id].name,
                    market_cap_rank=by_id[coin_id].market_cap_rank,
                    score=index,
                    image="",
                )
                for index, coin_id in enumerate(snapshot["trending"])
            ],
            as_of=anchor,
        )
        services.write_global(
            GlobalSnapshot(
                total_market_cap=market_total,
                total_volume=sum((row.total_volume for row in rows), Decimal(0)),
                btc_dominance=quantize(by_id["bitcoin"].market_cap / market_total * 100, places=8),
                eth_dominance=quantize(by_id["ethereum"].market_cap / market_total * 100, places=8),
                market_cap_change_percentage_24h=by_id["bitcoin"].price_change_percentage_24h,
                active_cryptocurrencies=len(rows),
                as_of=anchor,
            ),
            source=Source.DEMO,
        )
        run = services.record_demo_run(coins=len(rows), points=len(points) + len(rows))
        transaction.on_commit(services.after_demo_write)
    return {"coins": len(rows), "points": len(points), "sync_run": run.pk}
