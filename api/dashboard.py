"""The supervisors' dashboard: one static page at ``/`` and its assets under ``/static/``.

No build step and nothing fetched from elsewhere: the page, its CSS and JS live in ``api/static``.
The page itself is public (it holds no data); it asks for a token and then uses the API like any client.
A strict Content-Security-Policy keeps it that way (no inline script, no third-party origins).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-cache"}


async def index(request: web.Request) -> web.FileResponse:
    """The dashboard page (public: it holds no data until a token is entered)."""
    return web.FileResponse(STATIC_DIR / "index.html", headers=SECURITY_HEADERS)


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-cache")  # revalidate: a deploy shows at once
        response.headers.setdefault("X-Content-Type-Options", "nosniff")


def setup(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR, name="static", follow_symlinks=False, append_version=False)
    app.on_response_prepare.append(_static_headers)
