"""The Postgres call store: pool, migrations, idempotent call writes, timeline, quarantine, spool.

SQL lives in this package only. Each module holds one domain's queries; adapters call these
functions rather than writing SQL of their own.
"""

from callcenter.store.calls import CallStore
from callcenter.store.migrate import migrate
from callcenter.store.spool import SpooledWriter

__all__ = ["CallStore", "SpooledWriter", "migrate"]
