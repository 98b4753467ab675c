"""Epoch milliseconds <-> aware UTC datetimes, with exact integer arithmetic."""

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every stored time is aware UTC")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    if isinstance(ms, bool) or not isinstance(ms, int):
        raise TypeError("epoch milliseconds are an integer")
    return _EPOCH + timedelta(milliseconds=ms)
