"""SPF, DKIM and DMARC verdicts for a message arriving from the world, and the
Authentication-Results header that records them (RFC 7208, RFC 6376, RFC 7489, RFC 8601).

pyspf decides SPF, dkimpy (through `dkim.verify`) DKIM, and the `dmarc` package parses DMARC
records and applies alignment and policy, with organizational domains from the Public Suffix
List bundled in `publicsuffixlist` (never fetched). Every DNS lookup goes through the shared
async resolver; synchronous library code runs in worker threads and asks the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import authres
import authres.dmarc
import dmarc
import spf as pyspf
from publicsuffixlist import PublicSuffixList

from mailgate.delivery.dkim import DKIMVerdict
from mailgate.delivery.dkim import verify as verify_dkim
from mailgate.delivery.dns import Resolver, TemporaryDNSError
from mailgate.delivery.offload import Offload
from mailgate.mime.addresses import a_label, address_list
from mailgate.mime.headers import normalize_crlf

__all__ = [
    "TEMPERROR",
    "DMARCVerdict",
    "SPFVerdict",
    "Verdict",
    "authentication_results",
    "check_dmarc",
    "check_spf",
    "evaluate",
    "remove_own_authentication_results",
]

TEMPERROR = "temperror"

# RFC 7208 §4.6.4: a check may be bounded in total; 20 s is the RFC's suggestion.
SPF_TIME_LIMIT = 20.0

# A pyspf check holds its thread while it waits for DNS, up to seconds on a timeout. In the
# loop's default executor (min(32, CPUs + 4) threads) a few slow domains would queue DKIM's
# crypto and every other to_thread() behind them, so SPF waits in threads of its own.
SPF_THREADS = 32
_spf_pool = ThreadPoolExecutor(SPF_THREADS, thread_name_prefix="mailgate-spf")


# ---------------------------------------------------------------------------------------------
# SPF (RFC 7208)


@dataclass(frozen=True, slots=True)
class SPFVerdict:
    result: str  # pass fail softfail neutral none temperror permerror
    domain: str  # the checked identity's domain (MAIL FROM, or HELO when MAIL FROM is empty)
    scope: str  # "mfrom" or "helo"
    explanation: str


async def check_spf(resolver: Resolver, *, ip: str, mail_from: str, helo: str) -> SPFVerdict:
    """SPF for MAIL FROM; for the null reverse-path, for HELO (RFC 7208 §2.4), whose result
    then stands alone. pyspf runs in a worker thread; its lookups come back to this loop."""
    mail_from = mail_from.strip().strip("<>")
    helo = helo.strip().rstrip(".").lower()
    if mail_from:
        local, at, domain = mail_from.rpartition("@")
        # An SMTPUTF8 sender's domain may be a U-label; DNS and pyspf know its A-labels.
        scope, domain = "mfrom", a_label(domain)
        mail_from = f"{local}{at}{domain}"
    else:
        scope, domain = "helo", helo
        if not _is_domain(helo):  # RFC 7208 §2.3: only a HELO that is an FQDN is checked
            return SPFVerdict("none", helo, scope, "HELO is not a domain name")
    loop = asyncio.get_running_loop()
    result, explanation = await loop.run_in_executor(
        _spf_pool, _spf_in_thread, resolver, loop, ip, mail_from, helo
    )
    return SPFVerdict(result, domain, scope, explanation)


_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def _is_domain(name: str) -> bool:
    labels = name.split(".")
    return len(labels) > 1 and all(_LABEL.fullmatch(label) for label in labels)


def _spf_in_thread(
    resolver: Resolver, loop: asyncio.AbstractEventLoop, ip: str, mail_from: str, helo: str
) -> tuple[str, str]:
    _bound.lookup = (resolver, loop)
    try:
        query = pyspf.query(i=ip, s=mail_from, h=helo, querytime=SPF_TIME_LIMIT)
        result, _code, explanation = query.check()
    except pyspf.TempError as exc:
        return TEMPERROR, str(exc)
    except Exception as exc:
        # pyspf raises PermError from its constructor (a bad IP) and, on hostile records,
        # other errors too (AssertionError on deep recursion); a record must not crash the MX.
        return "permerror", str(exc)
    finally:
        del _bound.lookup
    if result not in _SPF_RESULTS:  # "ambiguous" exists only in pyspf's harsh mode
        return "permerror", str(explanation)
    return str(result), str(explanation)


_SPF_RESULTS = frozenset(r.value for r in dmarc.SPFResult)


# pyspf looks DNS up through the module-level function `spf.DNSLookup`. We replace it once by
# a dispatcher that uses the resolver and loop bound to the calling worker thread, so that
# several servers in one process (each with its own resolver) can check SPF at the same time.
_bound = threading.local()
_pyspf_lookup = pyspf.DNSLookup


def _dns_lookup(
    name: str, qtype: str, strict: Any = True, timeout: Any = None
) -> list[tuple[tuple[str, str], Any]]:
    bound: tuple[Resolver, asyncio.AbstractEventLoop] | None = getattr(_bound, "lookup", None)
    if bound is None:  # someone else's pyspf use in this process: leave it as it was
        return _pyspf_lookup(name, qtype, strict, timeout)
    resolver, loop = bound
    try:
        records = resolver.run_from_thread(loop, resolver.query(name, qtype))
    except TemporaryDNSError as exc:
        raise pyspf.TempError(f"DNS {exc}") from None
    return [((name, qtype), _pyspf_value(qtype, r)) for r in records]


def _pyspf_value(qtype: str, rdata: Any) -> Any:
    """Record data in the shapes pyspf's own dnspython driver produces."""
    if qtype in ("A", "AAAA"):
        return rdata.address
    if qtype == "MX":
        return rdata.preference, rdata.exchange.to_text(omit_final_dot=True)
    if qtype == "PTR":
        return rdata.target.to_text(omit_final_dot=True)
    if qtype in ("TXT", "SPF"):
        return list(rdata.strings)
    return rdata.to_text()


pyspf.DNSLookup = _dns_lookup


# ---------------------------------------------------------------------------------------------
# DMARC (RFC 7489)


@dataclass(frozen=True, slots=True)
class DMARCVerdict:
    """`result` is pass, fail, none (no policy published), temperror or permerror (a broken
    record, or no single From domain). `policy` is what the domain asks for this message: p=,
    or sp= for a subdomain whose record was found at the organizational domain; for a fail
    sampled out by pct= it is one step milder (RFC 7489 §6.6.4). None when no record applies.
    A temperror with policy "reject" means: it would have been rejected, so ask to retry. A
    temperror with no policy means the record itself could not be read: the policy may be
    anything, and only the aligned flags (a pass for the From domain itself) vouch for it.
    With no record, or a broken one, the flags say what aligns in the default relaxed mode."""

    result: str
    domain: str  # the From header's domain
    policy: str | None
    dkim_aligned: bool  # an aligned DKIM pass
    spf_aligned: bool  # an aligned SPF pass


@dataclass(frozen=True, slots=True)
class _Discovered:
    record: str | None  # None: no DMARC record anywhere
    org_domain: str | None  # set when the record came from the organizational domain
    problem: str | None = None  # "temperror" or "permerror" when discovery itself failed


class _OrganizationalDomains:
    """The PSL interface `dmarc` expects: get_public_suffix(domain) gives the organizational
    domain (RFC 7489 §3.2), or the domain itself when it is a public suffix."""

    def __init__(self) -> None:
        self._list = PublicSuffixList()  # the copy bundled with the package; never fetched

    def get_public_suffix(self, domain: str) -> str:
        domain = _normal(domain)
        return self._list.privatesuffix(domain) or domain


_psl_lock = threading.Lock()
_psl_loaded: concurrent.futures.Future[_OrganizationalDomains] | None = None


def load_public_suffixes() -> concurrent.futures.Future[_OrganizationalDomains]:
    """Start parsing the bundled Public Suffix List (~80 ms, more on a cold start) in a thread
    of its own, once per process; the server calls this at start so that the first messages
    do not wait for it."""
    global _psl_loaded
    with _psl_lock:
        if _psl_loaded is None:
            loaded: concurrent.futures.Future[_OrganizationalDomains] = concurrent.futures.Future()

            def parse() -> None:
                try:
                    loaded.set_result(_OrganizationalDomains())
                except BaseException as exc:  # handed to whoever awaits the list
                    loaded.set_exception(exc)

            threading.Thread(target=parse, name="mailgate-psl", daemon=True).start()
            _psl_loaded = loaded
        return _psl_loaded


async def _psl() -> _OrganizationalDomains:
    loaded = load_public_suffixes()
    if loaded.done():
        return loaded.result()
    return await asyncio.wrap_future(loaded)


class _DMARC(dmarc.DMARC):
    def check_alignment(
        self, fd: str, ad: str, mode: dmarc.DMARCAlignment, psl: Any = None
    ) -> bool:
        fd, ad = _normal(fd), _normal(ad)
        if not fd or not ad:
            return False
        aligned: bool = super().check_alignment(fd, ad, mode, psl)
        if not aligned or mode is not dmarc.DMARCAlignment.RELAXED:
            return aligned
        # dmarc 1.2.1 calls any parent domain relaxed-aligned before it asks the PSL (d=co.uk
        # would align with example.co.uk). RFC 7489 §3.1: relaxed means the same
        # organizational domain, so its yes is kept only when that holds.
        org = self.publicsuffix.get_public_suffix
        return bool(org(fd) == org(ad))


def _normal(domain: str) -> str:
    # A UTF-8 From header (RFC 6532) may name an IDN by its U-labels.
    return a_label(domain.strip())


_DMARC_RECORD = re.compile(r"v\s*=\s*DMARC1\s*(;|$)")  # "DMARC1" is case-sensitive (§6.4)
_random = random.Random()


async def check_dmarc(
    resolver: Resolver,
    *,
    from_domain: str,
    spf: SPFVerdict,
    dkim: Sequence[DKIMVerdict],
    rng: random.Random | None = None,
) -> DMARCVerdict:
    """RFC 7489 §6.6 for the From domain, given the SPF and DKIM verdicts. `rng` samples pct=
    (a seeded one makes it repeatable)."""
    domain = _normal(from_domain)
    discovered = await _discover(resolver, domain)
    return _judge(domain, discovered, spf, dkim, await _psl(), rng or _random)


async def _discover(resolver: Resolver, domain: str) -> _Discovered:
    """RFC 7489 §6.6.3: the record at _dmarc.<From domain>, else at the organizational one."""
    try:
        records = await _dmarc_records(resolver, domain)
        if records:
            return _one(records, None)
        org = (await _psl()).get_public_suffix(domain)
        if org != domain:
            return _one(await _dmarc_records(resolver, org), org)
    except TemporaryDNSError:
        return _Discovered(None, None, TEMPERROR)
    return _Discovered(None, None)


async def _dmarc_records(resolver: Resolver, domain: str) -> list[str]:
    texts = [t.decode("utf-8", "replace") for t in await resolver.txt(f"_dmarc.{domain}")]
    return [t for t in texts if _DMARC_RECORD.match(t.lstrip())]


def _one(records: list[str], org_domain: str | None) -> _Discovered:
    if len(records) > 1:  # §6.6.3 step 5: more than one record, no DMARC processing
        return _Discovered(None, None, "permerror")
    return _Discovered(records[0] if records else None, org_domain)


def _judge(
    domain: str,
    found: _Discovered,
    spf_verdict: SPFVerdict,
    dkim_verdicts: Sequence[DKIMVerdict],
    psl: _OrganizationalDomains,
    rng: random.Random,
) -> DMARCVerdict:
    checker = _DMARC(psl)
    if found.problem == TEMPERROR:
        # §6.6.3 leaves a DNS error on the record itself to the receiver: the policy is
        # unknown, and so is the alignment mode. Only a pass for the From domain itself aligns
        # under any record (adkim=s or r), so only that still counts as aligned.
        same = _passes_for(domain, spf_verdict, dkim_verdicts)
        return DMARCVerdict(TEMPERROR, domain, None, *same)
    if found.problem or found.record is None:
        return DMARCVerdict(
            found.problem or "none",
            domain,
            None,
            *_relaxed(checker, domain, spf_verdict, dkim_verdicts),
        )
    try:
        # Not strict: a bad optional tag (pct=abc) falls back to its default; no valid p= is
        # still a RecordSyntaxError (§6.6.3: without a policy there is no DMARC processing).
        policy = checker.parse_record(found.record, domain, found.org_domain, strict=False)
    except dmarc.RecordSyntaxError:
        return DMARCVerdict(
            "permerror", domain, None, *_relaxed(checker, domain, spf_verdict, dkim_verdicts)
        )
    evaluated = checker.get_result(policy, auth_results=_auth_results(spf_verdict, dkim_verdicts))
    dkim_aligned = evaluated.dkim is dmarc.DMARCResult.PASS
    spf_aligned = evaluated.spf is dmarc.DMARCResult.PASS
    if evaluated.result is dmarc.DMARCResult.PASS:
        return DMARCVerdict("pass", domain, _requested(policy), dkim_aligned, spf_aligned)
    requested = _sampled(evaluated.disposition.value, policy.pct, rng)
    # §6.6.2: an identifier that could have aligned but met a temporary DNS error gives no
    # definite answer; the receiver should defer rather than act on "fail".
    result = TEMPERROR if _undecided(checker, policy, spf_verdict, dkim_verdicts) else "fail"
    return DMARCVerdict(result, domain, requested, False, False)


def _passes_for(
    domain: str, spf_verdict: SPFVerdict, dkim_verdicts: Sequence[DKIMVerdict]
) -> tuple[bool, bool]:
    """(a DKIM pass, an SPF pass) for exactly `domain`."""
    dkim_pass = any(v.result == "pass" and _normal(v.domain) == domain for v in dkim_verdicts)
    return dkim_pass, spf_verdict.result == "pass" and _normal(spf_verdict.domain) == domain


def _relaxed(
    checker: _DMARC,
    domain: str,
    spf_verdict: SPFVerdict,
    dkim_verdicts: Sequence[DKIMVerdict],
) -> tuple[bool, bool]:
    """Aligned passes in the default relaxed mode (§3.1), for mail with no policy to apply:
    the receiver's own rules still tell an author-signed message whose SPF fails (a
    forwarder) from a forgery."""
    relaxed = dmarc.DMARCAlignment.RELAXED

    def aligned(other: str) -> bool:
        return checker.check_alignment(domain, other, relaxed, checker.publicsuffix)

    dkim_pass = any(v.result == "pass" and aligned(v.domain) for v in dkim_verdicts)
    return dkim_pass, spf_verdict.result == "pass" and aligned(spf_verdict.domain)


def _auth_results(spf_verdict: SPFVerdict, dkim_verdicts: Sequence[DKIMVerdict]) -> Any:
    scope = dmarc.SPFDomainScope(spf_verdict.scope)
    return dmarc.AuthResults(
        spf=dmarc.SPFAuthResult(spf_verdict.domain, dmarc.SPFResult(spf_verdict.result), scope),
        dkim=[
            dmarc.DKIMAuthResult(v.domain, dmarc.DKIMResult(v.result), v.selector, v.reason)
            for v in dkim_verdicts
        ],
    )


def _requested(policy: dmarc.Policy) -> str:
    # §6.3: sp= applies to subdomains, i.e. when the record came from the organizational domain.
    if policy.org_domain and policy.sp is not dmarc.DMARCDisposition.UNSPECIFIED:
        return str(policy.sp.value)
    return str(policy.p.value)


_MILDER = {"reject": "quarantine", "quarantine": "none", "none": "none"}


def _sampled(requested: str, pct: int, rng: random.Random) -> str:
    """§6.6.4: pct=N applies the policy to N% of failing mail; the rest get the next milder
    one (the `dmarc` package parses pct= but does not apply it)."""
    if rng.randrange(100) < max(0, min(100, pct)):
        return requested
    return _MILDER[requested]


def _undecided(
    checker: _DMARC,
    policy: dmarc.Policy,
    spf_verdict: SPFVerdict,
    dkim_verdicts: Sequence[DKIMVerdict],
) -> bool:
    def aligned(domain: str, mode: dmarc.DMARCAlignment) -> bool:
        return checker.check_alignment(policy.domain, domain, mode, checker.publicsuffix)

    if spf_verdict.result == TEMPERROR and aligned(spf_verdict.domain, policy.aspf):
        return True
    return any(v.result == TEMPERROR and aligned(v.domain, policy.adkim) for v in dkim_verdicts)


# ---------------------------------------------------------------------------------------------
# All three for one inbound message


@dataclass(frozen=True, slots=True)
class Verdict:
    spf: SPFVerdict
    dkim: list[DKIMVerdict]
    dmarc: DMARCVerdict
    from_domain: str | None  # None: no From address, or From addresses in several domains

    @property
    def temporary(self) -> bool:
        """Any temperror among them: a retry later may decide differently."""
        return TEMPERROR in (self.spf.result, self.dmarc.result) or any(
            v.result == TEMPERROR for v in self.dkim
        )


async def evaluate(
    resolver: Resolver,
    *,
    ip: str,
    helo: str,
    mail_from: str,
    message: bytes,
    rng: random.Random | None = None,
    offload: Offload | None = None,
) -> Verdict:
    """SPF, every DKIM signature and DMARC for one inbound message; SPF, DKIM and the DMARC
    record lookup run concurrently.

    The author domain is that of the From addresses. RFC 5322 §3.6 requires exactly one From
    field; RFC 7489 §6.6.1 leaves mail without one, or with authors in several domains, to the
    receiver. We give such mail DMARC "permerror" (no policy): nothing to align with, so it can
    never pass DMARC, and the caller decides (e.g. Spam) instead of a policy it cannot name.
    """
    from_domain = _author_domain(_header_section(message))
    discovery = _discover(resolver, from_domain) if from_domain else _no_author()
    spf_verdict, dkim_verdicts, found = await asyncio.gather(
        check_spf(resolver, ip=ip, mail_from=mail_from, helo=helo),
        verify_dkim(message, resolver, offload),
        discovery,
    )
    dmarc_verdict = _judge(
        from_domain or "", found, spf_verdict, dkim_verdicts, await _psl(), rng or _random
    )
    return Verdict(spf_verdict, dkim_verdicts, dmarc_verdict, from_domain)


async def _no_author() -> _Discovered:
    return _Discovered(None, None, "permerror")


def _header_section(message: bytes) -> bytes:
    # Only the header is needed (in CRLF form, as `message` expects it): normalizing the whole
    # of a big message would be wasted work on the event loop.
    if message.startswith((b"\r\n", b"\n")):
        return b""
    end = _BLANK_LINE.search(message)
    return normalize_crlf(message[: end.end()] if end else message)


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def _author_domain(header: bytes) -> str | None:
    domains = {_normal(addr.rpartition("@")[2]) for _, addr in address_list(header, "from")}
    if len(domains) != 1 or "" in domains:
        return None
    return domains.pop()


# ---------------------------------------------------------------------------------------------
# Authentication-Results (RFC 8601)


def authentication_results(hostname: str, verdict: Verdict) -> bytes:
    """One Authentication-Results field naming us, folded one result per line, ending in CRLF."""
    results: list[Any] = [_spf_result(verdict.spf)]
    results += [_dkim_result(v) for v in verdict.dkim] or [
        authres.DKIMAuthenticationResult(result="none")
    ]
    results.append(_dmarc_result(verdict.dmarc))
    header = authres.AuthenticationResultsHeader(authserv_id=hostname, results=results)
    # authres writes one long line; fold it: each result on its own line, and a result too
    # long for one line between its properties (RFC 5322 §2.2.3: 78 characters a line).
    lines = [f"{authres.AuthenticationResultsHeader.HEADER_FIELD_NAME}: {header.authserv_id};"]
    for i, result in enumerate(header.results):
        last = i == len(header.results) - 1
        lines += _fold(_WORD.findall(str(result) + ("" if last else ";")))
    return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")


# A word of a result: quoted strings and comments stay whole.
_WORD = re.compile(r'(?:"(?:[^"\\]|\\.)*"|\((?:[^()\\]|\\.)*\)|[^\s"(])+')


def _fold(words: list[str], width: int = 78) -> list[str]:
    lines = ["\t" + words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append("\t " + word)
    return lines


def _spf_result(v: SPFVerdict) -> Any:
    identity = _pvalue(v.domain) if v.domain else None
    if v.scope == "helo":
        return authres.SPFAuthenticationResult(result=v.result, smtp_helo=identity)
    return authres.SPFAuthenticationResult(result=v.result, smtp_mailfrom=identity)


def _dkim_result(v: DKIMVerdict) -> Any:
    tags = (("d", v.domain), ("s", v.selector), ("a", v.algorithm))
    return authres.DKIMAuthenticationResult(
        result=v.result,
        reason=None if v.result == "pass" else v.reason,
        properties=[
            authres.AuthenticationResultProperty("header", tag, _pvalue(value))
            for tag, value in tags
            if value
        ],
    )


def _dmarc_result(v: DMARCVerdict) -> Any:
    return authres.dmarc.DMARCAuthenticationResult(
        result=v.result,
        result_comment=f"p={v.policy}" if v.policy else None,
        header_from=_pvalue(v.domain) if v.domain else None,
    )


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _pvalue(value: str) -> str:
    """A property value safe to write unquoted: authres leaves any value containing "@"
    unquoted, so a hostile d=, s= or HELO like "x@y;dmarc=pass" would forge a result."""
    return _UNSAFE.sub("?", value)


_FIELD_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")
_AUTHSERV_ID = re.compile(rb'\s*(?:\((?:[^()\\]|\\.)*\)\s*)*("(?:[^"\\]|\\.)*"|[^\s;()"]+)')


def remove_own_authentication_results(header: bytes, hostname: str) -> bytes:
    """`header` without the Authentication-Results fields whose authserv-id is `hostname`
    (RFC 8601 §5: results claiming to be ours that we did not write are forged). Others'
    are kept, and so is everything else, byte for byte."""
    own = hostname.rstrip(".").lower().encode("ascii", "replace")
    return b"".join(f for f in _fields(header) if _authserv_id(f) != own)


def _fields(header: bytes) -> list[bytes]:
    """Header fields with their continuation lines (RFC 5322 §2.2.3)."""
    fields: list[bytes] = []
    for line in _FIELD_LINE.findall(header):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def _authserv_id(field: bytes) -> bytes | None:
    name, colon, value = field.partition(b":")
    if not colon or name.strip().lower() != b"authentication-results":
        return None
    match = _AUTHSERV_ID.match(value.replace(b"\r\n", b"").replace(b"\n", b""))
    if match is None:
        return None
    found = match.group(1)
    if found.startswith(b'"'):
        found = re.sub(rb"\\(.)", rb"\1", found[1:-1])
    return found.rstrip(b".").lower()
