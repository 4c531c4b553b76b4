"""The one asynchronous DNS resolver everything shares (MX, SPF, DKIM, DMARC).

Every lookup is async and bounded by `[dns] timeout`; a timeout, SERVFAIL or unreachable server
is a TemporaryDNSError (a "temperror", never a crash and never a silent pass), while "no such
name" and "no such record" are plain empty answers.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Coroutine
from typing import Any, TypeVar

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.reversename

T = TypeVar("T")


class TemporaryDNSError(Exception):
    """The answer could not be had now (timeout, server failure): try again later."""


class NullMX(Exception):
    """The domain publishes "MX 0 ." (RFC 7505): it accepts no mail at all."""


class Resolver:
    def __init__(self, nameservers: tuple[str, ...] = (), timeout: float = 5.0) -> None:
        if nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [_nameserver(value) for value in nameservers]
        else:
            resolver = dns.asyncresolver.Resolver()
        resolver.timeout = timeout
        resolver.lifetime = timeout
        # Answers are cached for their TTL: the same sender's SPF and DKIM records, or the
        # same destination's MX, are not fetched again for every message.
        resolver.cache = dns.resolver.LRUCache(10_000)
        self._resolver = resolver
        self.timeout = timeout

    async def _answer(self, name: str, rdtype: str) -> list[Any]:
        try:
            answer = await self._resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise TemporaryDNSError(f"{rdtype} {name}: {type(exc).__name__}") from None
        except dns.exception.DNSException as exc:
            # YXDOMAIN, malformed names and the like: nothing usable, but not temporary.
            if isinstance(exc, dns.name.EmptyLabel | dns.name.LabelTooLong | dns.name.NameTooLong):
                return []
            raise TemporaryDNSError(f"{rdtype} {name}: {type(exc).__name__}") from None
        return list(answer)

    async def txt(self, name: str) -> list[bytes]:
        """Each TXT record's strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2)."""
        return [b"".join(r.strings) for r in await self._answer(name, "TXT")]

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        """MX hosts by preference; [] when there are none (then the domain itself is the host,
        RFC 5321 §5.1); NullMX when the domain accepts no mail."""
        records = await self._answer(domain, "MX")
        hosts = sorted((r.preference, r.exchange.to_text(omit_final_dot=True)) for r in records)
        if hosts and any(host in ("", ".") for _, host in hosts):
            raise NullMX(domain)
        return hosts

    async def addresses(self, host: str) -> list[str]:
        """IPv4 and IPv6 addresses of a host (A and AAAA), IPv4 first."""
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        v4: list[Any] | BaseException
        v6: list[Any] | BaseException
        v4, v6 = await asyncio.gather(
            self._answer(host, "A"), self._answer(host, "AAAA"), return_exceptions=True
        )
        if isinstance(v4, BaseException) and isinstance(v6, BaseException):
            raise v4
        found: list[str] = []
        for result in (v4, v6):
            if not isinstance(result, BaseException):
                found += [r.address for r in result]
        return found

    async def ptr(self, address: str) -> list[str]:
        name = dns.reversename.from_address(address).to_text()
        return [r.target.to_text(omit_final_dot=True) for r in await self._answer(name, "PTR")]

    async def query(self, name: str, rdtype: str) -> list[Any]:
        """Raw records of any type (what pyspf asks for)."""
        return await self._answer(name, rdtype)

    def run_from_thread(
        self, loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]
    ) -> T:
        """Run a lookup on the event loop from a worker thread (pyspf and dkimpy are
        synchronous libraries; they run in threads and look things up through this)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(self.timeout + 1)
        except TimeoutError:
            future.cancel()
            raise TemporaryDNSError("lookup timed out") from None


def _nameserver(value: str) -> dns.nameserver.Do53Nameserver:
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return dns.nameserver.Do53Nameserver(host, int(port))
    return dns.nameserver.Do53Nameserver(value)
