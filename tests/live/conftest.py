"""Live fixtures: ``make_live`` builds the API (settings adjustable), closed after the test."""

from tests.live.liveapi import make_live

__all__ = ["make_live"]
