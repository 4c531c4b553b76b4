"""mailgate.mime.extract: the text of PDF, DOCX, text and HTML attachments, and its bounds.

PDFs are written by hand (object by object, with a correct cross-reference table) so that each
test knows what is in them; DOCX files are written by python-docx, and the zip bombs by zipfile.
"""

from __future__ import annotations

import asyncio
import io
import random
import struct
import threading
import time
import zipfile
import zlib

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from mailgate.mime import extract
from mailgate.mime.extract import (
    ASYNC_THRESHOLD,
    DEFAULT_LIMIT,
    MAX_DOCX_XML,
    Extracted,
    extract_text,
    extract_text_async,
)
from tests.documents import pdf_of, pdf_stream, pdf_string, text_pdf
from tests.mime.helpers import mutate

SENTENCE = "A known sentence."
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


# ---------------------------------------------------------------------------------------------
# Writing PDFs


def scanned_pdf() -> bytes:
    """One page that draws a (tiny grey) image and no text, as a scanner writes it."""
    return pdf_of(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R"
            b" /Resources << /XObject << /Im1 4 0 R >> >> >>",
            pdf_stream(
                b"\x00\x80\x80\x00",
                b"/Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray"
                b" /BitsPerComponent 8 ",
            ),
            pdf_stream(b"q 468 0 0 648 72 72 cm /Im1 Do Q"),
        ]
    )


def encrypted_pdf(user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf(SENTENCE))))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Writing DOCX files


def sample_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Quarterly notes", level=1)
    document.add_paragraph(SENTENCE)
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([("Name", "Amount"), ("Widgets", "42")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("After the table.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _zip(members: dict[str, bytes], big: tuple[str, int] | None = None) -> bytes:
    """A zip of `members`, plus one of `big[1]` spaces written in 1 MiB pieces."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if big is not None:
            with archive.open(big[0], "w") as member:
                for _ in range(big[1] // (1 << 20)):
                    member.write(b" " * (1 << 20))
    return out.getvalue()


CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="xml" ContentType="application/xml"/></Types>'
)


# ---------------------------------------------------------------------------------------------
# PDF


def test_a_pdf_gives_its_text() -> None:
    got = extract_text(PDF, "report.pdf", text_pdf(SENTENCE))
    assert got == Extracted(SENTENCE, "pdf", False, None)


def test_a_pdf_gives_every_page_in_order() -> None:
    got = extract_text(PDF, None, text_pdf("First page.\nIts second line.", "Second page."))
    assert got.text is not None
    assert got.text.split("\n") == ["First page.", "Its second line.", "", "Second page."]
    assert not got.truncated


def test_a_scanned_pdf_says_it_has_no_text_layer() -> None:
    got = extract_text(PDF, "scan.pdf", scanned_pdf())
    assert got == Extracted(None, "pdf", False, "scanned PDF: no text layer")


def test_a_pdf_with_some_scanned_pages_names_them() -> None:
    writer = PdfWriter()
    for data in (text_pdf(SENTENCE), scanned_pdf()):
        writer.append(PdfReader(io.BytesIO(data)))
    out = io.BytesIO()
    writer.write(out)
    got = extract_text(PDF, None, out.getvalue())
    assert got.text == SENTENCE
    assert got.note == "1 of 2 pages are images without text (scanned)"


def test_a_truncated_pdf_is_a_note_not_an_exception() -> None:
    data = text_pdf(SENTENCE)
    for cut in (len(data) // 2, 40, 9):
        got = extract_text(PDF, None, data[:cut])
        assert got.kind == "pdf"
        assert got.text is None
        assert got.note is not None
        assert got.note.startswith(("could not be read: ", "PDF without"))


def test_garbage_declared_as_pdf_could_not_be_read() -> None:
    got = extract_text(PDF, "x.pdf", b"this is not a PDF at all")
    assert got.text is None
    assert got.note is not None
    assert got.note.startswith("could not be read: ")


def test_an_encrypted_pdf_says_so() -> None:
    assert extract_text(PDF, None, encrypted_pdf("secret")) == Extracted(
        None, "pdf", False, "encrypted PDF"
    )


def test_a_pdf_encrypted_only_against_editing_is_read() -> None:
    # An empty user password: any reader opens it.
    assert extract_text(PDF, None, encrypted_pdf("")).text == SENTENCE


def test_a_pdf_of_ten_thousand_pages_stops_at_the_limit() -> None:
    data = text_pdf(*(f"This is page {n}." for n in range(1, 10_001)))
    got = extract_text(PDF, None, data, limit=1000)
    assert got.truncated
    assert got.text is not None
    assert len(got.text) == 1000
    assert got.text.startswith("This is page 1.\n\nThis is page 2.")
    assert got.note is not None
    assert got.note.startswith("read the first ")
    assert got.note.endswith(" of 10000 pages")


def test_a_pdf_stops_after_max_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract, "MAX_PDF_PAGES", 20)
    got = extract_text(PDF, None, text_pdf(*(f"Page {n}." for n in range(1, 101))))
    assert got.truncated
    assert got.note == "read the first 20 of 100 pages"
    assert got.text is not None
    assert got.text.endswith("Page 20.")


def test_a_pdf_stops_when_its_time_is_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract, "MAX_PDF_SECONDS", 0.0)
    got = extract_text(PDF, None, text_pdf(*(f"Page {n}." for n in range(1, 101))))
    assert got.truncated
    assert got.text == "Page 1."  # the first page is always read
    assert got.note == "read the first 1 of 100 pages"


def token_bomb_pdf(operators: int, then: str | None = None) -> bytes:
    """A first page whose small compressed content stream is `operators` text operators; and
    a second page of text `then`."""
    content = b"BT /F1 12 Tf 72 712 Td " + b"(x) Tj " * operators + b"ET"
    pages = [(zlib.compress(content), b"/Filter /FlateDecode ")]
    if then is not None:
        pages.append((b"BT /F1 12 Tf 72 712 Td " + pdf_string(then) + b" Tj ET", b""))
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, (data, entries) in enumerate(pages):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
            b" /Resources << /Font << /F1 3 0 R >> >> >>" % (5 + 2 * i)
        )
        objects.append(pdf_stream(data, entries))
    return pdf_of(objects)


def test_a_page_of_millions_of_operators_is_given_up_on() -> None:
    # Given up at the token limit (the note names it), not read to its end: no clock asserted.
    data = token_bomb_pdf(5_000_000)
    assert len(data) < 100_000
    got = extract_text(PDF, None, data)
    assert got.text is None
    assert got.note is not None
    assert got.note.startswith("could not be read: LimitReachedError")


def test_a_page_that_cannot_be_read_spoils_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract, "PDF_STREAM_TOKENS", 1000)
    got = extract_text(PDF, None, token_bomb_pdf(2000, then=SENTENCE))
    assert got.text == SENTENCE
    assert got.note is not None
    assert got.note.startswith("1 of 2 pages could not be read: LimitReachedError")


def test_mangled_pdfs_never_raise() -> None:
    rng = random.Random(18)
    seeds = [text_pdf(SENTENCE, "Second page."), scanned_pdf(), encrypted_pdf("")]
    for _ in range(150):
        data = mutate(rng, rng.choice(seeds))
        try:
            got = extract_text(PDF, None, data, limit=200)
        except Exception as exc:  # pragma: no cover - report the input that failed
            raise AssertionError(f"failed on {data!r}") from exc
        assert got.kind == "pdf"
        assert got.text is None or len(got.text) <= 200
        assert got.text is not None or got.note


# ---------------------------------------------------------------------------------------------
# DOCX


def test_a_docx_gives_its_paragraphs_and_tables_in_order() -> None:
    got = extract_text(DOCX, "notes.docx", sample_docx())
    assert got == Extracted(
        f"Quarterly notes\n{SENTENCE}\nName\tAmount\nWidgets\t42\nAfter the table.", "docx"
    )


def test_a_docx_table_gives_each_cell_once() -> None:
    document = docx.Document()
    table = document.add_table(rows=3, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Wide"  # spans two columns
    table.cell(0, 2).text = "Right"
    table.cell(1, 0).merge(table.cell(2, 0)).text = "Tall"  # spans two rows
    table.cell(1, 1).text = "B"
    table.cell(2, 2).text = "C"
    out = io.BytesIO()
    document.save(out)
    got = extract_text(DOCX, None, out.getvalue())
    assert got.text == "Wide\tRight\nTall\tB\t\n\t\tC"


def test_a_docx_cell_claiming_a_billion_columns_costs_nothing() -> None:
    document = docx.Document()
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "Left"
    table.cell(0, 1).text = "Right"
    out = io.BytesIO()
    document.save(out)
    with zipfile.ZipFile(out) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    xml = members["word/document.xml"]
    assert xml.count(b"<w:tcPr>") == 2
    members["word/document.xml"] = xml.replace(
        b"<w:tcPr>", b'<w:tcPr><w:gridSpan w:val="1000000000"/>', 1
    )
    start = time.monotonic()
    got = extract_text(DOCX, None, _zip(members))
    assert time.monotonic() - start < 1
    assert got.text == "Left\tRight"


def test_a_docx_is_truncated_at_the_limit() -> None:
    document = docx.Document()
    for n in range(200):
        document.add_paragraph(f"Paragraph number {n}.")
    out = io.BytesIO()
    document.save(out)
    got = extract_text(DOCX, None, out.getvalue(), limit=50)
    assert got.truncated
    assert got.text == "\n".join(f"Paragraph number {n}." for n in range(200))[:50]


def test_a_docx_zip_bomb_is_refused_before_it_is_unpacked() -> None:
    size = MAX_DOCX_XML + (4 << 20)
    bomb = _zip({"[Content_Types].xml": CONTENT_TYPES}, ("word/document.xml", size))
    assert len(bomb) < size // 500  # spaces compress a thousandfold
    start = time.monotonic()
    got = extract_text(DOCX, "bomb.docx", bomb)
    assert time.monotonic() - start < 1
    assert got.text is None
    assert got.note == (
        f"refused: word/document.xml unpacks to {size} octets (limit {MAX_DOCX_XML})"
    )


def test_a_docx_whose_parts_unpack_too_big_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract, "MAX_DOCX_TOTAL", 100_000)
    with zipfile.ZipFile(io.BytesIO(sample_docx())) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    data = _zip({**members, "word/media/image1.png": b"\x00" * 200_000})
    got = extract_text(DOCX, None, data)
    assert got.text is None
    assert got.note is not None
    assert got.note.startswith("refused: unpacks to ")
    assert got.note.endswith(" octets (limit 100000)")


def test_a_docx_whose_directory_lies_about_sizes_could_not_be_read() -> None:
    """zipfile unpacks no more of a member than the directory declares, so a directory that
    understates it is caught by the checksum, not believed."""
    size = 8 << 20
    data = bytearray(_zip({"[Content_Types].xml": CONTENT_TYPES}, ("word/document.xml", size)))
    declared = struct.pack("<I", size)
    assert data.count(declared) == 2  # the local header's and the directory's
    data[:] = data.replace(declared, struct.pack("<I", 1000))
    start = time.monotonic()
    got = extract_text(DOCX, None, bytes(data))
    assert time.monotonic() - start < 1
    assert got.text is None
    assert got.note is not None
    assert got.note.startswith("could not be read: ")


def test_a_zip_that_is_not_a_docx_could_not_be_read() -> None:
    got = extract_text(DOCX, None, _zip({"hello.txt": b"hi"}))
    assert got == Extracted(None, "docx", False, "refused: no word/document.xml")


def test_mangled_docx_files_never_raise() -> None:
    rng = random.Random(4)
    seed = sample_docx()
    for _ in range(100):
        data = mutate(rng, seed)
        got = extract_text(DOCX, None, data)
        assert got.kind == "docx"
        assert got.text is not None or got.note


# ---------------------------------------------------------------------------------------------
# Text and HTML


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("text/plain; charset=iso-8859-1", "Caf\u00e9 cr\u00e8me\r\n".encode("latin-1")),
        ("text/plain; charset=utf-8", "Caf\u00e9 cr\u00e8me\r\n".encode()),
        ("text/plain", "Caf\u00e9 cr\u00e8me\r\n".encode()),  # valid UTF-8 is UTF-8
        ("text/plain", "Caf\u00e9 cr\u00e8me\r\n".encode("latin-1")),  # else Windows-1252
        ("text/plain", "\ufeffCaf\u00e9 cr\u00e8me\r\n".encode()),  # a BOM is dropped
        ("text/plain", "\ufeffCaf\u00e9 cr\u00e8me\r\n".encode("utf-16-le")),
        (
            'text/plain; charset="ISO-8859-1"; format=flowed',
            "Caf\u00e9 cr\u00e8me\n".encode("cp1252"),
        ),
        ("TEXT/CSV", "Caf\u00e9 cr\u00e8me\n".encode()),
        (None, "Caf\u00e9 cr\u00e8me\n".encode()),  # by its filename, below
    ],
)
def test_text_is_decoded_by_its_charset(content_type: str | None, data: bytes) -> None:
    assert extract_text(content_type, "menu.txt", data) == Extracted(
        "Caf\u00e9 cr\u00e8me\n", "text"
    )


def test_text_is_truncated_at_the_limit() -> None:
    assert extract_text("text/plain", None, b"x" * 100, limit=100) == Extracted("x" * 100, "text")
    assert extract_text("text/plain", None, b"x" * 101, limit=100) == Extracted(
        "x" * 100, "text", truncated=True
    )
    # A character is never cut: the prefix read holds whole ones.
    got = extract_text("text/plain", None, "\U0001f600".encode() * 1000, limit=10)
    assert got == Extracted("\U0001f600" * 10, "text", truncated=True)


def test_a_huge_text_is_read_only_as_far_as_the_limit() -> None:
    start = time.monotonic()
    got = extract_text("text/plain", None, b"word " * (20 << 20), limit=DEFAULT_LIMIT)
    assert time.monotonic() - start < 1
    assert got.truncated
    assert got.text is not None
    assert len(got.text) == DEFAULT_LIMIT


def test_utf8_cut_off_at_its_end_is_still_utf8() -> None:
    data = "Caf\u00e9 \u20ac".encode()[:-1]
    assert extract_text("text/plain", None, data).text == "Caf\u00e9 \ufffd"


def test_nul_does_not_survive() -> None:
    assert extract_text("text/plain", None, b"a\x00b").text == "a\ufffdb"


def test_html_is_read_as_a_reader_sees_it() -> None:
    html = (
        b"<html><head><title>Not shown</title><style>p { color: red }</style></head>"
        b"<body><h1>Menu</h1><p>Caf\xc3\xa9 &amp; <b>cr\xc3\xa8me</b></p><p>Second</p>"
        b"</body></html>"
    )
    got = extract_text("text/html; charset=utf-8", "menu.html", html)
    assert got == Extracted("Menu\n\nCaf\u00e9 & cr\u00e8me\n\nSecond", "html")


def test_html_names_its_charset_in_a_meta_element() -> None:
    html = b'<meta charset="windows-1252"><p>Caf\xe9</p>'
    assert extract_text("text/html", None, html).text == "Caf\u00e9"


def test_html_is_truncated_at_the_limit() -> None:
    got = extract_text("text/html", None, b"<p>" + b"y" * 50 + b"</p>", limit=10)
    assert got == Extracted("y" * 10, "html", truncated=True)


# ---------------------------------------------------------------------------------------------
# What kind of file: type, then content, then filename


def test_an_image_is_unsupported() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    assert extract_text("image/png", "photo.png", png) == Extracted(
        None, "unsupported", False, "unsupported type: image/png"
    )
    assert extract_text(None, None, png).note == "unsupported type: unknown"


@pytest.mark.parametrize("content_type", [None, "", "application/octet-stream", "binary/x"])
def test_an_unlabelled_file_is_known_by_its_bytes(content_type: str | None) -> None:
    assert extract_text(content_type, "x.bin", text_pdf(SENTENCE)).kind == "pdf"
    assert extract_text(content_type, "x.bin", text_pdf(SENTENCE)).text == SENTENCE
    assert extract_text(content_type, "download", sample_docx()).kind == "docx"
    assert extract_text(content_type, "page.HTML", b"<p>Hi</p>").text == "Hi"
    assert extract_text(content_type, "notes.md", b"# Hi").kind == "text"
    assert extract_text(content_type, "data.zip", _zip({"a.txt": b"a"})).kind == "unsupported"


def test_the_declared_type_wins_over_the_filename() -> None:
    assert extract_text("text/plain", "report.pdf", b"%PDF-1.4 not really").kind == "text"
    assert extract_text("application/json", None, b'{"a": 1}').text == '{"a": 1}'
    assert extract_text("image/svg+xml", None, b"<svg/>").kind == "text"


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        extract_text("text/plain", None, b"x", limit=0)


# ---------------------------------------------------------------------------------------------
# On an event loop


def test_extract_text_async_runs_large_inputs_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[int] = []
    real = extract.extract_text

    def spy(*args: object, **kwargs: object) -> Extracted:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(extract, "extract_text", spy)

    async def both() -> tuple[Extracted, Extracted]:
        small = await extract_text_async("text/plain", None, b"small")
        large = await extract_text_async("text/plain", None, b"L" * (ASYNC_THRESHOLD + 1), limit=5)
        return small, large

    small, large = asyncio.run(both())
    loop_thread = threading.get_ident()  # asyncio.run runs the loop on this thread
    assert small == Extracted("small", "text")
    assert large == Extracted("LLLLL", "text", truncated=True)
    assert threads[0] == loop_thread
    assert threads[1] != loop_thread
