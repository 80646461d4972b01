"""whatsapp.sendMedia: an image, document, audio or video by URL to the current contact."""

from urllib.parse import urlsplit

from .base import PendingSend, Tool, ToolContext, ToolError
from .send import send_check

KINDS = ("image", "document", "audio", "video")
MAX_CAPTION = 1024  # WhatsApp's limit for image, video and document captions
MAX_FILENAME = 240


def send_media(context: ToolContext, arguments: dict) -> dict:
    kind, url, caption = arguments.get("type"), arguments.get("url"), arguments.get("caption") or ""
    if kind not in KINDS:
        raise ToolError(f"`type` must be one of: {', '.join(KINDS)}")
    if not isinstance(url, str) or urlsplit(url).scheme != "https" or not urlsplit(url).hostname:
        raise ToolError("`url` must be a public https:// link to the file")
    if not isinstance(caption, str) or len(caption) > MAX_CAPTION:
        raise ToolError(f"`caption` must be a text of at most {MAX_CAPTION} characters")
    if caption and kind == "audio":
        raise ToolError("WhatsApp shows no caption on audio; leave `caption` out")
    send_check(context, context.thread)
    media = {"link": url, **({"caption": caption.strip()} if caption.strip() else {})}
    filename = arguments.get("filename")
    if kind == "document" and isinstance(filename, str) and filename.strip():
        media["filename"] = filename.strip()[:MAX_FILENAME]
    label = {"image": "Image", "document": "Document", "audio": "Audio", "video": "Video"}[kind]
    text = f"[{label}{': ' + media['filename'] if 'filename' in media else ''}] {caption.strip()}".strip()
    context.pending_sends.append(PendingSend(thread=context.thread, text=text, payload={"type": kind, kind: media}))
    return {"queued": True, "type": kind}


TOOL = Tool(
    name="whatsapp.sendMedia",
    description=(
        "Send an image, document, audio or video to the current contact by its https URL, with an optional "
        "caption. Refused outside the 24-hour window."
    ),
    parameters={
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": list(KINDS)},
            "url": {"type": "string", "description": "A public https:// link to the file."},
            "caption": {"type": "string", "description": "Optional text under the image, video or document."},
            "filename": {"type": "string", "description": "Optional file name shown for a document."},
        },
        "required": ["type", "url"],
        "additionalProperties": False,
    },
    func=send_media,
)
