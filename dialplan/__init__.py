"""Jinja2 dialplan templates a PBX admin renders and ``#include``s."""
