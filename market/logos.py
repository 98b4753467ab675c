"""Coin logos, fetched once into the app's own storage: pages never load an image from another host."""

import logging

import httpx
from django.core.files.base import ContentFile

from .models import Coin

logger = logging.getLogger(__name__)

MAX_BYTES = 256 * 1024
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def fetch_missing_logos(*, limit: int = 100, transport: httpx.BaseTransport | None = None) -> int:
    """Store up to `limit` logos that have a source URL and no stored file; returns how many were stored."""
    stored = 0
    coins = Coin.objects.filter(logo="").exclude(image_url="").order_by("market_cap_rank")[:limit]
    with httpx.Client(timeout=10, transport=transport, follow_redirects=True) as http:
        for coin in coins:
            try:
                response = http.get(coin.image_url)
            except httpx.HTTPError as exc:
                logger.info("logo for %s not fetched: %s", coin.pk, exc.__class__.__name__)
                continue
            kind = response.headers.get("content-type", "").split(";")[0].strip()
            if response.status_code != 200 or kind not in EXTENSIONS or len(response.content) > MAX_BYTES:
                logger.info(
                    "logo for %s refused: HTTP %s, %s, %s bytes",
                    coin.pk,
                    response.status_code,
                    kind,
                    len(response.content),
                )
                continue
            coin.logo.save(f"{coin.pk}.{EXTENSIONS[kind]}", ContentFile(response.content), save=False)
            Coin.objects.filter(pk=coin.pk).update(logo=coin.logo.name)
            stored += 1
    return stored
