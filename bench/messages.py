"""The messages the phases send: submissions of a given size, and realistic ones for a
mailbox a client syncs."""

from __future__ import annotations

import base64
import datetime
import email.policy
import random
import re
import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from common import DOMAIN

_WORDS = (  # noqa: SIM905
    "agent invoice meeting report quarterly update please review attached draft schedule "
    "server deploy customer request ticket status follow up tomorrow thanks regards budget "
    "contract release notes migration database backup weekly summary action items"
).split()
_NAMES = (  # noqa: SIM905
    "Alice Martin|Bob Chen|Carol Diaz|Dan Okafor|Eve Novak|Frank Muller|Grace Kim|Heidi Larsen|"
    "Ivan Petrov|Judy Rossi|Mallory Smith|Niaj Patel|Olivia Brown|Peggy Wong|Rupert Klein"
).split("|")
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()  # noqa: SIM905


def _text(rng: random.Random, size: int) -> str:
    """Wrapped prose of about `size` bytes."""
    lines: list[str] = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(11)).capitalize() + "."
        lines.append(line)
        total += len(line) + 2
    return "\r\n".join(lines)


def submission_message(
    sender: str, recipient: str, n: int, size: int = 2048, subject: str = "bench message"
) -> bytes:
    rng = random.Random(n)
    head = (
        f"From: {sender}\r\nTo: {recipient}\r\nSubject: {subject} {n}\r\n"
        f"Date: {format_datetime(datetime.datetime.now(datetime.UTC))}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@{DOMAIN}>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    return (head + _text(rng, size - len(head)) + "\r\n").encode()


def api_text(n: int, size: int = 1800) -> str:
    """The text of an API send: with the headers the server adds, about the size of a
    `submission_message`, so that API and SMTP figures compare."""
    return _text(random.Random(n), size) + "\r\n"


def _person(rng: random.Random) -> tuple[str, str]:
    name = rng.choice(_NAMES)
    local = name.lower().replace(" ", ".")
    domain = rng.choice(("example.com", "example.org", "corp.example.net", DOMAIN))
    return name, f"{local}@{domain}"


def archive_message(rng: random.Random, n: int, owner: str) -> tuple[bytes, str, str]:
    """A realistic ~3 KB message, its APPEND flags and its INTERNALDATE."""
    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        minutes=n * 37 + rng.randint(0, 30)
    )
    name, address = _person(rng)
    subject = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 8))).capitalize()
    headers = [
        f"Return-Path: <{address}>",
        f"Received: from mx.example.com (mx.example.com [192.0.2.{n % 250 + 1}]) by "
        f"localhost with ESMTPS id {rng.getrandbits(48):012x}; {format_datetime(when)}",
        f'From: "{name}" <{address}>',
        f"To: {owner}",
    ]
    if rng.random() < 0.3:
        cc_name, cc = _person(rng)
        headers.append(f'Cc: "{cc_name}" <{cc}>, {_person(rng)[1]}')
    headers += [
        f"Subject: {'Re: ' if n % 4 == 1 else ''}{subject} #{n}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: <{n}.{rng.getrandbits(64):016x}@example.com>",
    ]
    if n % 4 == 1:
        parent = f"<{n - 1}.{rng.getrandbits(64):016x}@example.com>"
        headers += [f"In-Reply-To: {parent}", f"References: {parent}"]
    headers.append("MIME-Version: 1.0")
    kind = n % 10
    if kind in (3, 7):  # multipart/alternative: text and HTML
        boundary = f"alt-{rng.getrandbits(64):016x}"
        text = _text(rng, 900)
        html = "<html><body><p>" + _text(rng, 1000).replace("\r\n", "</p>\r\n<p>") + "</p>"
        body = (
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 7bit\r\n\r\n{text}\r\n"
            f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 7bit\r\n\r\n{html}</body></html>\r\n--{boundary}--\r\n"
        )
        headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    elif kind == 5:  # multipart/mixed with a small attachment
        boundary = f"mix-{rng.getrandbits(64):016x}"
        blob = base64.encodebytes(rng.randbytes(900)).decode().replace("\n", "\r\n")
        body = (
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{_text(rng, 1200)}\r\n"
            f'--{boundary}\r\nContent-Type: application/pdf; name="report-{n}.pdf"\r\n'
            f'Content-Disposition: attachment; filename="report-{n}.pdf"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{blob}--{boundary}--\r\n"
        )
        headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
    else:
        headers += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 7bit"]
        body = _text(rng, 2300) + "\r\n"
    data = ("\r\n".join(headers) + "\r\n\r\n" + body).encode()
    flags = []
    if rng.random() < 0.8:
        flags.append("\\Seen")
    if rng.random() < 0.05:
        flags.append("\\Flagged")
    if rng.random() < 0.1:
        flags.append("\\Answered")
    date = f"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year} {when:%H:%M:%S} +0000"
    return data, " ".join(flags), date


def shares(total: int, clients: int) -> list[list[int]]:
    """Message numbers for each client: `total` in all, spread as evenly as they go."""
    return [
        [i * 10**6 + j for j in range(total // clients + (1 if i < total % clients else 0))]
        for i in range(clients)
    ]


def varied_message(rng: random.Random, n: int, owner: str) -> bytes:
    """A message of one of a dozen MIME shapes mail clients meet (plain, quoted-printable and
    8-bit Latin-1 bodies, encoded-word headers, alternative, related, mixed with attachments,
    a forwarded message/rfc822, a multipart/signed, groups and long folded address lists),
    for imaptest's stress mode to APPEND and check part by part."""
    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        minutes=n * 41 + rng.randint(0, 40)
    )
    name, address = _person(rng)
    subject = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 9))).capitalize()
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Return-Path"] = f"<{address}>"
    msg["From"] = Address(name, addr_spec=address)
    kind = n % 12
    if kind == 4:
        msg["To"] = "undisclosed-recipients:;"
        msg["Bcc"] = owner
    elif kind == 9:  # a long list, folded
        msg["To"] = ", ".join([owner, *(_person(rng)[1] for _ in range(rng.randint(8, 20)))])
    else:
        msg["To"] = owner
    if rng.random() < 0.3:
        people = (_person(rng) for _ in range(rng.randint(1, 3)))
        msg["Cc"] = ", ".join(str(Address(cc_name, addr_spec=cc)) for cc_name, cc in people)
    if kind == 2:
        msg["Subject"] = f"Ré: {subject} — überprüft ✓ #{n}"  # an encoded word
    else:
        msg["Subject"] = f"{'Re: ' if n % 5 == 1 else ''}{subject} #{n}"
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{n}.{rng.getrandbits(64):016x}@example.com>"
    if n % 5 == 1:
        parent = f"<{n - 1}.{rng.getrandbits(64):016x}@example.com>"
        msg["In-Reply-To"] = parent
        msg["References"] = parent
    text = _text(rng, rng.choice((200, 900, 2300, 6000))).replace("\r\n", "\n") + "\n"
    html = "<html><body><p>" + text.replace("\n", "</p>\n<p>") + "</p></body></html>\n"
    if kind == 0:
        msg.set_content(text)
    elif kind == 1:  # quoted-printable, with non-ASCII
        msg.set_content("Grüße aus Köln, ça va? " + text, cte="quoted-printable")
    elif kind == 2:
        msg.set_content(text, subtype="plain", charset="utf-8", cte="base64")
    elif kind == 3:
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
    elif kind == 5:
        msg.set_content(text)
        msg.add_attachment(
            rng.randbytes(rng.choice((700, 4000, 20000))),
            maintype="application",
            subtype="pdf",
            filename=f"report-{n}.pdf",
        )
    elif kind == 6:  # related HTML with an inline image, as an alternative to text
        msg.set_content(text)
        msg.add_alternative(html.replace("</body>", '<img src="cid:logo"></body>'), subtype="html")
        msg.get_payload()[1].add_related(
            rng.randbytes(1500), maintype="image", subtype="png", cid="<logo>"
        )
    elif kind == 7:  # a forwarded message, itself multipart
        inner = EmailMessage(policy=email.policy.SMTP)
        inner_name, inner_address = _person(rng)
        inner["From"] = Address(inner_name, addr_spec=inner_address)
        inner["To"] = address
        inner["Subject"] = f"Original: {subject}"
        inner["Date"] = format_datetime(when - datetime.timedelta(days=2))
        inner["Message-ID"] = f"<inner.{n}@example.org>"
        inner.set_content(text)
        inner.add_alternative(html, subtype="html")
        msg.set_content("See the message below.\n")
        msg.add_attachment(inner)
    elif kind == 8:  # Latin-1, 8-bit
        msg.set_content("Caf\xe9 cr\xe8me, na\xefve fa\xe7ade.\n" + text, charset="iso-8859-1")
        del msg["Content-Transfer-Encoding"]
        msg["Content-Transfer-Encoding"] = "8bit"
    elif kind == 10:  # signed: the signature a part of its own
        msg.set_content(text)
        msg.add_attachment(
            b"-----BEGIN PGP SIGNATURE-----\n" + base64.encodebytes(rng.randbytes(300)),
            maintype="application",
            subtype="pgp-signature",
            filename="signature.asc",
        )
        msg.replace_header("Content-Type", msg.get_content_type())
        msg.set_type("multipart/signed")
        msg.set_param("protocol", "application/pgp-signature")
        msg.set_param("micalg", "pgp-sha256")
    else:  # kind 4, 9, 11: mixed, a text and two attachments
        msg.set_content(text)
        msg.add_attachment(text.encode(), maintype="text", subtype="csv", filename="data.csv")
        msg.add_attachment(
            rng.randbytes(3000), maintype="application", subtype="zip", filename="files.zip"
        )
    return msg.as_bytes()


def write_mbox(path: Path, count: int, owner: str, seed: int = 1993) -> int:
    """An mbox of `count` varied messages (LF line ends, ">From " quoted); its size in bytes."""
    rng = random.Random(seed)
    with path.open("wb") as out:
        for n in range(count):
            data = varied_message(rng, n, owner).replace(b"\r\n", b"\n")
            body = re.sub(rb"^(>*From )", rb">\1", data, flags=re.MULTILINE)
            out.write(b"From sender@example.com Thu Jan  1 00:00:00 2026\n" + body + b"\n")
        return out.tell()
