"""What the console shows, without I/O: exact yuan, masked person numbers, the heat map."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medpay.clearing.schemas import ClearingCell, ClearingMatrix, FundAmounts, ProvincePosition
from medpay.console.passwords import PasswordHashing, check_new_password
from medpay.console.rendering import environment
from medpay.console.sessions import csrf_token_for, is_token, new_token, token_digest
from medpay.console.views import (
    HEAT_LEVELS,
    heat_level,
    heat_map,
    masked_person_number,
    masked_text,
    yuan,
)
from medpay.errors import InvalidRequest
from medpay.wire.national import PROVINCES

# --- yuan ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "shown"),
    [
        (0, "0.00"),
        (5, "0.05"),
        (100, "1.00"),
        (123_456_789, "1,234,567.89"),
        (-1, "-0.01"),
        (-250_000, "-2,500.00"),
        (10**13, "100,000,000,000.00"),
    ],
)
def test_fen_are_shown_as_yuan_with_two_decimals(fen: int, shown: str) -> None:
    assert yuan(fen) == shown


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_yuan_shown_are_exactly_the_fen(fen: int) -> None:
    assert Decimal(yuan(fen).replace(",", "")) * 100 == fen


@pytest.mark.parametrize("amount", [1.5, True, "100", Decimal("1.00")])
def test_only_integer_fen_are_shown(amount: object) -> None:
    with pytest.raises(TypeError):
        yuan(amount)  # type: ignore[arg-type]


# --- person numbers ------------------------------------------------------------------------------


def test_a_person_number_shows_its_first_and_last_four_digits() -> None:
    assert masked_person_number("33000000000000000001") == "3300************0001"
    assert masked_person_number("11010519491231002X") == "1101**********002X"


def test_a_short_number_is_hidden_whole() -> None:
    assert masked_person_number("12345678") == "********"


def test_person_numbers_in_free_text_are_masked_and_other_codes_are_not() -> None:
    text = "psn 44000000000000000002 not insured; msgid H1101080012420261202120000000001, 6301"

    assert masked_text(text) == (
        "psn 4400************0002 not insured; msgid H1101080012420261202120000000001, 6301"
    )
    assert masked_text(None) == ""


# --- the heat map ------------------------------------------------------------------------------


def _cell(insured: str, treatment: str, fen: int, settlements: int = 1) -> ClearingCell:
    return ClearingCell(
        insured_province=insured,
        treatment_province=treatment,
        settlements=settlements,
        funds=FundAmounts(
            employee_basic_fen=fen,
            resident_basic_fen=0,
            critical_illness_fen=0,
            medical_assistance_fen=0,
        ),
        fund_total_fen=fen,
    )


def _matrix(*cells: ClearingCell) -> ClearingMatrix:
    receivable = dict.fromkeys(PROVINCES, 0)
    payable = dict.fromkeys(PROVINCES, 0)
    for c in cells:
        if c.insured_province != c.treatment_province:
            receivable[c.treatment_province] += c.fund_total_fen
            payable[c.insured_province] += c.fund_total_fen
    return ClearingMatrix(
        period="2026-11",
        state="open",
        cells=list(cells),
        positions=[
            ProvincePosition(
                province=code,
                name=name,
                receivable_fen=receivable[code],
                payable_fen=payable[code],
                net_fen=receivable[code] - payable[code],
            )
            for code, name in PROVINCES.items()
        ],
        cross_provincial_fen=sum(receivable.values()),
        net_sum_fen=0,
    )


def test_the_map_is_every_province_against_every_province() -> None:
    heat = heat_map(_matrix(_cell("440000", "110000", 123_456, 2)))

    assert len(heat.columns) == len(heat.rows) == 31
    assert all(len(row.cells) == 31 for row in heat.rows)
    assert [code for code, _ in heat.columns] == list(PROVINCES)
    assert heat.pairs == 1


def test_a_cell_says_its_pair_and_amount_in_yuan() -> None:
    heat = heat_map(_matrix(_cell("440000", "110000", 123_456, 2), _cell("330000", "110000", 10)))
    rows = {row.province: row for row in heat.rows}
    guangdong_in_beijing = rows["440000"].cells[0]

    assert guangdong_in_beijing.title == (
        "Guangdong insured, treated in Beijing: 1,234.56 yuan from the funds, 2 settlements"
    )
    assert guangdong_in_beijing.level == HEAT_LEVELS
    assert rows["330000"].cells[0].level == 1
    assert rows["110000"].position.net_fen == 123_466
    assert rows["440000"].position.net_fen == -123_456


def test_a_provinces_own_off_site_care_is_on_the_diagonal_and_nets_to_nothing() -> None:
    heat = heat_map(_matrix(_cell("330000", "330000", 5000)))
    zhejiang = next(row for row in heat.rows if row.province == "330000")
    diagonal = next(c for c in zhejiang.cells if c.treatment_province == "330000")

    assert diagonal.title.startswith("Zhejiang insured, treated within the province")
    assert zhejiang.position.net_fen == 0


@pytest.mark.parametrize(
    ("fen", "largest", "level"),
    [
        (0, 700, 0),
        (-5, 700, -1),
        (1, 700, 1),
        (99, 700, 1),
        (100, 700, 2),
        (700, 700, 8),
        (3, 0, 0),
    ],
)
def test_the_shade_grows_with_the_amount(fen: int, largest: int, level: int) -> None:
    assert heat_level(fen, largest) == level


def test_the_clearing_page_draws_961_cells_and_31_nets() -> None:
    matrix = _matrix(_cell("440000", "110000", 123_456, 2))
    page = (
        environment()
        .get_template("clearing.html")
        .render(session=None, active="clearing", matrix=matrix, heat=heat_map(matrix))
    )

    assert len(re.findall(r"<td class=\"h(?:neg|\d)", page)) == 961
    assert len(re.findall(r"<td class=\"net", page)) == 31
    assert 'title="Guangdong insured, treated in Beijing: 1,234.56 yuan' in page
    assert 'class="h8" title="Guangdong insured' in page


def test_pages_escape_what_they_show() -> None:
    page = (
        environment()
        .get_template("error.html")
        .render(
            session=None,
            active="",
            status=400,
            title="<b>x</b>",
            detail="<script>alert(1)</script>",
        )
    )

    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- passwords and tokens ---------------------------------------------------------------------------


def test_a_password_is_kept_as_an_argon2id_hash_that_verifies_it_only() -> None:
    hashing = PasswordHashing()
    hashed = hashing.hash("correct horse battery staple")

    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert "correct horse" not in hashed
    assert hashing.verify(hashed, "correct horse battery staple")
    assert not hashing.verify(hashed, "correct horse battery stapl")
    assert not hashing.verify("not a hash", "correct horse battery staple")
    assert not hashing.verify_without_hash("correct horse battery staple")


def test_a_hash_made_at_another_cost_is_to_be_replaced() -> None:
    cheap = PasswordHashing(time_cost=1, memory_kib=8, parallelism=1)

    assert PasswordHashing().needs_rehash(cheap.hash("correct horse battery staple"))
    assert not cheap.needs_rehash(cheap.hash("correct horse battery staple"))
    assert cheap.needs_rehash("not a hash")


@pytest.mark.parametrize(
    "password", ["short", " padded password ", "tab\tin the middle", "x" * 257]
)
def test_a_weak_or_odd_password_is_refused(password: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_new_password(password)
    assert refused.value.code == "password_unacceptable"


def test_each_session_has_its_own_csrf_token_and_only_a_digest_is_stored() -> None:
    one, other = new_token(), new_token()

    assert is_token(one) and not is_token(one + "=") and not is_token(None)
    assert csrf_token_for(one) == csrf_token_for(one) != csrf_token_for(other)
    assert csrf_token_for(one) != one
    assert len(token_digest(one)) == 32 and token_digest(one) != one.encode()
