"""Small real files for the media tests: a PDF with a line of text, a Word document, a PNG."""

import base64
import io


def pdf_with_text(text: str) -> bytes:
    """A one-page PDF whose content stream draws `text` (what a PDF reader extracts)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.4\n")
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def docx_with_text(*paragraphs: str) -> bytes:
    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


# A 1×1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
# A 200×160 picture of a shelf: a photo an operator sends, big enough to see in a screenshot.
SHELF_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAMgAAACgCAIAAADGnbT+AAAB0UlEQVR42u3coRGAMBBFwWsomjbSAW1QBHVGx8Qj4jHcHGZnXgOE"
    "VV9crDmk9MITCCyBJbAksASWwJLAElgCK72rt5c8fU1//QWwwAJLYIEFFlhggSWwwAILLLDAElhggQUWWGAJLLDAAgsssAQWWGCB"
    "BRZYAgsssMACCyyBBRZYYIEFlsACCyywwAJLYIEFFlhggSWwdvd5qCCwBBZYYIEFFlgCCyywwAILLIFlIDWQggUWWAILLLDAAgss"
    "gQUWWGCBBZbAAgsssMACS2CBBRZYYIElsMACCyywwBJYYIEFFlhgCSywwAILLLAEFlhggQUWWAILLLDAAgssgQUWWGCBBZbAAgss"
    "sMACS2CBBVbxJ7ln7GoyWGCBJbAEFlhggSWwBBZYYBlIZXkXWGCBBZbAElhggQWWwBJYYIEFFlhgCSywwAILLLAEFlhggQUWWAIL"
    "LLDAAgssgQUWWGCBBZbAAgsssMACS2CBBRZYYIElsMACCyywwBJYYIEFFlhgCSywwAILLFeT5WoyWGCBBRZYAgsssMACCyyBBRZY"
    "BlIDKVgCCyywwAILLIEFFlhggQWWwAILLLDAAktggQWWBJbAElgSWAJLYElgCSyBJX3rAWgyb0vpqScBAAAAAElFTkSuQmCC"
)
