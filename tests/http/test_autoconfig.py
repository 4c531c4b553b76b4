"""Mail clients that set themselves up, over real HTTP with no key: Thunderbird's autoconfig and
Outlook's autodiscover name the ports and security the server really listens on, and the login
they advertise works over IMAP and SMTP; the answer tells nothing about whether an address
exists; untrusted autodiscover requests (malformed, oversized, an XML bomb) get a clear 400 or
413, never a 500."""

from __future__ import annotations

import imaplib
import resource
import smtplib
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest

from tests.harness import DOMAIN, Account, Server, client_tls

CONFIG_PATHS = ("/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml")
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
ACTIVESYNC_NS = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    """A client without any key: mail clients fetch these before they have one."""
    with httpx.Client(base_url=server.api_url, timeout=30) as client:
        yield client


def expected(server: Server) -> list[tuple[str, int, bool]]:
    """(protocol, port, TLS from the first byte) of the ports the server listens on, preferred
    first; the settings say 0 (any free port), so these are the ones it got."""
    return [
        ("imap", server.imaps, True),
        ("imap", server.imap, False),
        ("smtp", server.smtps, True),
        ("smtp", server.submission, False),
    ]


def log_in(
    server: Server, protocol: str, port: int, implicit_tls: bool, user: str, key: str
) -> None:
    """Log in as a client set up from the answer would (at 127.0.0.1: the advertised hostname,
    the test server's [server] hostname, is in no DNS)."""
    host = server.host
    if protocol == "imap":
        if implicit_tls:
            imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                host, port, ssl_context=client_tls(), timeout=30
            )
        else:
            imap = imaplib.IMAP4(host, port, timeout=30)
            imap.starttls(ssl_context=client_tls())
        try:
            assert imap.login(user, key)[0] == "OK"
            assert imap.select("INBOX")[0] == "OK"
        finally:
            imap.logout()
    else:
        if implicit_tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, context=client_tls(), timeout=30)
        else:
            smtp = smtplib.SMTP(host, port, timeout=30)
            smtp.starttls(context=client_tls())
        try:
            assert smtp.login(user, key)[0] == 235
        finally:
            smtp.quit()


# -------------------------------------------------------------------- Thunderbird


def thunderbird_servers(provider: ET.Element) -> list[tuple[str, int, bool, str, str, str]]:
    """Each server as Thunderbird reads it: incoming (IMAP), then outgoing (SMTP)."""
    found = []
    for kind, protocol in (("incomingServer", "imap"), ("outgoingServer", "smtp")):
        for element in provider.findall(kind):
            assert element.get("type") == protocol
            socket_type = element.findtext("socketType")
            assert socket_type in ("SSL", "STARTTLS")
            found.append(
                (
                    protocol,
                    int(element.findtext("port") or 0),
                    socket_type == "SSL",
                    element.findtext("hostname") or "",
                    element.findtext("username") or "",
                    element.findtext("authentication") or "",
                )
            )
    return found


def autoconfig(http: httpx.Client, path: str, address: str | None) -> ET.Element:
    params = {} if address is None else {"emailaddress": address}
    answer = http.get(path, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(answer.content)
    assert (root.tag, root.get("version")) == ("clientConfig", "1.1")
    (provider,) = root.findall("emailProvider")
    return provider


def test_thunderbird_autoconfig_names_the_real_ports_and_its_login_works(
    server: Server, account: Account, http: httpx.Client
) -> None:
    hostname = server.settings.server.hostname
    for path in CONFIG_PATHS:
        provider = autoconfig(http, path, account.address)
        assert provider.get("id") == DOMAIN
        assert provider.findtext("domain") == DOMAIN
        assert provider.findtext("displayName")
        # Implicit TLS first (preferred), then STARTTLS; the address is the login name.
        assert thunderbird_servers(provider) == [
            (protocol, port, tls, hostname, account.address, "password-cleartext")
            for protocol, port, tls in expected(server)
        ]
    # Every advertised server takes the advertised login, with the API key as the password.
    for protocol, port, tls, _, username, _ in thunderbird_servers(provider):
        log_in(server, protocol, port, tls, username, account.key)


def test_thunderbird_autoconfig_without_an_address(server: Server, http: httpx.Client) -> None:
    hostname = server.settings.server.hostname
    provider = autoconfig(http, CONFIG_PATHS[0], None)
    assert provider.get("id") == hostname
    # Thunderbird puts in the address the user typed.
    assert {s[4] for s in thunderbird_servers(provider)} == {"%EMAILADDRESS%"}


def test_autoconfig_says_nothing_of_whether_an_address_exists(
    account: Account, http: httpx.Client
) -> None:
    nobody = f"nobody-{uuid.uuid4().hex[:10]}@{DOMAIN}"
    for path in CONFIG_PATHS:
        known = http.get(path, params={"emailaddress": account.address})
        unknown = http.get(path, params={"emailaddress": nobody})
        assert known.status_code == unknown.status_code == 200
        assert unknown.content == known.content.replace(account.address.encode(), nobody.encode())


def test_autoconfig_escapes_the_address_and_refuses_a_malformed_one(http: httpx.Client) -> None:
    # & and ' may stand in an address; they must come back escaped, as the same text.
    odd = "o'neil&co@elsewhere.test"
    provider = autoconfig(http, CONFIG_PATHS[1], odd)
    assert provider.get("id") == "elsewhere.test"
    assert {s[4] for s in thunderbird_servers(provider)} == {odd}

    refused = http.get(CONFIG_PATHS[0], params={"emailaddress": "<b>not@an address"})
    assert refused.status_code == 400
    body = refused.json()
    assert body["name"] == "ValidationError"
    assert body["errors"][0]["path"] == ["emailaddress"]


# -------------------------------------------------------------------- Outlook


def outlook_request(address: str, schema: str = OUTLOOK_NS) -> bytes:
    """What Outlook POSTs."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\r\n'
        f'<Autodiscover xmlns="{REQUEST_NS}">\r\n'
        "  <Request>\r\n"
        f"    <EMailAddress>{address}</EMailAddress>\r\n"
        f"    <AcceptableResponseSchema>{schema}</AcceptableResponseSchema>\r\n"
        "  </Request>\r\n"
        "</Autodiscover>\r\n"
    ).encode()


def outlook_protocols(answer: httpx.Response) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(answer.content)
    assert root.tag == f"{{{RESPONSE_NS}}}Autodiscover"
    (account,) = root.findall(f"{{{OUTLOOK_NS}}}Response/{{{OUTLOOK_NS}}}Account")
    assert account.findtext(f"{{{OUTLOOK_NS}}}AccountType") == "email"
    assert account.findtext(f"{{{OUTLOOK_NS}}}Action") == "settings"
    return [
        {child.tag.removeprefix(f"{{{OUTLOOK_NS}}}"): child.text or "" for child in protocol}
        for protocol in account.findall(f"{{{OUTLOOK_NS}}}Protocol")
    ]


def refusal(answer: httpx.Response, status: int = 400) -> str:
    """The message of an autodiscover error document (Exchange's 600, "Invalid Request")."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(answer.content)
    error = root.find(f"{{{RESPONSE_NS}}}Response/{{{RESPONSE_NS}}}Error")
    assert error is not None, answer.text
    assert error.findtext(f"{{{RESPONSE_NS}}}ErrorCode") == "600"
    return error.findtext(f"{{{RESPONSE_NS}}}Message") or ""


def test_outlook_autodiscover_names_the_real_ports_and_its_login_works(
    server: Server, account: Account, http: httpx.Client
) -> None:
    hostname = server.settings.server.hostname
    for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
        protocols = outlook_protocols(http.post(path, content=outlook_request(account.address)))
        assert [
            (p["Type"], p["Server"], int(p["Port"]), p["SSL"], p["Encryption"]) for p in protocols
        ] == [
            (protocol.upper(), hostname, port, "on" if tls else "off", "SSL" if tls else "TLS")
            for protocol, port, tls in expected(server)
        ]
        for p in protocols:
            assert (p["LoginName"], p["SPA"], p["AuthRequired"]) == (account.address, "off", "on")
            assert p["DomainRequired"] == "off"
    for p in protocols:
        log_in(
            server,
            p["Type"].lower(),
            int(p["Port"]),
            p["Encryption"] == "SSL",
            p["LoginName"],
            account.key,
        )

    # GET, with the address as a parameter, answers the same.
    got = http.get("/autodiscover/autodiscover.xml", params={"emailaddress": account.address})
    assert outlook_protocols(got) == protocols


def test_autodiscover_says_nothing_of_whether_an_address_exists(
    account: Account, http: httpx.Client
) -> None:
    nobody = f"nobody-{uuid.uuid4().hex[:10]}@{DOMAIN}"
    known = http.post("/autodiscover/autodiscover.xml", content=outlook_request(account.address))
    unknown = http.post("/autodiscover/autodiscover.xml", content=outlook_request(nobody))
    assert known.status_code == unknown.status_code == 200
    assert unknown.content == known.content.replace(account.address.encode(), nobody.encode())


def test_malformed_autodiscover_requests_are_400(http: httpx.Client) -> None:
    def post(body: bytes) -> str:
        return refusal(http.post("/autodiscover/autodiscover.xml", content=body))

    assert "not well-formed XML" in post(b"")
    assert "not well-formed XML" in post(b"<Autodiscover><Request>")
    assert "not well-formed XML" in post(b"\xff\xfe\x00garbage")
    assert "<Autodiscover>" in post(b"<Discover><Request/></Discover>")
    assert "<EMailAddress>" in post(
        f'<Autodiscover xmlns="{REQUEST_NS}"><Request/></Autodiscover>'.encode()
    )
    assert "not an address" in post(outlook_request("nobody"))
    assert "ActiveSync" in post(outlook_request(f"a@{DOMAIN}", schema=ACTIVESYNC_NS))
    # An external entity (XXE) is never read: no DTD is accepted at all.
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f'<Autodiscover xmlns="{REQUEST_NS}"><Request><EMailAddress>&x;</EMailAddress>'
        "</Request></Autodiscover>"
    )
    answer = http.post("/autodiscover/autodiscover.xml", content=xxe.encode())
    assert "DTD" in refusal(answer)
    assert "root:" not in answer.text


def billion_laughs(levels: int = 10) -> bytes:
    """10**(levels-1) "lol"s from a few hundred bytes, if a parser expanded the entities."""
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels)
    )
    return (
        f'<?xml version="1.0"?><!DOCTYPE Autodiscover [{entities}]>'
        f'<Autodiscover xmlns="{REQUEST_NS}"><Request>'
        f"<EMailAddress>&lol{levels - 1};</EMailAddress></Request></Autodiscover>"
    ).encode()


def test_an_xml_bomb_is_400_at_once_without_the_memory(
    account: Account, http: httpx.Client
) -> None:
    # The server runs in this process: its peak memory is this process's.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    started = time.monotonic()
    for levels in (4, 10):  # one within libxml2's amplification limit, one far beyond it
        refusal(http.post("/autodiscover/autodiscover.xml", content=billion_laughs(levels)))
    # Expanded, the bomb would be 3 GB and take minutes; refused, it takes milliseconds.
    assert time.monotonic() - started < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 100 * 1024
    # And the server answers the next request as ever.
    ok = http.post("/autodiscover/autodiscover.xml", content=outlook_request(account.address))
    assert ok.status_code == 200


def test_an_oversized_autodiscover_request_is_413_unread(http: httpx.Client) -> None:
    padding = b" " * 20000  # an autodiscover request is a few hundred bytes
    message = refusal(
        http.post("/autodiscover/autodiscover.xml", content=outlook_request("a@b.test") + padding),
        413,
    )
    assert "larger than 16384 bytes" in message

    # Without a Content-Length (chunked), counted as it arrives.
    def chunks() -> Iterator[bytes]:
        yield outlook_request("a@b.test")
        for _ in range(100):
            yield padding

    refusal(http.post("/autodiscover/autodiscover.xml", content=chunks()), 413)


def test_the_set_up_documents_need_no_key_and_are_in_the_api_docs(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert set(CONFIG_PATHS) | {"/autodiscover/autodiscover.xml"} <= set(paths)
    for path in CONFIG_PATHS:
        assert "security" not in paths[path]["get"]
