"""Personal data out of the model's sight: typed placeholders for phone numbers, email addresses,
payment card numbers, IBANs and an agent's own patterns (Agent.pii_redaction, pii_patterns).

Detection works offline: card numbers must pass the Luhn check and IBANs their checksum
(python-stdnum), so an order number is not mistaken for either; phone numbers are found by
Google's libphonenumber (`phonenumbers`), local ones in the contact's own country. The stored
messages keep the original text: only what the model reads, and what the agent sends, is redacted.
"""

import re
from collections import Counter
from collections.abc import Callable

import phonenumbers
from stdnum import iban, luhn

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
IBAN_CANDIDATE = re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b")
CARD_CANDIDATE = re.compile(r"(?<![\d+-])\d(?:[ -]?\d){12,18}(?![\d-])")


def _checked(pattern: re.Pattern, valid: Callable[[str], bool]) -> Callable[[str], list[tuple[int, int]]]:
    def find(text: str) -> list[tuple[int, int]]:
        return [m.span() for m in pattern.finditer(text) if valid(re.sub(r"[ -]", "", m.group()))]

    return find


def _phones(region: str | None) -> Callable[[str], list[tuple[int, int]]]:
    def find(text: str) -> list[tuple[int, int]]:
        matcher = phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
        return [(match.start, match.end) for match in matcher]

    return find


def region_of(phone: str) -> str | None:
    """The contact's country ("DE" for +49…), so local numbers they type are recognised too."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone or "", None)) or None
    except phonenumbers.NumberParseException:
        return None


def redact(text: str, *, region: str | None = None, patterns: list[dict] | None = None) -> tuple[str, Counter]:
    """`text` with personal data replaced by [EMAIL], [IBAN], [CARD], [PHONE] or [<NAME>] for an
    agent pattern {"name", "pattern"}; and how many of each were replaced. Emails go first (their
    digits are not phone numbers), cards before phones (a card number can look like one)."""
    finders = [("EMAIL", _checked(EMAIL, lambda _: True)), ("IBAN", _checked(IBAN_CANDIDATE, iban.is_valid)),
               ("CARD", _checked(CARD_CANDIDATE, luhn.is_valid)), ("PHONE", _phones(region))]
    for custom in patterns or []:
        finders.append((_label(custom["name"]), _checked(re.compile(custom["pattern"]), lambda _: True)))
    counts: Counter = Counter()
    for label, find in finders:
        spans = find(text)
        for start, end in sorted(spans, reverse=True):
            text = text[:start] + f"[{label}]" + text[end:]
        counts.update({label: len(spans)} if spans else {})
    return text, counts


def _label(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") or "PRIVATE"


def pattern_problem(pattern: object) -> str:
    """Why an agent's custom pattern cannot be used, in words; '' when it can."""
    if not isinstance(pattern, dict) or set(pattern) != {"name", "pattern"}:
        return 'Each pattern is {"name": ..., "pattern": ...}.'
    if not isinstance(pattern["name"], str) or not pattern["name"].strip():
        return "Each pattern needs a name, used in its placeholder."
    try:
        compiled = re.compile(pattern["pattern"])
    except (re.error, TypeError) as error:
        return f"The pattern {str(pattern['pattern'])[:60]!r} is not a valid regular expression: {error}."
    if compiled.match(""):
        return f"The pattern {pattern['pattern'][:60]!r} matches empty text; it would redact nothing useful."
    return ""
