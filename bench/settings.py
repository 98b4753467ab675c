"""Benchmark settings: the production settings unchanged, routed through bench.urls for the constant view."""

from cryptodesk.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
