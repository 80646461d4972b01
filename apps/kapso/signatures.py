"""Kapso webhook signatures: lowercase hex HMAC-SHA256 of the exact body bytes (docs/kapso.md §4.2)."""

import hashlib
import hmac


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_is_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check. A missing secret fails closed. A `sha256=` prefix is tolerated:
    Kapso is not documented to send one, but its own receivers accept it."""
    if not secret or not header:
        return False
    candidate = header.strip()
    if candidate.lower().startswith("sha256="):
        candidate = candidate[7:]
    return hmac.compare_digest(candidate.lower().encode(), sign(secret, body).encode())
