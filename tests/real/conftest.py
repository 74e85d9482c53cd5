"""The real tier's fixtures: a real Asterisk 22.10.1, pjsua phones with tones, and our service.

* ``asterisk`` (session) — :class:`tests.real.asterisk.RealAsterisk`, started from configs written into a temp
  folder (free SIP/HTTP/AMI/AGI ports, its own RTP range), our dialplan rendered by ``callcenter dialplan render``
  and ``#include``d as the README says, around the site dialplan :data:`tests.real.asterisk.SITE_DIALPLAN`
  (phones 1001–1012 in ``from-internal``: ``1XXX`` internal, ``9<number>`` out, feature codes, ``*55<ext>``
  ChanSpy; customers 55501001–55501006 in ``from-trunk``: ``1XXX`` an agent's DID, ``q<queue>`` a queue).
  ``asterisk.site`` has the ports and credentials (``ari_url``, ``ari_user``/``ari_password``, ``ami_port``…);
  ``await asterisk.cli("core show channels")``, ``await asterisk.ari("GET", "/channels")``,
  ``await asterisk.restart()``, ``asterisk.log_path``, ``await asterisk.set_extra_dialplan(text)`` (contexts
  ``[site-extra-internal]`` / ``[site-extra-trunk]`` are included from the phones' / customers' contexts;
  reset after each test).
* ``south_asterisk`` (module, only for tests that ask) — a second Asterisk, the branch ``south`` (phones
  2001–2012, customers 55521001–55521006) beside ``asterisk`` (key ``main``); ``south_phones`` are its phones.
  ``make_service(asterisks=(asterisk, south_asterisk))`` serves both (one ``[[pbx]]`` each).
* ``make_service_process(extra, asterisks=...)`` — ``callcenter serve`` in a process of its own (to ``kill()``
  with SIGKILL): ``request``, ``token``, ``log_tail()``.
* ``phones`` — ``await phones.start("1001")`` → :class:`tests.real.phones.Phone`, registered and online in
  ARI, playing its own tone (``phone.tone_hz``; agent 600, customer 1400, supervisor 2200 when started in that
  order) and recording what it hears. ``call(target)`` returns a line mark for ``wait_state("CONFIRMED",
  since=mark)``; ``hangup()``, ``dtmf("5")``, ``answer()``, ``hold()``, ``mark()`` (a phase boundary as a
  recording offset), ``recorded_until(offset)``, ``recording.verdicts(tones, start, end)`` (see audio.py).
  Stopped after the test; any channel left in Asterisk is hung up.
* ``service`` — our service (same runner as ``callcenter serve``) on a fresh database, connected to ARI and
  AMI: ``service.request(method, path, json=..., token=...)`` (admin token by default),
  ``service.token(role, extension)``, ``service.monitor_group(...)``, ``service.subscribe("monitor.")`` +
  ``service.next_event(sub, topic, **match)``. ``make_service(extra={...})`` starts one with config additions
  (``{"queue": [...]}``, ``{"ivr": ...}``).

Scenario helpers in ``tests/real/scenes.py``: ``inbound_call(customer, agent)``, ``outbound_call``,
``internal_call``, ``record_phase(name, listeners)`` and ``hearing_problems(phase, listeners, tones, expected)``
(who must hear whom; every other tone, its own included, must be absent).

Every wait is on an event (a console line, an ARI state, a bus event, audio recorded up to an offset). A failed
test's phone folder (consoles, pjsua logs, recordings) and the session's Asterisk folder are kept and named in
the output; ``CALLCENTER_REAL_KEEP=1`` keeps them always.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import make_world_readable_tmpdir
from tests.real.asterisk import RealAsterisk, Site, second_site_numbers
from tests.real.build import find_prefix, on_ci
from tests.real.phones import Phones
from tests.real.service import ROLES, RunningService, ServiceProcess, service_config, start_service_for


@pytest.fixture(scope="session")
def asterisk_prefix() -> Path:
    prefix, reason = find_prefix()
    if prefix is None:
        if on_ci():
            pytest.fail(f"CI must run the real tier, but: {reason}", pytrace=False)
        pytest.skip(f"real tier: {reason}")
    return prefix


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember whether the test failed, so its phones' recordings and consoles are kept for a look."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        item.stash[FAILED] = True


FAILED = pytest.StashKey[bool]()


def keep() -> bool:
    return bool(os.environ.get("CALLCENTER_REAL_KEEP"))


@contextlib.asynccontextmanager
async def running_asterisk(site: Site, request: pytest.FixtureRequest,
                           config: dict[str, Any] | None = None) -> AsyncIterator[RealAsterisk]:
    """Write the site's configs, start its Asterisk, stop it after; its folder is kept when something failed."""
    ast = RealAsterisk(site, config)
    ast.write_configs()
    try:
        await ast.start()
    except Exception:
        ast.kill()
        raise
    try:
        yield ast
    finally:
        await ast.stop()
        ast.kill()
        if keep() or request.session.testsfailed:
            print(f"real tier: Asterisk folder kept at {site.root}")
        else:
            shutil.rmtree(site.root, ignore_errors=True)


@pytest.fixture(scope="session")
async def asterisk(asterisk_prefix: Path, request: pytest.FixtureRequest) -> AsyncIterator[RealAsterisk]:
    async with running_asterisk(Site(prefix=asterisk_prefix, root=make_world_readable_tmpdir("cc-real-")),
                                request) as ast:
        yield ast


@pytest.fixture(scope="module")
async def south_asterisk(asterisk: RealAsterisk, asterisk_prefix: Path,
                         request: pytest.FixtureRequest) -> AsyncIterator[RealAsterisk]:
    """A second Asterisk, the branch ``south`` beside ``asterisk`` (``main``): same binaries, its own folder,
    ports and RTP range; phones 2001–2012 and customers 55521001–55521006 (:func:`second_site_numbers`). Its
    snippets are rendered (``--pbx south``) from the config that lists both, so its FastAGI hooks reach the
    one service at ``main``'s address. Started only by the tests that ask for it."""
    internal, customers = second_site_numbers("2")
    site = Site(prefix=asterisk_prefix, root=make_world_readable_tmpdir("cc-real-south-"), key="south",
                internal=internal, customers=customers, agi_port=asterisk.site.agi_port,
                agi_secret=asterisk.site.agi_secret)
    both = {**asterisk.site.callcenter_config(), "pbx": [asterisk.site.pbx_entry(), site.pbx_entry()]}
    async with running_asterisk(site, request, both) as ast:
        yield ast


@contextlib.asynccontextmanager
async def phone_book(asterisk: RealAsterisk, request: pytest.FixtureRequest,
                     shares_tones_with: Phones | None = None) -> AsyncIterator[Phones]:
    # not tmp_path: pytest prunes old basetemps, and other runs on this machine would delete our recordings
    folder = Path(tempfile.mkdtemp(prefix="cc-real-phones-"))
    book = Phones(asterisk, folder, shares_tones_with=shares_tones_with)
    try:
        yield book
    finally:
        kept = keep() or request.node.stash.get(FAILED, False)
        await book.stop_all(keep_recordings=kept)  # a passing test's folder goes: no need for finished wav files
        if asterisk.running:
            with contextlib.suppress(Exception):
                await asterisk.cli("channel request hangup all")
            with contextlib.suppress(Exception):
                await asterisk.reset_extra_dialplan()
        if kept:
            print(f"real tier: phones' consoles and recordings kept in {folder}; Asterisk log {asterisk.log_path}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def phones(asterisk: RealAsterisk, request: pytest.FixtureRequest) -> AsyncIterator[Phones]:
    async with phone_book(asterisk, request) as book:
        yield book


@pytest.fixture
async def south_phones(south_asterisk: RealAsterisk, phones: Phones,
                       request: pytest.FixtureRequest) -> AsyncIterator[Phones]:
    """Phones of the ``south`` Asterisk; their tones differ from every phone of ``phones``."""
    async with phone_book(south_asterisk, request, shares_tones_with=phones) as book:
        yield book


@pytest.fixture
async def make_service(asterisk: RealAsterisk, db_dsn: str
                       ) -> AsyncIterator[Callable[..., Awaitable[RunningService]]]:
    started: list[RunningService] = []
    folder = Path(tempfile.mkdtemp(prefix="cc-real-service-"))

    async def make(extra: dict[str, Any] | None = None, *, asterisks: tuple[RealAsterisk, ...] = (),
                   roles: tuple[str, ...] = ROLES) -> RunningService:
        """A service for ``asterisk`` (or every one of ``asterisks``, one ``[[pbx]]`` each) on the test's
        database; several share it, as instances of one deployment do."""
        data = folder / f"service-{len(started)}"
        data.mkdir()
        svc = await start_service_for(asterisks or (asterisk,), db_dsn, data, extra, roles=roles)
        started.append(svc)
        return svc

    try:
        yield make
    finally:
        for svc in reversed(started):
            await svc.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def service(make_service: Callable[..., Awaitable[RunningService]]) -> RunningService:
    return await make_service()


@pytest.fixture
async def make_service_process(asterisk: RealAsterisk, db_dsn: str, request: pytest.FixtureRequest
                               ) -> AsyncIterator[Callable[..., Awaitable[ServiceProcess]]]:
    """``callcenter serve`` processes on the test's database (instances of one deployment), each serving
    ``asterisks`` (default ``asterisk``) with ``extra`` config; killed if still running after the test, their
    logs kept when it failed."""
    started: list[ServiceProcess] = []
    folder = Path(tempfile.mkdtemp(prefix="cc-real-instances-"))
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2)

    async def make(extra: dict[str, Any] | None = None, *,
                   asterisks: tuple[RealAsterisk, ...] = ()) -> ServiceProcess:
        data = folder / f"instance-{len(started)}"
        data.mkdir()
        proc = ServiceProcess(service_config(asterisks or (asterisk,), db_dsn, data, extra), data, pool)
        started.append(proc)
        await proc.start()
        return proc

    try:
        yield make
    finally:
        await asyncio.gather(*(proc.stop() for proc in started), return_exceptions=True)
        for proc in started:
            proc.kill()
        await pool.close()
        if keep() or request.node.stash.get(FAILED, False):
            print(f"real tier: the instances' configs and logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
