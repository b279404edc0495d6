"""The national profile's codec: yuan amounts and SM2 signatures on the settlement wire."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from medpay.wire import gm
from medpay.wire.national import FeeDetail, RequestEnvelope, SettlementInput
from medpay.wire.national_gm import (
    amounts_to_fen,
    amounts_to_yuan,
    body_signature_headers,
    decode,
    encode,
    encode_request,
    sign_envelope,
    verify_body_signature,
    verify_envelope,
)
from medpay.wire.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError
from medpay.wire.yuan import YuanError

KEY = gm.generate_private_key()
OTHER = gm.generate_private_key()

SETLINFO_FEN = {
    "medfee_sumamt": 11100,
    "hifp_pay": 5,
    "balc": 0,
    "pool_prop_selfpay": 5000,  # a ratio in basis points: never converted
    "psn_no": "33000000000000000001",
}


def test_amounts_travel_as_two_place_yuan_numbers() -> None:
    body = encode(amounts_to_yuan({"output": {"setlinfo": SETLINFO_FEN, "setldetail": []}}))
    assert b'"medfee_sumamt":111.00' in body
    assert b'"hifp_pay":0.05' in body
    assert b'"balc":0.00' in body
    assert b'"pool_prop_selfpay":5000' in body
    assert b'"psn_no":"33000000000000000001"' in body


def test_yuan_read_back_is_the_same_fen() -> None:
    nested = {"feedetail": [{"pric": 1234, "cnt": 3, "pric_uplmt_amt": None}], **SETLINFO_FEN}
    assert amounts_to_fen(decode(encode(amounts_to_yuan(nested)))) == nested


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b'{"hifp_pay": 12.345}', "more than two decimal places"),
        (b'{"hifp_pay": -1.00}', "negative"),
        (b'{"hifp_pay": 1e3}', "exponent"),
        (b'{"hifp_pay": true}', "boolean"),
        (b'{"hifp_pay": "abc"}', "not a decimal number"),
        (b'{"setldetail": [{"fund_payamt": 0.001}]}', "more than two decimal places"),
    ],
)
def test_an_amount_that_is_not_exact_yuan_is_refused(text: bytes, why: str) -> None:
    with pytest.raises(YuanError, match=why):
        amounts_to_fen(decode(text))


def test_a_float_is_never_taken_for_an_amount() -> None:
    with pytest.raises(YuanError, match="float"):
        amounts_to_fen({"hifp_pay": 0.1})


def test_whole_yuan_and_one_decimal_are_exact() -> None:
    assert amounts_to_fen(decode(b'{"hifp_pay": 12, "balc": "0.5"}')) == {
        "hifp_pay": 1200,
        "balc": 50,
    }


def test_negative_fen_cannot_be_sent() -> None:
    with pytest.raises(YuanError, match="negative"):
        amounts_to_yuan({"pric": -1})


def _envelope() -> RequestEnvelope[SettlementInput]:
    return RequestEnvelope[SettlementInput](
        infno="2207",
        msgid="H33010600001202503010830050001",
        mdtrtarea_admvs="330106",
        insuplc_admdvs="330106",
        recer_sys_code="MEDPAY",
        opter_type="3",
        opter="medpay",
        opter_name="medpay gateway",
        inf_time="2025-03-01 08:30:05",
        fixmedins_code="H33010600001",
        fixmedins_name="杭州互联网医院",
        input=SettlementInput(
            psn_no="33000000000000000001",
            mdtrt_cert_type="01",
            mdtrt_cert_no="",
            med_type="11",
            medfee_sumamt=5800,
            psn_setlway="01",
            mdtrt_id="V1",
            chrg_bchno="C1",
            insutype="310",
            acct_used_flag="1",
            medins_lv="3",
            begntime=dt.date(2025, 3, 1),
            feedetail=[
                FeeDetail(
                    feedetl_sn="1",
                    med_list_codg="X01",
                    med_list_name="x",
                    cnt=2,
                    pric=2900,
                    det_item_fee_sumamt=5800,
                    chrgitm_lv="01",
                )
            ],
        ),
    )


def test_a_request_is_signed_with_sm2_over_what_is_sent() -> None:
    body = encode_request(_envelope(), KEY)
    received = decode(body)
    assert received["signtype"] == "SM2"
    assert received["input"]["medfee_sumamt"] == Decimal("58.00")
    assert received["input"]["feedetail"][0]["pric"] == Decimal("29.00")
    verify_envelope(received, [OTHER.public_key(), KEY.public_key()])  # rotation: any key


def test_a_tampered_amount_or_another_key_does_not_verify() -> None:
    received = decode(encode_request(_envelope(), KEY))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_envelope(received, [OTHER.public_key()])
    received["input"]["medfee_sumamt"] = Decimal("58.01")
    with pytest.raises(SignatureError, match="does not verify"):
        verify_envelope(received, [KEY.public_key()])


def test_a_request_not_marked_sm2_is_refused() -> None:
    fields = sign_envelope({"infno": "2207", "input": {}}, KEY)
    fields["signtype"] = "ED25519"
    with pytest.raises(SignatureError, match="signtype"):
        verify_envelope(fields, [KEY.public_key()])
    with pytest.raises(SignatureError, match="cainfo missing"):
        verify_envelope({"signtype": "SM2"}, [KEY.public_key()])


def test_an_answer_body_is_signed_with_sm2_in_the_headers() -> None:
    body = b'{"infcode":0}'
    headers = body_signature_headers(body, KEY)
    verify_body_signature(
        body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], KEY.public_key()
    )
    with pytest.raises(SignatureError, match="does not verify"):
        verify_body_signature(
            b'{"infcode":-1}',
            headers[TIMESTAMP_HEADER],
            headers[SIGNATURE_HEADER],
            KEY.public_key(),
        )
    stale = body_signature_headers(body, KEY, timestamp=int(time.time()) - 3600)
    with pytest.raises(SignatureError, match="window"):
        verify_body_signature(
            body, stale[TIMESTAMP_HEADER], stale[SIGNATURE_HEADER], KEY.public_key()
        )
    with pytest.raises(SignatureError, match="missing"):
        verify_body_signature(body, None, None, KEY.public_key())
