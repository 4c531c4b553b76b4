"""Property-based fuzzing of MIME parsing: ENVELOPE, BODY and BODYSTRUCTURE of any bytes are
syntactically valid IMAP (RFC 3501 §7.4.2, checked by tests/fuzz/targets.py, check_message),
and computing them never raises."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.targets import MESSAGES, MIME_PIECES, check_message

_text = st.one_of(
    st.sampled_from(
        [
            b"Alice <alice@example.com>",
            b'"Bob, Jr." <bob@example.org>, carol@example.net',
            b"Group: a@b.example, c@d.example;",
            b"undisclosed-recipients:;",
            b"=?utf-8?q?Al=C3=AFce?= <a@x>",
            b"=?utf-8?b?w6k=?=",
            b"=?x-unknown?q?junk?=",
            b"<@route:user@host>",
            b"(comment) user@host (more)",
            b"@",
            b"<>",
            b'"unterminated',
            b"a\x00b",
            b"\xff\xfe",
            b"Mon, 7 Feb 1994 21:52:25 -0800",
            b"32 Foo 99999 99:99:99 +9999",
        ]
    ),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")),
)
_header_name = st.sampled_from(
    [
        b"From",
        b"To",
        b"Cc",
        b"Bcc",
        b"Sender",
        b"Reply-To",
        b"Subject",
        b"Date",
        b"Message-ID",
        b"In-Reply-To",
        b"References",
        b"Content-ID",
        b"Content-Description",
        b"Content-MD5",
        b"Content-Disposition",
        b"Content-Language",
        b"Content-Location",
        b"Content-Transfer-Encoding",
        b"X-Junk",
    ]
)
_params = st.lists(
    st.sampled_from(
        [
            b'; charset="utf-8"',
            b"; name*0*=utf-8''r%C3%A9; name*1=port.pdf",
            b"; name*=bogus'xx'%ZZ",
            b"; filename=a.txt",
            b'; a="b\\"c"',
            b"; =x",
            b";;",
            b"; charset=x-unknown",
        ]
    ),
    max_size=3,
).map(b"".join)
_leaf_type = st.sampled_from(
    [b"text/plain", b"text/html", b"application/octet-stream", b"image/png", b"TEXT/Plain", b"x"]
)
_cte = st.sampled_from([b"", b"base64", b"quoted-printable", b"8bit", b"x-uuencode", b"(c) 7bit"])


@st.composite
def headers(draw: st.DrawFn, content_type: bytes) -> bytes:
    lines = [draw(_header_name) + b": " + draw(_text) for _ in range(draw(st.integers(0, 5)))]
    if draw(st.booleans()):
        lines.append(b"Content-Type: " + content_type)
    cte = draw(_cte)
    if cte:
        lines.append(b"Content-Transfer-Encoding: " + cte)
    folded = b"\r\n".join(lines)
    if draw(st.booleans()):
        folded = folded.replace(b"; ", b";\r\n\t")
    return folded + b"\r\n\r\n" if folded else b"\r\n"


_leaf_body = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"SGVsbG8=\r\n", b"caf=C3=A9=\r\nx\r\n", b"====\r\n", b"begin 644\r\n"]),
)


@st.composite
def leaves(draw: st.DrawFn) -> bytes:
    return draw(headers(draw(_leaf_type) + draw(_params))) + draw(_leaf_body)


@st.composite
def multipart(draw: st.DrawFn, children: st.SearchStrategy[bytes]) -> bytes:
    boundary = draw(st.sampled_from([b"b1", b"=_x", b"b1 ", b'"quoted"', b"", b"--"]))
    subtype = draw(st.sampled_from([b"mixed", b"alternative", b"digest", b"related"]))
    head = draw(headers(b"multipart/" + subtype + b"; boundary=" + boundary))
    delimiter = b"--" + boundary.strip(b'" ')
    parts = draw(st.lists(children, max_size=4))
    body = b"preamble\r\n" + b"".join(delimiter + b"\r\n" + p + b"\r\n" for p in parts)
    if draw(st.booleans()):
        body += delimiter + b"--\r\nepilogue"
    return head + body


@st.composite
def encapsulated(draw: st.DrawFn, inner: st.SearchStrategy[bytes]) -> bytes:
    return draw(headers(b"message/rfc822")) + draw(inner)


messages = st.recursive(
    leaves(),
    lambda inner: st.one_of(multipart(inner), encapsulated(inner)),
    max_leaves=12,
)


@given(messages)
def test_generated_mime_trees(message: bytes) -> None:
    check_message(message)


@given(st.sampled_from(MESSAGES), st.data())
def test_real_messages_with_bytes_changed(seed: bytes, data: st.DataObject) -> None:
    message = seed
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(message)))
        cut = data.draw(st.integers(0, 40))
        insert = data.draw(st.one_of(st.sampled_from(MIME_PIECES), st.binary(max_size=8)))
        message = message[:at] + insert + message[at + cut :]
    check_message(message)


@given(st.binary(max_size=400))
@example(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n" * 3000)
@example(b"Content-Type: message/rfc822\r\n\r\n" * 200)
def test_any_bytes(message: bytes) -> None:
    check_message(message)
