"""Fen <-> yuan: exact, bounded, and every inexact or odd amount refused."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from medpay.wire import national
from medpay.wire.yuan import (
    FEN_MAX,
    YuanError,
    YuanFen,
    dec_hook,
    fen_to_decimal,
    fen_to_yuan,
    json_decoder,
    json_encoder,
    yuan_to_fen,
)


class Fee(msgspec.Struct, frozen=True, kw_only=True):
    feeSumamt: YuanFen  # national field names, as on the wire
    ownPayAmt: YuanFen | None = None


FEE = json_decoder(Fee)


# --- fen -> yuan --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [(0, "0.00"), (5, "0.05"), (10, "0.10"), (12345, "123.45"), (100, "1.00")],
)
def test_fen_to_yuan_writes_two_places(fen, yuan) -> None:
    assert fen_to_yuan(fen) == yuan
    assert fen_to_decimal(fen) == Decimal(yuan)
    assert str(fen_to_decimal(fen)) == yuan


@pytest.mark.parametrize("fen", [-1, FEN_MAX + 1, True, 1.0, "100", None])
def test_fen_to_yuan_refuses_what_is_not_fen_in_range(fen) -> None:
    with pytest.raises(YuanError):
        fen_to_yuan(fen)


# --- yuan -> fen --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        ("0.10", 10),
        ("0.1", 10),
        ("0", 0),
        ("0.00", 0),
        ("1", 100),
        ("123.45", 12345),
        (Decimal("0.1"), 10),
        (Decimal("0.10"), 10),
        (Decimal("150e-2"), 150),  # as decoded, it is Decimal("1.50")
        (12, 1200),
    ],
)
def test_exact_amounts_convert(value, fen) -> None:
    assert yuan_to_fen(value) == fen


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1.005", "more than two decimal places"),
        (Decimal("1.005"), "more than two decimal places"),
        ("1.500", "more than two decimal places"),
        ("-1", "negative"),
        ("-0.01", "negative"),
        (-1, "negative"),
        (Decimal("-0"), "negative"),
        ("1e3", "exponent"),
        ("1E+3", "exponent"),
        (Decimal("1E+3"), "exponent"),
        ("NaN", "NaN or Infinity"),
        ("Infinity", "NaN or Infinity"),
        (Decimal("NaN"), "NaN or Infinity"),
        (Decimal("-Infinity"), "NaN or Infinity"),
        (True, "boolean"),
        (False, "boolean"),
        (0.1, "float"),
        (0.5, "float"),  # exact in binary, refused all the same: floats are never money
        ("abc", "not a decimal number"),
        ("", "not a decimal number"),
        ("01.00", "plain yuan"),
        ("1.", "plain yuan"),
        (".5", "plain yuan"),
        ("+1", "plain yuan"),
        (" 1", "plain yuan"),
        ("1_000", "plain yuan"),
        ("１", "plain yuan"),  # a full-width digit
        (None, "not an amount"),
        (b"1", "not an amount"),
        ("1" * 40, "too long"),
    ],
)
def test_inexact_or_odd_amounts_are_refused(value, reason) -> None:
    with pytest.raises(YuanError, match=reason):
        yuan_to_fen(value)


def test_the_largest_allowed_amount_round_trips() -> None:
    assert fen_to_yuan(FEN_MAX) == "100000000000.00"
    assert yuan_to_fen("100000000000.00") == FEN_MAX
    assert yuan_to_fen(Decimal("100000000000.00")) == FEN_MAX
    assert yuan_to_fen(100_000_000_000) == FEN_MAX


@pytest.mark.parametrize("value", ["100000000000.01", Decimal("100000000000.01"), 100_000_000_001])
def test_one_fen_beyond_the_bound_is_refused(value) -> None:
    with pytest.raises(YuanError, match="bound"):
        yuan_to_fen(value)


def test_the_bound_is_the_national_wires() -> None:
    (meta,) = national.Fen.__metadata__
    assert meta.le == FEN_MAX


@given(fen=st.integers(min_value=0, max_value=FEN_MAX))
def test_fen_to_yuan_and_back_is_the_identity(fen) -> None:
    assert yuan_to_fen(fen_to_yuan(fen)) == fen
    assert yuan_to_fen(fen_to_decimal(fen)) == fen


@given(text=st.text(max_size=40))
def test_any_text_gives_fen_in_range_or_a_yuan_error(text) -> None:
    try:
        fen = yuan_to_fen(text)
    except YuanError:
        return
    assert 0 <= fen <= FEN_MAX
    assert fen_to_decimal(fen) == Decimal(text)


# --- msgspec: yuan on the wire, fen in code ---------------------------------------------------


def test_json_number_point_one_is_ten_fen_exactly() -> None:
    assert FEE.decode(b'{"feeSumamt": 0.1}').feeSumamt == 10


@pytest.mark.parametrize(
    ("body", "fen"),
    [
        (b'{"feeSumamt": "0.10"}', 10),
        (b'{"feeSumamt": 123.45}', 12345),
        (b'{"feeSumamt": 12}', 1200),
        (b'{"feeSumamt": 100000000000.00}', FEN_MAX),
    ],
)
def test_yuan_fields_decode_to_integer_fen(body, fen) -> None:
    decoded = FEE.decode(body)
    assert decoded.feeSumamt == fen
    assert isinstance(decoded.feeSumamt, int)
    assert decoded.ownPayAmt is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'"1.005"', "more than two decimal places"),
        (b"1.005", "more than two decimal places"),
        (b"-1", "negative"),
        (b"1e3", "exponent"),
        (b'"NaN"', "NaN or Infinity"),
        (b"true", "boolean"),
        (b"null", "not an amount"),
        (b"100000000000.01", "bound"),
    ],
)
def test_refused_amounts_are_validation_errors_with_the_path(value, reason) -> None:
    with pytest.raises(msgspec.ValidationError, match=rf"{reason}.*\$\.feeSumamt"):
        FEE.decode(b'{"feeSumamt": ' + value + b"}")


def test_yuan_fields_encode_as_strings_by_default() -> None:
    fee = Fee(feeSumamt=YuanFen(12345), ownPayAmt=YuanFen(5))
    assert json_encoder().encode(fee) == b'{"feeSumamt":"123.45","ownPayAmt":"0.05"}'


def test_yuan_fields_encode_as_numbers_on_request() -> None:
    fee = Fee(feeSumamt=YuanFen(10))
    assert json_encoder(as_number=True).encode(fee) == b'{"feeSumamt":0.10,"ownPayAmt":null}'


@given(fen=st.integers(min_value=0, max_value=FEN_MAX), as_number=st.booleans())
def test_structs_round_trip_through_json(fen, as_number) -> None:
    fee = Fee(feeSumamt=YuanFen(fen))
    assert FEE.decode(json_encoder(as_number=as_number).encode(fee)) == fee


def test_convert_from_builtins_uses_the_same_rules() -> None:
    assert msgspec.convert({"feeSumamt": "1.20"}, Fee, dec_hook=dec_hook).feeSumamt == 120
    with pytest.raises(msgspec.ValidationError, match="more than two decimal places"):
        msgspec.convert({"feeSumamt": Decimal("1.201")}, Fee, dec_hook=dec_hook)


def test_yuan_fen_refuses_values_the_wire_cannot_carry() -> None:
    with pytest.raises(YuanError):
        YuanFen(-1)
    with pytest.raises(YuanError):
        YuanFen(FEN_MAX + 1)


def test_arithmetic_on_yuan_fen_is_integer_fen() -> None:
    total = YuanFen(150) + YuanFen(250)
    assert total == 400
    assert type(total) is int
