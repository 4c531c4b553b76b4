"""The text of an attachment, for a reader that cannot open files: PDF, DOCX, text and HTML.

``extract_text`` takes an attachment's declared type, its filename and its decoded bytes and
gives back what text it can, with a note saying why there is none (a scanned or encrypted
PDF, a file that could not be read, a type it does not read). What kind of file it is comes
from the content type; a missing or unknown one (application/octet-stream) falls back to the
bytes (``%PDF-``; a zip holding word/document.xml) and then to the filename's extension.

Input is untrusted: nothing here raises on malformed bytes (any failure of a parser is a
note), and the work is bounded. The text returned is at most ``limit`` characters; a PDF is
read page by page until that much text, MAX_PDF_PAGES pages or MAX_PDF_SECONDS (and pypdf
parses at most PDF_STREAM_TOKENS of any one page, else that page could not be read); a DOCX
whose parts would unpack to more than MAX_DOCX_XML (its document.xml) or MAX_DOCX_TOTAL octets
is refused before it is unpacked; text and HTML are read from a prefix of the bytes.

Bounded is not cheap: pypdf is pure Python, some 2 ms a page of text (a 1.3 MB PDF of 250 pages
0.6 s whole, 0.12 s to the default limit), and a hostile PDF can hold it for MAX_PDF_SECONDS
and a second more. Callers on the event
loop use ``extract_text_async``, which runs anything over ASYNC_THRESHOLD octets in a worker
thread (asyncio.to_thread); that thread runs to completion even if its caller is cancelled.
"""

from __future__ import annotations

import asyncio
import codecs
import io
import logging
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mailgate.mime.apiview import html_to_text
from mailgate.mime.decoding import decode_text
from mailgate.mime.parts import mime_value

__all__ = [
    "ASYNC_THRESHOLD",
    "DEFAULT_LIMIT",
    "MAX_DOCX_TOTAL",
    "MAX_DOCX_XML",
    "MAX_PDF_PAGES",
    "MAX_PDF_SECONDS",
    "PDF_STREAM_TOKENS",
    "Extracted",
    "extract_text",
    "extract_text_async",
]

DEFAULT_LIMIT = 200_000  # characters of text returned
MAX_PDF_PAGES = 1_000  # pages read; the rest are left unread
MAX_PDF_SECONDS = 10.0  # checked between pages: no page is started after this much time
PDF_STREAM_TOKENS = 500_000  # parsed of one content stream, about a second's work
# Uncompressed sizes, as the zip's directory declares them (zipfile reads no more than that
# of a member). python-docx unpacks every part it reaches and parses each that [Content_Types]
# calls XML, whatever its name, whole: at some six times its size in memory (48 MB of
# document.xml took 310 MB, in 0.9 s). So the total is capped too, not only document.xml.
MAX_DOCX_XML = 20 * 1024 * 1024
MAX_DOCX_TOTAL = 32 * 1024 * 1024
MAX_DOCX_MEMBERS = 10_000
# HTML read: markup (and inline images) can far outweigh the text a reader sees.
MAX_HTML_BYTES = 8 * 1024 * 1024
ASYNC_THRESHOLD = 64 * 1024  # octets: smaller inputs are read on the caller's thread

# pypdf logs a warning for each flaw it works around; hostile input would fill the log.
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True, slots=True)
class Extracted:
    """What could be read of an attachment.

    ``text`` is None when nothing could (``note`` says why), else at most the limit of
    characters, with "\\n" line ends; ``truncated`` says there was more than it holds.
    """

    text: str | None
    kind: str  # "pdf", "docx", "text", "html" or "unsupported"
    truncated: bool = False
    note: str | None = None


# ---------------------------------------------------------------------------------------------
# What kind of file it is

_PDF_TYPES = frozenset({"application/pdf", "application/x-pdf", "application/acrobat"})
_DOCX_TYPES = frozenset({"application/vnd.openxmlformats-officedocument.wordprocessingml.document"})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-yaml",
        "application/yaml",
        "application/x-sh",
        "application/sql",
        "application/csv",
    }
)
_EXTENSIONS = {
    "pdf": "pdf",
    "docx": "docx",
    "htm": "html",
    "html": "html",
    "xhtml": "html",
    **dict.fromkeys(
        (
            *("txt", "text", "md", "markdown", "rst", "log", "csv", "tsv", "json", "xml"),
            *("yaml", "yml", "ini", "cfg", "conf", "toml", "ics", "vcf", "diff", "patch"),
            *("py", "js", "c", "h", "cpp", "java", "go", "rs", "rb", "sh", "sql"),
        ),
        "text",
    ),
}


def _by_type(mime_type: str) -> str | None:
    if mime_type in _PDF_TYPES:
        return "pdf"
    if mime_type in _DOCX_TYPES:
        return "docx"
    if mime_type in _HTML_TYPES:
        return "html"
    if mime_type.startswith("text/") or mime_type in _TEXT_TYPES:
        return "text"
    if mime_type.endswith(("+xml", "+json")):
        return "text"
    return None


def _is_docx_zip(data: bytes) -> bool:
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.getinfo("word/document.xml")
    except Exception:  # not a zip after all, or no such member
        return False
    return True


def _by_content(data: bytes) -> str | None:
    # A PDF reader accepts the header anywhere in the first 1024 octets.
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if _is_docx_zip(data):
        return "docx"
    return None


def _by_filename(filename: str | None) -> str | None:
    if not filename or "." not in filename:
        return None
    return _EXTENSIONS.get(filename.rpartition(".")[2].strip().lower())


def _content_type(content_type: str | None) -> tuple[str, str | None]:
    """("type/subtype" lower-cased, or "" when there is none; the charset parameter)."""
    if not content_type:
        return "", None
    main, params = mime_value(content_type.encode("utf-8", "replace"))
    charset = next((v for k, v in params if k.lower() == b"charset"), None)
    return (
        main.decode("ascii", "replace").strip().lower(),
        charset.decode("ascii", "replace").strip() if charset else None,
    )


# ---------------------------------------------------------------------------------------------
# Text and HTML


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM starts it
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


def _decode(data: bytes, charset: str | None, *, whole: bool, html: bool = False) -> str:
    """Text in its declared charset; else by its byte order mark, an HTML meta charset, UTF-8
    if it is valid UTF-8, and Windows-1252 (Latin-1's superset) if not. Unless `whole`, `data`
    is a prefix that may end mid-character."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(name, "replace")
    if charset is None and html:
        m = _META_CHARSET.search(data[:4096])
        charset = m.group(1).decode("ascii") if m else None
    if charset:
        return decode_text(data, charset)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:  # not final: a character cut off at the end of a prefix is no reason to give up
        text = decoder.decode(data, final=False)
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")
    return text + "\ufffd" if whole and decoder.getstate()[0] else text


def _capped(text: str, limit: int, more: bool) -> tuple[str, bool]:
    if len(text) > limit:
        return text[:limit], True
    return text, more


def _read_text(data: bytes, charset: str | None, limit: int) -> Extracted:
    # No character takes more than 4 octets: this prefix holds `limit` whole characters.
    prefix = data[: 4 * limit + 4]
    more = len(prefix) < len(data)
    text, truncated = _capped(_clean(_decode(prefix, charset, whole=not more)), limit, more)
    return Extracted(text, "text", truncated)


def _read_html(data: bytes, charset: str | None, limit: int) -> Extracted:
    prefix = data[:MAX_HTML_BYTES]
    more = len(prefix) < len(data)
    text = _clean(html_to_text(_decode(prefix, charset, whole=not more, html=True)))
    text, truncated = _capped(text, limit, more)
    return Extracted(text, "html", truncated)


# ---------------------------------------------------------------------------------------------
# PDF


def _has_image(page: Any) -> bool:
    """Whether the page draws an image XObject (a scan does); a bad entry counts as none."""
    try:
        xobjects = page["/Resources"].get_object().get("/XObject")
        if xobjects is None:
            return False
        return any(
            x.get_object().get("/Subtype") == "/Image" for x in xobjects.get_object().values()
        )
    except Exception:
        return False


def _reason(exc: BaseException) -> str:
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return reason[:200]


def _read_pdf(data: bytes, limit: int) -> Extracted:
    # Imported on first use: pypdf and python-docx take a tenth of a second to import, which
    # every start of mailgate would pay.
    from pypdf import apply_configuration

    # pypdf's own bounds, tightened where text extraction needs less: the tokens parsed of one
    # content stream (pypdf's 2,000,000 cost some four seconds a page; a dense page of text
    # has some tens of thousands), and no jbig2dec process started for an image.
    with apply_configuration(
        stream_parsing_work_maximum_count=PDF_STREAM_TOKENS, jbig2dec_binary=None
    ):
        return _read_pdf_pages(data, limit)


def _read_pdf_pages(data: bytes, limit: int) -> Extracted:
    from pypdf import PasswordType, PdfReader

    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        # Many PDFs are encrypted only against editing: their user password is empty.
        try:
            opened = reader.decrypt("") != PasswordType.NOT_DECRYPTED
        except Exception:
            opened = False
        if not opened:
            return Extracted(None, "pdf", note="encrypted PDF")
    pages = reader.pages
    total = len(pages)
    if total == 0:
        return Extracted(None, "pdf", note="PDF without pages")
    deadline = time.monotonic() + MAX_PDF_SECONDS
    out: list[str] = []
    length = 0
    read = 0
    textless = 0  # pages without text that draw an image
    failed: list[str] = []  # why each page that could not be read could not
    for page in pages:
        if read >= MAX_PDF_PAGES or length > limit or (read and time.monotonic() > deadline):
            break
        read += 1
        try:
            text = _clean(page.extract_text()).strip()
        except Exception as exc:  # one bad page spoils neither the pages before nor after it
            failed.append(_reason(exc))
            continue
        if not text:
            textless += _has_image(page)
            continue
        out.append(text)
        length += len(text) + 2
    text = "\n\n".join(out)
    if not text:
        if failed:
            note = f"could not be read: {failed[0]}"
        elif read < total:
            note = f"no text in the first {read} of {total} pages"
        elif textless:
            note = "scanned PDF: no text layer"
        else:
            note = "PDF without text"
        return Extracted(None, "pdf", read < total, note)
    notes = []
    if read < total:
        notes.append(f"read the first {read} of {total} pages")
    if textless:
        notes.append(f"{textless} of {read} pages are images without text (scanned)")
    if failed:
        notes.append(f"{len(failed)} of {read} pages could not be read: {failed[0]}")
    text, truncated = _capped(text, limit, read < total)
    return Extracted(text, "pdf", truncated, "; ".join(notes) or None)


# ---------------------------------------------------------------------------------------------
# DOCX


def _docx_refusal(data: bytes) -> str | None:
    """Why this zip is not unpacked, or None: sizes as its directory declares them."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
    if len(infos) > MAX_DOCX_MEMBERS:
        return f"too many parts ({len(infos)})"
    document = next((i for i in infos if i.filename == "word/document.xml"), None)
    if document is None:
        return "no word/document.xml"
    if document.file_size > MAX_DOCX_XML:
        return f"word/document.xml unpacks to {document.file_size} octets (limit {MAX_DOCX_XML})"
    total = sum(i.file_size for i in infos)
    if total > MAX_DOCX_TOTAL:
        return f"unpacks to {total} octets (limit {MAX_DOCX_TOTAL})"
    return None


_MAX_TABLE_DEPTH = 10


def _docx_blocks(container: Any, depth: int = 0) -> Iterator[str]:
    """The text of each paragraph and table row, in document order: a row's cells joined by
    tabs, the paragraphs of a cell (and the rows of a table in it) by " / "."""
    from docx.table import Table, _Cell

    for block in container.iter_inner_content():
        if not isinstance(block, Table):
            yield block.text
            continue
        if depth >= _MAX_TABLE_DEPTH:
            continue
        for row in block.rows:
            # The row's own cells, not Row.cells: that repeats a cell for each grid column it
            # spans (a hostile gridSpan is a count of billions) and for each row it is merged
            # down into. A cell merged into the one above it is empty here.
            yield "\t".join(
                ""
                if tc.vMerge == "continue"
                else " / ".join(t for t in _docx_blocks(_Cell(tc, block), depth + 1) if t.strip())
                for tc in row._tr.tc_lst
            )


def _read_docx(data: bytes, limit: int) -> Extracted:
    import docx

    refusal = _docx_refusal(data)
    if refusal is not None:
        return Extracted(None, "docx", note=f"refused: {refusal}")
    document = docx.Document(io.BytesIO(data))
    out: list[str] = []
    length = 0
    more = False
    for block in _docx_blocks(document):
        if length > limit:
            more = True
            break
        block = _clean(block)
        out.append(block)
        length += len(block) + 1
    text = "\n".join(out).strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    text, truncated = _capped(text, limit, more)
    return Extracted(text, "docx", truncated, None if text else "DOCX without text")


# ---------------------------------------------------------------------------------------------


def extract_text(
    content_type: str | None,
    filename: str | None,
    data: bytes,
    *,
    limit: int = DEFAULT_LIMIT,
) -> Extracted:
    """The text of an attachment: its content type ("application/pdf", parameters allowed),
    its filename, and its decoded bytes. At most `limit` characters; never raises on any
    `data`. CPU-bound for large inputs: on an event loop, use extract_text_async."""
    if limit < 1:
        raise ValueError("limit must be positive")
    mime_type, charset = _content_type(content_type)
    kind = _by_type(mime_type) or _by_content(data) or _by_filename(filename)
    if kind is None:
        return Extracted(None, "unsupported", note=f"unsupported type: {mime_type or 'unknown'}")
    try:
        if kind == "pdf":
            return _read_pdf(data, limit)
        if kind == "docx":
            return _read_docx(data, limit)
        if kind == "html":
            return _read_html(data, charset, limit)
        return _read_text(data, charset, limit)
    except Exception as exc:  # a parser's failure on hostile input is the file's, not ours
        return Extracted(None, kind, note=f"could not be read: {_reason(exc)}")


async def extract_text_async(
    content_type: str | None,
    filename: str | None,
    data: bytes,
    *,
    limit: int = DEFAULT_LIMIT,
) -> Extracted:
    """extract_text, in a worker thread when `data` is over ASYNC_THRESHOLD octets so that the
    event loop goes on meanwhile."""
    if len(data) <= ASYNC_THRESHOLD:
        return extract_text(content_type, filename, data, limit=limit)
    return await asyncio.to_thread(extract_text, content_type, filename, data, limit=limit)
