"""asterisk-callcenter core: config, domain, numbers, store, event bus, ports and the service runner.

Nothing in this package imports an adapter (ari_app, agi_scripts, api, bridges, dialplan) except the
composition root: :mod:`callcenter.cli`, :mod:`callcenter.runner` and the whole-product commands
:mod:`callcenter.demo` and :mod:`callcenter.doctor` (``python -m scripts.import_cycles`` checks it).
"""

__version__ = "0.1.0"
