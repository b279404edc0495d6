"""Person identifiers kept out of what people and machines read: one masking rule for all.

A person number (``psn_no``), an identity document number (``mdtrt_cert_no``, an 18-
character resident ID) or a mobile phone number may reach free text we did not write: a
province's failure message, an exception's text, a constraint's message. Every place
that shows or writes text (problem details, log lines, the console's pages) passes it
through :func:`masked_text`; where we write a person number into a message ourselves we
mask it with :func:`masked_number` at once. Names are never written into messages.

The rule is the one common in Chinese practice for ID numbers on receipts and screens:
the first and last four characters stay (enough to tell two of one's own apart on a
call), the rest become ``*``; a phone number keeps its first three and last four digits.
"""

from __future__ import annotations

import re

__all__ = ["masked_name", "masked_number", "masked_phone", "masked_text", "unmasked_numbers"]

_VISIBLE = 4
#: A person or identity number inside free text: 15 to 20 digits (an old 15-digit ID, an
#: 18-character resident ID with its check character, a 20-digit person number).
_PERSON_NUMBER = re.compile(r"(?<![0-9A-Za-z])[0-9]{15,20}[Xx]?(?![0-9A-Za-z])")
#: A mainland mobile number, with or without +86.
_PHONE = re.compile(r"(?<![0-9A-Za-z+])(?:\+?86[- ]?)?1[3-9][0-9]{9}(?![0-9A-Za-z])")


def masked_number(number: str) -> str:
    """The first and last four characters; every one of a short number is hidden."""
    if len(number) <= 2 * _VISIBLE:
        return "*" * len(number)
    return number[:_VISIBLE] + "*" * (len(number) - 2 * _VISIBLE) + number[-_VISIBLE:]


def masked_phone(phone: str) -> str:
    """A mobile number with its middle four digits hidden (``138****5678``)."""
    digits = phone[-11:]
    return phone[:-11] + digits[:3] + "****" + digits[-4:]


def masked_name(name: str) -> str:
    """A name's first character only (``王**``), for the rare page that must show one."""
    return name[:1] + "*" * (len(name) - 1) if name else ""


def masked_text(text: str | None) -> str:
    """Free text with every person, identity or phone number in it masked."""
    if not text:
        return ""
    text = _PERSON_NUMBER.sub(lambda found: masked_number(found.group()), text)
    return _PHONE.sub(lambda found: masked_phone(found.group()), text)


def unmasked_numbers(text: str) -> list[str]:
    """Every person, identity or phone number in ``text`` that is not masked (for scans)."""
    return [m.group() for m in _PERSON_NUMBER.finditer(text)] + [
        m.group() for m in _PHONE.finditer(text)
    ]
