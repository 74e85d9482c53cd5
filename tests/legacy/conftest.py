"""Fixtures of the legacy PBX bridge tests: the shared samples, read in place."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.legacy.service import box, running  # noqa: F401 (fixtures: a caller-ID box on a pty, the service on it)
from tests.shared import SAMPLES as SHARED_SAMPLES

# The shared samples hold real-looking numbers, so they are read in place, not copied into the repository.
SAMPLES = SHARED_SAMPLES


@pytest.fixture
def sample() -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        path = SAMPLES / name
        if not path.exists():
            pytest.skip(f"shared sample {path} is not on this machine")
        return path.read_bytes()

    return read
