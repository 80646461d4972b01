"""Splitting long replies: WhatsApp text bodies are limited to 4,096 characters."""

import re

WHATSAPP_TEXT_LIMIT = 4096
_SENTENCE_END = re.compile(r"[.!?…](?=\s)|\n")


def split_text(text: str, limit: int = WHATSAPP_TEXT_LIMIT) -> list[str]:
    """Chunks of at most `limit` characters, cut after a paragraph or sentence where one falls in
    the second half of the chunk, else at a space, else (one huge word) hard at the limit."""
    text = text.strip()
    chunks: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = _last_sentence_end(window, minimum=limit // 2)
        if cut is None:
            space = window.rfind(" ")
            cut = space if space >= limit // 2 else limit
        chunks.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        chunks.append(text)
    return chunks


def _last_sentence_end(window: str, minimum: int) -> int | None:
    paragraph = window.rfind("\n\n")
    if paragraph >= minimum:
        return paragraph
    ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() >= minimum]
    return ends[-1] if ends else None
