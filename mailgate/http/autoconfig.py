"""Mail clients that set themselves up: Thunderbird's autoconfig and Outlook's autodiscover, each
answered with the IMAP and submission ports this node really listens on
(`Services.client_ports`) at `[server] hostname`, TLS from the first byte before STARTTLS
(RFC 8314), and the address itself as the login name (mailgate logins are the inbox address and
an API key as the password).

Clients fetch these before they have credentials, so no key is asked for. The answer is the same
for every address: the store is not asked, so it never tells whether an address (or a domain)
exists.

- Thunderbird: GET /mail/config-v1.1.xml (fetched at autoconfig.DOMAIN) and
  /.well-known/autoconfig/mail/config-v1.1.xml (at DOMAIN), `?emailaddress=ADDRESS`, answered in
  the clientConfig v1.1 format (wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).
- Outlook: POST /autodiscover/autodiscover.xml (at autodiscover.DOMAIN or DOMAIN) with the "POX"
  request naming the address, answered with the Outlook response schema ([MS-OXDSCLI]); GET
  answers the same, with the address (if any) from `?emailaddress=`. The request body is
  untrusted XML: it is read up to `MAX_REQUEST` bytes and parsed without a DTD, without
  entities and without the network; what cannot be read is answered with an autodiscover error
  document (400, or 413 when too large), never a 500.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request, Response
from lxml import etree

from mailgate.delivery.domains import ClientPort
from mailgate.http.context import Services, ServicesDep
from mailgate.http.errors import Invalid
from mailgate.mime.addresses import InvalidAddress, domain_of, normalize_address

router = APIRouter(tags=["client set-up"])

# ------------------------------------------------------------------ Thunderbird

CONFIG_PATHS = ("/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml")
# Thunderbird's words: how a connection is secured, and a password sent inside it as it is.
SOCKET_TYPE = {True: "SSL", False: "STARTTLS"}
PASSWORD = "password-cleartext"
# Thunderbird puts the address the user typed in its place.
ANY_ADDRESS = "%EMAILADDRESS%"


class XMLResponse(Response):
    media_type = "application/xml"


async def config_v11(services: ServicesDep, emailaddress: str | None = None) -> XMLResponse:
    """Thunderbird's autoconfig: the servers, ports and security to use for `emailaddress`."""
    address = _valid(emailaddress) if emailaddress is not None else None
    if address is None:
        domain, username = services.settings.server.hostname, ANY_ADDRESS
    else:
        domain, username = domain_of(address), address
    hostname = services.settings.server.hostname
    return XMLResponse(client_config(domain, hostname, services.client_ports, username))


def client_config(domain: str, hostname: str, ports: Iterable[ClientPort], username: str) -> bytes:
    root = etree.Element("clientConfig", version="1.1")
    provider = _child(root, "emailProvider", id=domain)
    _child(provider, "domain", domain)
    _child(provider, "displayName", f"{domain} (mailgate at {hostname})")
    _child(provider, "displayShortName", domain)
    for port in ports:
        kind = "incomingServer" if port.protocol == "imap" else "outgoingServer"
        server = _child(provider, kind, type=port.protocol)
        _child(server, "hostname", hostname)
        _child(server, "port", str(port.port))
        _child(server, "socketType", SOCKET_TYPE[port.implicit_tls])
        _child(server, "username", username)
        _child(server, "authentication", PASSWORD)
    return _document(root)


def _valid(address: str) -> str:
    try:
        return normalize_address(address)
    except InvalidAddress as exc:
        raise Invalid.field("emailaddress", str(exc)) from None


for path in CONFIG_PATHS:
    router.add_api_route(path, config_v11, methods=["GET"], response_class=XMLResponse)

# ------------------------------------------------------------------ Outlook

# Outlook asks in any case; these are the spellings clients are seen to use.
AUTODISCOVER_PATHS = (
    "/autodiscover/autodiscover.xml",
    "/Autodiscover/Autodiscover.xml",
    "/AutoDiscover/AutoDiscover.xml",
)
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
# Outlook's words: "SSL" is TLS from the first byte, "TLS" is STARTTLS. Clients that predate
# <Encryption> read <SSL>, where "on" means TLS from the first byte: so it is "off" for STARTTLS.
ENCRYPTION = {True: "SSL", False: "TLS"}
ON_OFF = {True: "on", False: "off"}
# An autodiscover request is a few hundred bytes; nothing longer is read.
MAX_REQUEST = 16384
# Exchange's "Invalid Request", which Outlook knows.
INVALID_REQUEST = "600"

# No DTD is loaded, no entity replaced, nothing fetched: the billion laughs and external
# entities (XXE) have nothing to work with; libxml2's own limits stay on (no huge_tree).
_PARSER = etree.XMLParser(
    resolve_entities=False,
    load_dtd=False,
    no_network=True,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


class TextXMLResponse(Response):
    media_type = "text/xml"  # as Exchange answers


class Refused(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def autodiscover_post(request: Request, services: ServicesDep) -> TextXMLResponse:
    """Outlook's autodiscover: the servers, ports and security for the address the request
    names."""
    try:
        address = requested_address(await _read(request))
    except Refused as refused:
        return TextXMLResponse(error_document(refused.message), status_code=refused.status)
    return _account(services, address)


async def autodiscover_get(
    services: ServicesDep, emailaddress: str | None = None
) -> TextXMLResponse:
    """Autodiscover without a request body: for `emailaddress` if given."""
    if emailaddress is None:
        return _account(services, None)
    try:
        address = normalize_address(emailaddress)
    except InvalidAddress as exc:
        return TextXMLResponse(error_document(str(exc)), status_code=400)
    return _account(services, address)


def _account(services: Services, address: str | None) -> TextXMLResponse:
    hostname = services.settings.server.hostname
    return TextXMLResponse(account_document(hostname, services.client_ports, address))


async def _read(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST:
        raise Refused(_too_large(), 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST:
            raise Refused(_too_large(), 413)  # uvicorn reads and drops the rest
    return bytes(body)


def _too_large() -> str:
    return f"the request is larger than {MAX_REQUEST} bytes"


def requested_address(body: bytes) -> str:
    """The address an autodiscover request names, or Refused saying what is wrong with it."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise Refused(f"the request is not well-formed XML: {exc.msg}") from None
    if root.getroottree().docinfo.doctype:
        raise Refused("a request with a DTD (<!DOCTYPE>) is not accepted")
    # Elements are matched in any namespace: clients differ, and the name is what matters.
    if etree.QName(root).localname != "Autodiscover":
        raise Refused("the request is not an <Autodiscover> request")
    schema = root.findtext("{*}Request/{*}AcceptableResponseSchema")
    if schema is not None and schema.strip() != OUTLOOK_NS:
        raise Refused(
            f"only the response schema {OUTLOOK_NS} is answered: mailgate serves IMAP and "
            "SMTP, not Exchange ActiveSync"
        )
    address = root.findtext("{*}Request/{*}EMailAddress")
    if not address or not address.strip():
        raise Refused("the request names no <EMailAddress>")
    try:
        return normalize_address(address)
    except InvalidAddress as exc:
        raise Refused(str(exc)) from None


def account_document(hostname: str, ports: Iterable[ClientPort], address: str | None) -> bytes:
    root = etree.Element(f"{{{RESPONSE_NS}}}Autodiscover", nsmap={None: RESPONSE_NS})
    response = etree.SubElement(root, f"{{{OUTLOOK_NS}}}Response", nsmap={None: OUTLOOK_NS})
    account = _child(response, "Account")
    _child(account, "AccountType", "email")
    _child(account, "Action", "settings")
    for port in ports:
        protocol = _child(account, "Protocol")
        _child(protocol, "Type", port.protocol.upper())
        _child(protocol, "Server", hostname)
        _child(protocol, "Port", str(port.port))
        _child(protocol, "DomainRequired", "off")
        if address is not None:
            _child(protocol, "LoginName", address)
        _child(protocol, "SPA", "off")  # a password, not NTLM
        _child(protocol, "SSL", ON_OFF[port.implicit_tls])
        _child(protocol, "Encryption", ENCRYPTION[port.implicit_tls])
        _child(protocol, "AuthRequired", "on")
    return _document(root)


def error_document(message: str) -> bytes:
    root = etree.Element(f"{{{RESPONSE_NS}}}Autodiscover", nsmap={None: RESPONSE_NS})
    error = _child(_child(root, "Response"), "Error")
    _child(error, "ErrorCode", INVALID_REQUEST)
    _child(error, "Message", message)
    _child(error, "DebugData")
    return _document(root)


for path in AUTODISCOVER_PATHS:
    canonical = path == AUTODISCOVER_PATHS[0]
    for method, endpoint in (("POST", autodiscover_post), ("GET", autodiscover_get)):
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            response_class=TextXMLResponse,
            include_in_schema=canonical,
        )

# ------------------------------------------------------------------ XML


def _child(parent: Any, tag: str, text: str | None = None, **attributes: str) -> Any:
    """A new element under `parent`, in its namespace; lxml escapes text and attributes."""
    namespace = etree.QName(parent).namespace
    element = etree.SubElement(parent, f"{{{namespace}}}{tag}" if namespace else tag, attributes)
    element.text = text
    return element


def _document(root: Any) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
