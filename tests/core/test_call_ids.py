"""Call ids: the UUIDv5 of the PBX key and the call's natural key, whatever computes it."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from callcenter.domain import _CALL_NAMESPACE, call_id_for


@given(st.text(max_size=20), st.text(max_size=80))
def test_a_call_id_is_the_uuid5_of_pbx_and_natural_key(pbx: str, natural_key: str) -> None:
    """Ids stored by earlier releases stay the ids of their calls: the fast path is uuid5 exactly."""
    assert call_id_for(pbx, natural_key) == uuid.uuid5(_CALL_NAMESPACE, f"{pbx}\x1f{natural_key}")
