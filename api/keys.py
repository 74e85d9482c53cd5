"""The application keys every API module reads: a leaf module, so that importing them creates no cycle.

``api.app`` builds the application and imports every route module; the route modules, the auth
middleware and the schema checks need the context key too, and read it from here.
"""

from __future__ import annotations

from aiohttp import web

from callcenter.service import ServiceContext

CTX_KEY = web.AppKey("ctx", ServiceContext)
