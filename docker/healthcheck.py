"""The image's HEALTHCHECK: exits 0 while this node's GET /healthz answers 200 (its store
answers), 1 on a 503, an error or no answer within 4 seconds.

It asks where `mailgate serve` listens, from the settings serve reads ($MAILGATE_CONFIG and the
MAILGATE_* variables): [server] bind (loopback when that is every address, "0.0.0.0" or "::"),
[api] port, and HTTPS when [api] tls is set, without checking the certificate (it may be
self-signed, or name another host). So a node bound to one address, as with `--network host`,
is checked there. The slim image has no curl: Python's urllib asks, past any HTTP_PROXY (Docker
gives containers the client's proxy settings).
"""

import ipaddress
import ssl
import sys
import urllib.request

from mailgate.config import load


def url() -> str:
    settings = load()
    host = settings.server.bind
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name
        pass
    else:
        if address.is_unspecified:
            address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
        host = f"[{address}]" if address.version == 6 else str(address)
    scheme = "https" if settings.api.tls else "http"
    return f"{scheme}://{host}:{settings.api.port}/healthz"


def main() -> int:
    target = url()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=ssl._create_unverified_context()),
    )
    try:
        with opener.open(target, timeout=4) as answer:
            answer.read()
    except Exception as exc:  # a 503 (HTTPError) too
        print(f"{target}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
