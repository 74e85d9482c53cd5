"""Where webhooks may post: public addresses only, unless ``[http] webhook_allow`` names an internal one.

A webhook URL is admin input that makes the service send requests: pointed at ``127.0.0.1``, ``[::1]``,
``169.254.169.254`` (cloud metadata) or a LAN host, it turns the service into a proxy into its own network
(SSRF). So a target must be a public address, unless the config's allow-list names the host or a network
holding the address. The URL is checked when it is saved (a clear 400 naming ``body.url``), and the address is
checked again when each delivery connects (:class:`GuardedResolver`), so a name that later resolves to an
internal address (DNS rebinding) is refused at send time too. Credentials in a URL are refused: the payload is
signed with the webhook's secret, and a URL is shown back by GET.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_LEGACY_IPV4 = re.compile(r"^(?:0x[0-9a-f]+|[0-9]+)(?:\.(?:0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


class TargetRefused(ValueError):
    """A webhook URL or address the service will not post to; the message says why. ``internal``: a well-formed
    URL refused for where it points (policy), not for how it is written."""

    def __init__(self, message: str, *, internal: bool = False) -> None:
        super().__init__(message)
        self.internal = internal


@dataclass(frozen=True)
class AllowList:
    """``[http] webhook_allow``: host names (exact, case-insensitive) and IP networks that may be internal."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        hosts: set[str] = set()
        networks: list[IpNetwork] = []
        for entry in entries:
            text = entry.strip().strip("[]").lower()
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                if not text or not re.fullmatch(r"[a-z0-9.-]+", text):
                    raise ValueError(f"{entry!r} is neither a host name nor an IP address / network") from None
                hosts.add(text.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IpAddress) -> bool:
        plain = _unmapped(address)
        return any(plain in net for net in self.networks if net.version == plain.version)


def _unmapped(address: IpAddress) -> IpAddress:
    """``::ffff:127.0.0.1`` is 127.0.0.1 to the kernel: judge (and allow) it as that."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_internal(address: IpAddress) -> bool:
    """Loopback, private, link-local (169.254/16, fe80::/10), shared, reserved, multicast or unspecified."""
    plain = _unmapped(address)
    return not plain.is_global or plain.is_multicast


def literal_address(host: str) -> IpAddress | None:
    """The address a host *literal* means — also the old spellings ``2130706433``, ``0x7f000001``, ``0177.0.0.1``
    and ``127.1`` that the system resolver accepts — or None for a host name."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def check_address(address: IpAddress, allow: AllowList, host: str = "") -> None:
    if is_internal(address) and not allow.allows_address(address) and not (host and allow.allows_host(host)):
        raise TargetRefused(f"points to an internal address ({_unmapped(address)}); add it to [http] "
                            "webhook_allow in the config to allow it", internal=True)


def check_url(raw: str, allow: AllowList) -> URL:
    """The URL when the service may post to it; :class:`TargetRefused` with the reason otherwise."""
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in raw):
        raise TargetRefused("must not contain spaces or control characters (CR, LF, tab…)")
    try:
        url = URL(raw)
    except ValueError:
        raise TargetRefused("is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise TargetRefused("must be an http:// or https:// URL with a host")
    if url.user is not None or url.password is not None or "@" in (url.raw_authority or ""):
        raise TargetRefused("must not carry credentials (user:password@); deliveries are signed with the "
                            "webhook's secret")
    address = literal_address(url.raw_host or url.host)
    if address is not None:
        check_address(address, allow)
    return url  # a host name is judged by what it resolves to (GuardedResolver)


def check_delivery_target(raw: str, allow: AllowList) -> None:
    """At send time: the address rule only (a URL saved before the format rules keeps being delivered); an
    address literal never reaches the resolver, so it is judged here, against today's allow-list."""
    try:
        host = URL(raw).raw_host or ""
    except ValueError:
        raise TargetRefused("is not a valid URL") from None
    address = literal_address(host)
    if address is not None:
        check_address(address, allow)


def shown_url(raw: str) -> str:
    """A stored URL as GET shows it: credentials (from before they were refused) replaced by ``***``."""
    try:
        url = URL(raw)
    except ValueError:
        return raw
    if url.user is None and url.password is None:
        return raw
    return str(url.with_user(None).with_password(None)).replace("://", "://***@", 1)


class GuardedResolver(AbstractResolver):
    """The delivery connector's resolver: drops internal addresses the allow-list does not name, so a host name
    that resolves (or later re-resolves) to one is refused when the delivery connects."""

    def __init__(self, allow: AllowList, inner: AbstractResolver | None = None) -> None:
        self._allow = allow
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        kept = []
        for result in results:
            try:
                check_address(ipaddress.ip_address(result["host"]), self._allow, host)
            except (TargetRefused, ValueError):
                continue
            kept.append(result)
        if not kept:
            raise OSError(errno.EACCES, f"webhook host {host} resolves only to internal addresses "
                                        "(see [http] webhook_allow)")
        return kept

    async def resolve_briefly(self, host: str, port: int, timeout: float = 2.0) -> None:
        """At save time: refuse a name that resolves only to internal addresses; one that does not resolve (yet)
        passes — each delivery resolves again through this resolver."""
        try:
            async with asyncio.timeout(timeout):
                await self.resolve(host, port, socket.AF_UNSPEC)
        except OSError as exc:
            if "internal addresses" in str(exc):
                raise TargetRefused(f"resolves only to internal addresses ({host}); add it to [http] "
                                    "webhook_allow in the config to allow it", internal=True) from None
        except TimeoutError:
            pass
        finally:
            await self.close()

    async def close(self) -> None:
        await self._inner.close()


def connector_kwargs(allow: AllowList) -> dict[str, Any]:
    """What the delivery session's TCPConnector needs to enforce the rule at connect time."""
    return {"resolver": GuardedResolver(allow)}
