"""Click-to-call and call control, as ``monitor/`` and ``queues/`` are packages of their own.

``flow.py`` is the Stasis flow (the agent's leg, the customer's leg, bridges, hold, transfer, conference, tidying
up); ``service.py`` is :class:`AsteriskCalls`, the ``CallControl`` and ``LiveView`` ports the API is handed.
"""

from ari_app.calls.flow import CallFlow
from ari_app.calls.service import AsteriskCalls

__all__ = ["AsteriskCalls", "CallFlow"]
