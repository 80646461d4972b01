"""Text out of what operators give: files (PDF, DOCX, Markdown, plain text) and web pages; and
that text cut into passages small enough to hand a model a few of them. `document_text` also reads
the PDFs and Word files contacts send (apps/agents/media.py), capped there."""

import io
import re
from html.parser import HTMLParser

CHUNK_CHARACTERS = 1200
MAX_CHUNKS_PER_SOURCE = 2000
FILE_TYPES = {".pdf": "pdf", ".docx": "docx", ".md": "text", ".markdown": "text", ".txt": "text"}
DOCUMENT_KINDS = {"pdf", "docx"}  # read by document_text


class ExtractError(ValueError):
    """A file or page whose text cannot be read; the message says why, for the operator."""


def file_text(filename: str, data: bytes) -> str:
    kind = FILE_TYPES.get(_suffix(filename))
    if kind is None:
        raise ExtractError("Upload a PDF, DOCX, Markdown (.md) or plain text (.txt) file.")
    try:
        if kind in DOCUMENT_KINDS:
            text = document_text(kind, data)
            if kind == "pdf" and not text:
                raise ExtractError("The PDF has no text layer (a scan?); paste its text instead.")
            return text
        return data.decode("utf-8-sig")
    except ExtractError:
        raise
    except UnicodeDecodeError:
        raise ExtractError("The file is not UTF-8 text.") from None
    except Exception as error:  # noqa: BLE001 - parsers raise many kinds of errors on broken files
        raise ExtractError(f"The file could not be read ({error.__class__.__name__}); is it damaged?") from None


def _suffix(filename: str) -> str:
    return "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


def document_text(kind: str, data: bytes, limit: int | None = None) -> str:
    """The text of a PDF or Word file (`kind` "pdf" or "docx"), pages and paragraphs a blank line
    apart; "" when it has none. With `limit`: at most that many characters, and a PDF's pages are read
    only until there are that many (a 500-page PDF needs no more than the cap). Parsers raise on
    damaged files."""
    if kind == "pdf":
        from pypdf import PdfReader

        parts, total = [], 0
        for page in PdfReader(io.BytesIO(data)).pages:
            parts.append(page.extract_text() or "")
            total += len(parts[-1])
            if limit is not None and total > limit:
                break
    elif kind == "docx":
        import docx

        parts = [paragraph.text for paragraph in docx.Document(io.BytesIO(data)).paragraphs]
    else:
        raise ValueError(f"not a document kind: {kind!r}")
    text = "\n\n".join(parts).strip()
    return text if limit is None else text[:limit]


class _PageText(HTMLParser):
    """The readable text of an HTML page: no scripts, styles or navigation; blocks on their own lines."""

    SKIP = {"script", "style", "noscript", "template", "svg", "nav", "head"}
    BLOCKS = {"p", "div", "section", "article", "li", "br", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "pre",
              "blockquote", "dd", "dt"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data) -> None:
        if self._in_title:
            self.title += data
        elif not self._skipping:
            self.parts.append(data)


def html_text(html: str) -> tuple[str, str]:
    """(title, text) of an HTML page."""
    parser = _PageText()
    parser.feed(html)
    parser.close()
    return " ".join(parser.title.split()), "".join(parser.parts)


def chunk_text(text: str, size: int = CHUNK_CHARACTERS) -> list[str]:
    """Passages of about `size` characters, cut between paragraphs, else between sentences, else
    between words, so a passage reads on its own."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    pieces = [piece for p in paragraphs if p for piece in _split_long(p, size)]
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + len(piece) + 2 <= size:
            chunks[-1] += "\n\n" + piece
        else:
            chunks.append(piece)
    if len(chunks) > MAX_CHUNKS_PER_SOURCE:
        raise ExtractError(f"The text is too long (more than {MAX_CHUNKS_PER_SOURCE} passages); split it up.")
    return chunks


def _split_long(paragraph: str, size: int) -> list[str]:
    if len(paragraph) <= size:
        return [paragraph]
    out, current = [], ""
    for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
        while len(sentence) > size:  # one enormous "sentence": cut between words
            cut = sentence.rfind(" ", 0, size)
            cut = cut if cut > 0 else size
            out, current = (out + [current] if current else out), ""
            out.append(sentence[:cut])
            sentence = sentence[cut:].strip()
        if current and len(current) + len(sentence) + 1 > size:
            out.append(current)
            current = ""
        current = f"{current} {sentence}".strip()
    return out + ([current] if current else [])
