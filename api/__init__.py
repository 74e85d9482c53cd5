"""The aiohttp HTTP API, websocket events and dashboard page."""
