"""Issue 12, item 16: webhooks post only to public addresses unless the config allows an internal one, and
never show credentials back."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from api.webhook_targets import (
    AllowList,
    TargetRefused,
    check_delivery_target,
    check_url,
    is_internal,
    literal_address,
)
from callcenter.config import ConfigError
from callcenter.store import webhooks as webhook_store
from tests.live.test_webhooks import Receiver
from tests.waiting import eventually

from .conftest import Api, default_config

MakeApi = Callable[..., Awaitable[Api]]

INTERNAL = ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://LocalHost/hook",
            "http://169.254.169.254/latest/meta-data/", "http://0x7f000001/hook", "http://2130706433/hook",
            "http://0177.0.0.1/hook", "http://127.1/hook", "http://10.1.2.3/hook", "http://192.168.1.10/hook",
            "http://0.0.0.0/hook", "http://0/hook", "http://100.64.0.1/hook", "http://224.0.0.1/hook"]
MALFORMED = ["http://crm.example/hook\r\nX-Injected: 1", "http://crm.example/ho\nok", "http://crm.example/a b",
             "http://crm.example/\x00", "http://[::1]/hook", "http://[::ffff:127.0.0.1]/", "http://[fe80::1]/hook",
             "http://crm.example:99999/", "ftp://crm.example/"]


async def post_hook(api: Api, url: str) -> Any:
    return await api.client.post("/api/v1/admin/webhooks", headers=api.auth("admin"), json={"url": url})


async def test_internal_targets_and_header_injection_are_refused(api: Api) -> None:
    for url in INTERNAL:  # well-formed, refused for where it points
        response = await post_hook(api, url)
        assert response.status == 403, url
        assert (await response.json())["error"]["message"].startswith("body.url: "), url
    for url in MALFORMED:  # refused for how it is written (IPv6 literals: use a host name)
        response = await post_hook(api, url)
        assert response.status == 400, url
        assert (await response.json())["error"]["field"] == "body.url", url
    public = await post_hook(api, "https://crm.example/hook")  # does not resolve here: checked again per delivery
    assert public.status == 201
    hook = await public.json()
    patched = await api.client.patch(f"/api/v1/admin/webhooks/{hook['id']}", headers=api.auth("admin"),
                                     json={"url": "http://169.254.169.254/"})
    assert patched.status == 403 and "internal address" in (await patched.json())["error"]["message"]
    assert await webhook_store.list_webhooks(api.ctx.store.pool) == [
        {**(await webhook_store.get_webhook(api.ctx.store.pool, hook["id"])), "url": "https://crm.example/hook"}]


async def test_the_config_allow_list_admits_named_internal_targets(make_api: MakeApi) -> None:
    api = await make_api(config=default_config(http={"webhook_allow": ["127.0.0.1", "10.0.0.0/8", "crm.lan"]}))
    for url in ("http://127.0.0.1:9/hook", "http://0x7f000001/hook", "http://10.9.8.7/x", "http://crm.lan/x"):
        assert (await post_hook(api, url)).status == 201, url
    for url in ("http://169.254.169.254/", "http://192.168.0.1/"):
        assert (await post_hook(api, url)).status == 403, url
    with pytest.raises(ConfigError, match="webhook_allow"):
        default_config(http={"webhook_allow": ["not a host!"]})


async def test_credentials_in_a_url_are_refused_and_never_shown(api: Api) -> None:
    refused = await post_hook(api, "https://user:hunter2@crm.example/hook")
    assert refused.status == 400 and "credentials" in (await refused.json())["error"]["reason"]
    assert "hunter2" not in await refused.text()
    # a webhook stored before this rule (or by SQL) keeps working but its password is never echoed
    old = await webhook_store.create_webhook(api.ctx.store.pool, url="https://user:hunter2@crm.example/hook",
                                             secret="s" * 32, events=[], enabled=True, description="")
    for path in ("/api/v1/admin/webhooks", f"/api/v1/admin/webhooks/{old['id']}"):
        text = await (await api.client.get(path, headers=api.auth("admin"))).text()
        assert "hunter2" not in text and "user:" not in text and "***@crm.example" in text, path
    check_delivery_target(old["url"], AllowList())  # and it is still delivered to (its address is public)


async def test_a_name_that_resolves_to_an_internal_address_is_refused_at_delivery(make_api: MakeApi) -> None:
    """DNS can change after the URL was saved: each delivery connects through the guarded resolver."""
    receiver = Receiver()
    await receiver.start()
    try:
        api = await make_api()
        sneaky = receiver.url.replace("127.0.0.1", "localhost")
        hook = await webhook_store.create_webhook(api.ctx.store.pool, url=sneaky, secret="s" * 32, events=[],
                                                  enabled=True, description="")
        literal = await webhook_store.create_webhook(api.ctx.store.pool, url=receiver.url, secret="s" * 32,
                                                     events=[], enabled=True, description="")
        await api.ctx.bus.publish("call.ringing", {"call_id": "c-1", "pbx": "main", "extension": "201"})
        errors: dict[int, str] = {}

        async def failed(hook_id: int) -> bool:
            rows = await webhook_store.list_deliveries(api.ctx.store.pool, hook_id, status=None, limit=5,
                                                       before=None)
            errors[hook_id] = str(rows[0]["last_error"] or "") if rows else ""  # attempts counts at claim time
            return bool(errors[hook_id])

        for hook_id in (hook["id"], literal["id"]):
            await eventually(lambda hook_id=hook_id: failed(hook_id), timeout=10, what=f"hook {hook_id} failed")
        assert "internal" in errors[hook["id"]] and "internal" in errors[literal["id"]]
        assert receiver.received == []
    finally:
        await receiver.stop()


@pytest.mark.parametrize("host", ["127.0.0.1", "0x7f000001", "2130706433", "0177.0.0.1", "127.1", "::1",
                                  "::ffff:127.0.0.1", "169.254.169.254", "fe80::1", "10.0.0.1"])
def test_every_spelling_of_an_internal_address_is_internal(host: str) -> None:
    address = literal_address(host)
    assert address is not None and is_internal(address)
    with pytest.raises(TargetRefused):
        check_url(f"http://{'[' + host + ']' if ':' in host else host}/", AllowList())


def test_public_addresses_and_names_pass() -> None:
    assert not is_internal(ipaddress.ip_address("93.184.216.34"))
    assert literal_address("crm.example") is None
    assert str(check_url("https://crm.example:8443/hook?x=1", AllowList())) == "https://crm.example:8443/hook?x=1"
