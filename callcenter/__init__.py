"""asterisk-callcenter core: config, domain, numbers, store, event bus, ports and the service runner.

Nothing in this package imports an adapter (ari_app, agi_scripts, api, bridges) except the
composition root: :mod:`callcenter.cli` and :mod:`callcenter.runner`.
"""

__version__ = "0.1.0"
