"""Exact conversion between integer fen (in code) and yuan (on the national wire).

Money in medpay is integer fen; the national profile (DOMAIN.md section 8, "以元为单位")
carries yuan with at most two decimals, as a JSON string ``"123.45"`` or a JSON number
``123.45``. The conversion never rounds: anything that is not exactly a whole number
of fen is refused with :class:`YuanError`, and so are negative amounts, NaN and
Infinity, exponent notation (``1e3``), booleans and Python floats. The upper bound is
the wire's today: ``10**13`` fen (:data:`FEN_MAX`, as ``medpay.wire.national.Fen``).

JSON numbers must be decoded as :class:`decimal.Decimal`, never as float (0.1 has no
exact binary form): :func:`json_decoder` builds a msgspec decoder with
``float_hook=Decimal``. A Struct field typed :class:`YuanFen` is an ``int`` of fen in
code and yuan on the wire; the hooks here convert it, and :func:`json_encoder` writes
it as a string (``"123.45"``, the default) or as a number::

    class FeeUpload(msgspec.Struct):
        feeSumamt: YuanFen

    json_decoder(FeeUpload).decode(b'{"feeSumamt": 0.1}').feeSumamt == 10
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

import msgspec

__all__ = [
    "FEN_MAX",
    "YuanError",
    "YuanFen",
    "dec_hook",
    "enc_hook",
    "fen_to_decimal",
    "fen_to_yuan",
    "json_decoder",
    "json_encoder",
    "yuan_to_fen",
]

#: The largest amount the wire carries, in fen (100 billion yuan).
FEN_MAX: Final = 10**13

# Plain decimal yuan: no sign, no leading zeros, at most two places, ASCII digits only.
_YUAN = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]{1,2}))?", re.ASCII)
_TEXT_MAX: Final = 32  # far more than the 15 characters FEN_MAX needs

T = TypeVar("T")


class YuanError(ValueError):
    """An amount is not an exact, non-negative yuan value within the wire's bound."""


def _check_fen(fen: object) -> int:
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise YuanError(f"fen must be an int, got {type(fen).__name__}")
    if fen < 0:
        raise YuanError(f"negative amount: {fen} fen")
    if fen > FEN_MAX:
        raise YuanError(f"amount {fen} fen exceeds the wire's bound of {FEN_MAX} fen")
    return fen


def fen_to_yuan(fen: int) -> str:
    """``fen`` as yuan with exactly two decimals: 12345 -> ``"123.45"``, 5 -> ``"0.05"``.

    Raises:
        YuanError: not an int, negative, or above :data:`FEN_MAX`.
    """
    value = _check_fen(fen)
    return f"{value // 100}.{value % 100:02d}"


def fen_to_decimal(fen: int) -> Decimal:
    """``fen`` as a two-place Decimal: 12345 -> ``Decimal("123.45")``.

    Raises:
        YuanError: not an int, negative, or above :data:`FEN_MAX`.
    """
    return Decimal(fen_to_yuan(fen))


def _why_not(text: str) -> str:
    """Why ``text`` is not plain yuan, for the error message."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return "not a decimal number"
    if not number.is_finite():
        return "NaN or Infinity"
    if number.is_signed():
        return "negative amount"
    if "e" in text.lower():
        return "exponent notation"
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return "more than two decimal places"
    return "not written as plain yuan (like 123.45)"


def _parse(text: str, shown: object) -> int:
    if len(text) > _TEXT_MAX:
        raise YuanError(f"amount too long ({len(text)} characters)")
    match = _YUAN.fullmatch(text)
    if match is None:
        raise YuanError(f"{_why_not(text)}: {shown!r}")
    whole, cents = match.group(1), match.group(2) or ""
    fen = int(whole) * 100 + int(cents.ljust(2, "0"))
    if fen > FEN_MAX:
        raise YuanError(f"amount {shown!r} exceeds the wire's bound of {FEN_MAX} fen")
    return fen


def yuan_to_fen(value: str | Decimal | int) -> int:
    """Exact fen of a yuan amount from the wire: ``"0.10"``, ``Decimal("0.1")``, ``12``.

    A string must be plain yuan (``123``, ``123.4``, ``123.45``); a Decimal (a decoded
    JSON number) must have at most two places as written, and no exponent; an int is
    whole yuan.

    Raises:
        YuanError: anything else, including floats and booleans, or out of range.
    """
    if isinstance(value, bool):
        raise YuanError(f"a boolean is not an amount: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise YuanError(f"negative amount: {value!r}")
        if value > FEN_MAX // 100:
            raise YuanError(f"amount {value!r} exceeds the wire's bound of {FEN_MAX} fen")
        return value * 100
    if isinstance(value, Decimal):
        # str() writes the Decimal as decoded: Decimal("1E+3") stays "1E+3".
        return _parse(str(value), value)
    if isinstance(value, str):
        return _parse(value, value)
    if isinstance(value, float):
        raise YuanError(
            f"a float is not exact ({value!r}); decode JSON numbers as Decimal (json_decoder)"
        )
    raise YuanError(f"not an amount: {type(value).__name__}")


class YuanFen(int):
    """Integer fen in code, yuan on the wire (with :func:`dec_hook` / :func:`enc_hook`).

    Constructing one checks the bound, so every value that reaches the encoder is one
    the wire may carry. Arithmetic gives plain ``int`` fen.
    """

    __slots__ = ()

    def __new__(cls, fen: int) -> YuanFen:
        """Fen within ``0..FEN_MAX``, or :class:`YuanError`."""
        return super().__new__(cls, _check_fen(fen))


def dec_hook(type_: type, obj: Any) -> Any:
    """Msgspec ``dec_hook``: a :class:`YuanFen` field from a yuan string or number.

    Raises:
        YuanError: the amount is refused (msgspec reports it as a ValidationError).
        NotImplementedError: ``type_`` is not ours (msgspec's convention).
    """
    if type_ is YuanFen:
        return YuanFen(yuan_to_fen(obj))
    raise NotImplementedError(f"no decoder for {type_!r}")


def enc_hook(obj: Any) -> Any:
    """Msgspec ``enc_hook``: a :class:`YuanFen` as a two-place Decimal (string or number).

    Raises:
        NotImplementedError: ``obj`` is not ours (msgspec's convention).
    """
    if isinstance(obj, YuanFen):
        return fen_to_decimal(obj)
    raise NotImplementedError(f"no encoder for {type(obj).__name__}")


def json_decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    """A decoder of ``type_`` that reads JSON numbers as Decimal and yuan as fen."""
    return msgspec.json.Decoder(type_, dec_hook=dec_hook, float_hook=Decimal)


def json_encoder(*, as_number: bool = False) -> msgspec.json.Encoder:
    """An encoder writing :class:`YuanFen` as ``"123.45"``, or as ``123.45`` if ``as_number``."""
    return msgspec.json.Encoder(
        enc_hook=enc_hook, decimal_format="number" if as_number else "string"
    )
