"""Strict environment helpers: a malformed value stops start-up with one line naming the variable."""

import os
import re
from datetime import timedelta
from typing import NoReturn


def config_error(name: str, problem: str) -> NoReturn:
    raise SystemExit(f"config error: {name} {problem}")  # one line, no traceback


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, *, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    config_error(name, "must be a boolean (1/0, true/false, yes/no, on/off)")


def env_int(name: str, *, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        config_error(name, "must be a whole number")
    if value < minimum:
        config_error(name, f"must be at least {minimum}")
    return value


def env_list(name: str, *, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def env_duration(name: str, *, default: str) -> timedelta:
    """`90`, `90s`, `15m`, `2h`, `1d`."""
    raw = os.environ.get(name, default)
    match = _DURATION.match(raw)
    if not match:
        config_error(name, "must be a duration such as 90s, 15m, 2h or 1d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
