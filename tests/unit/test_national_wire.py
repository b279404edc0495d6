"""The national envelope, its canonical signing string, signatures and identifiers."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import msgspec
import pytest

from medpay.wire.national import (
    CHINA_TZ,
    FeeDetail,
    OrderQueryInput,
    OrderQueryOutput,
    RequestEnvelope,
    ResponseEnvelope,
    SettlementCallback,
    SettlementInput,
    SettlementOrderOutput,
    SettlementOutput,
    callback_decoder,
    callback_path,
    decode_input,
    encode,
    format_inf_time,
    format_ref_time,
    new_msgid,
    new_refmsgid,
    parse_inf_time,
    parse_ref_time,
    province_of,
    request_decoder,
    response_decoder,
)
from medpay.wire.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    body_signature_headers,
    canonical_string,
    generate_private_key,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    sign_request,
    verify_body_signature,
    verify_canonical,
)

KEY = generate_private_key()
OTHER_KEY = generate_private_key()


def query_envelope(**overrides: Any) -> RequestEnvelope[OrderQueryInput]:
    fields: dict[str, Any] = {
        "infno": "6301",
        "msgid": "H33010600001202503010830050002",
        "mdtrtarea_admvs": "330106",
        "insuplc_admdvs": "330106",
        "recer_sys_code": "MEDPAY",
        "opter_type": "3",
        "opter": "u1",
        "opter_name": "app",
        "inf_time": "2025-03-01 08:30:05",
        "fixmedins_code": "H33010600001",
        "fixmedins_name": "杭州互联网医院",
        "input": OrderQueryInput(ref_msgid="H33010600001202503010830050001"),
    }
    fields.update(overrides)
    return RequestEnvelope[OrderQueryInput](**fields)


def settlement_input(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "psn_no": "33000000000000000001",
        "mdtrt_cert_type": "01",
        "mdtrt_cert_no": "ev-123",
        "med_type": "11",
        "medfee_sumamt": 3_800,
        "psn_setlway": "01",
        "mdtrt_id": "V1",
        "chrg_bchno": "C1",
        "insutype": "310",
        "acct_used_flag": "1",
        "medins_lv": "3",
        "begntime": "2025-03-01",
        "feedetail": [
            {
                "feedetl_sn": "1",
                "med_list_codg": "X01",
                "med_list_name": "amoxicillin",
                "cnt": 2,
                "pric": 1_500,
                "det_item_fee_sumamt": 3_000,
                "chrgitm_lv": "01",
            },
            {
                "feedetl_sn": "2",
                "med_list_codg": "DLV",
                "med_list_name": "delivery",
                "cnt": 1,
                "pric": 800,
                "det_item_fee_sumamt": 800,
                "chrgitm_lv": "03",
                "non_medical": True,
            },
        ],
    }
    data.update(overrides)
    return data


# --- canonical string --------------------------------------------------------------------


def test_canonical_string_sorts_keys_and_skips_cainfo_and_none():
    fields = {
        "msgid": "M",
        "cainfo": "signature",
        "infno": "2206",
        "opter_name": None,
        "dev_no": "",
        "input": {"b": 2, "a": [1, {"y": None, "x": "中"}], "c": None},
    }
    expected = 'dev_no=&infno=2206&input={"a":[1,{"x":"中"}],"b":2}&msgid=M'
    assert canonical_string(fields) == expected.encode()


def test_canonical_string_of_an_envelope_lists_every_field():
    expected = (
        "dev_no=&dev_safe_info=&fixmedins_code=H33010600001&fixmedins_name=杭州互联网医院"
        "&inf_time=2025-03-01 08:30:05&infno=6301&infver=V1.0"
        '&input={"ref_msgid":"H33010600001202503010830050001"}'
        "&insuplc_admdvs=330106&mdtrtarea_admvs=330106&msgid=H33010600001202503010830050002"
        "&opter=u1&opter_name=app&opter_type=3&recer_sys_code=MEDPAY&sign_no=&signtype=ED25519"
    )
    assert canonical_string(query_envelope(cainfo="ignored")) == expected.encode()


def test_absent_and_null_sign_alike():
    assert canonical_string({"a": "1", "b": None}) == canonical_string({"a": "1"})


# --- request signatures ---------------------------------------------------------------------


def test_signed_envelope_verifies_after_a_round_trip_over_json():
    signed = sign_request(query_envelope(), KEY)
    received = request_decoder(Any).decode(encode(signed))
    verify_canonical(received, [KEY.public_key()])


def test_any_of_several_keys_may_verify_for_rotation():
    signed = sign_request(query_envelope(), KEY)
    verify_canonical(signed, [OTHER_KEY.public_key(), KEY.public_key()])


@pytest.mark.parametrize(
    "tamper",
    [
        {"opter": "someone-else"},
        {"insuplc_admdvs": "440106"},
        {"input": OrderQueryInput(ref_msgid="H33010600001202503010830059999")},
    ],
)
def test_tampered_field_fails_verification(tamper):
    signed = sign_request(query_envelope(), KEY)
    tampered = msgspec.structs.replace(signed, **tamper)
    with pytest.raises(SignatureError):
        verify_canonical(tampered, [KEY.public_key()])


def test_signature_by_an_untrusted_key_fails():
    with pytest.raises(SignatureError):
        verify_canonical(sign_request(query_envelope(), OTHER_KEY), [KEY.public_key()])


@pytest.mark.parametrize("cainfo", ["", "not base64!"])
def test_missing_or_garbled_cainfo_fails(cainfo):
    with pytest.raises(SignatureError):
        verify_canonical(query_envelope(cainfo=cainfo), [KEY.public_key()])


def test_content_cannot_move_into_an_absent_neighbour():
    signed = sign_request(query_envelope(dev_no="1", dev_safe_info="2"), KEY)
    # Same canonical bytes if fields could simply be absent; the typed envelope fills in
    # the default "" for dev_safe_info, so the forged split no longer verifies.
    forged = msgspec.structs.replace(signed, dev_no="1&dev_safe_info=2", dev_safe_info="")
    with pytest.raises(SignatureError):
        verify_canonical(forged, [KEY.public_key()])


# --- response (body) signatures -------------------------------------------------------------


def test_body_signature_round_trip():
    body = b'{"infcode":0}'
    headers = body_signature_headers(body, KEY)
    verify_body_signature(
        body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], KEY.public_key()
    )


def test_tampered_body_fails():
    headers = body_signature_headers(b'{"infcode":0}', KEY)
    with pytest.raises(SignatureError):
        verify_body_signature(
            b'{"infcode":-1}',
            headers[TIMESTAMP_HEADER],
            headers[SIGNATURE_HEADER],
            KEY.public_key(),
        )


def test_stale_body_signature_fails():
    body = b"{}"
    headers = body_signature_headers(body, KEY, timestamp=int(time.time()) - 3_600)
    with pytest.raises(SignatureError, match="window"):
        verify_body_signature(
            body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], KEY.public_key()
        )


@pytest.mark.parametrize(("timestamp", "signature"), [(None, "x"), ("123", None), ("12a", "x")])
def test_missing_or_malformed_signature_headers_fail(timestamp, signature):
    with pytest.raises(SignatureError):
        verify_body_signature(b"{}", timestamp, signature, KEY.public_key())


def test_keys_survive_pem_round_trips():
    private = load_private_key(private_key_pem(KEY))
    public = load_public_key(public_key_pem(KEY))
    headers = body_signature_headers(b"x", private)
    verify_body_signature(b"x", headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], public)


# --- identifiers and times ---------------------------------------------------------------------


def test_msgid_is_institution_time_and_sequence():
    now = dt.datetime(2025, 3, 1, 8, 30, 5, tzinfo=CHINA_TZ)
    msgid = new_msgid("H33010600001", now, 7)
    assert msgid == "H33010600001" + "20250301083005" + "0007"
    assert len(msgid) == 30


def test_msgid_time_is_written_in_beijing_time():
    utc = dt.datetime(2025, 3, 1, 0, 30, 5, tzinfo=dt.UTC)  # 08:30:05 in Beijing
    assert new_msgid("H33010600001", utc, 0)[12:26] == "20250301083005"


@pytest.mark.parametrize(
    ("code", "seq", "tz"),
    [
        ("H3301060000", 1, dt.UTC),  # 11 characters
        ("h33010600001", 1, dt.UTC),  # lower case
        ("H33010600001", 10_000, dt.UTC),  # sequence beyond 4 digits
        ("H33010600001", -1, dt.UTC),
        ("H33010600001", 1, None),  # naive time is ambiguous
    ],
)
def test_msgid_rejects_bad_parts(code, seq, tz):
    with pytest.raises(ValueError):
        new_msgid(code, dt.datetime(2025, 3, 1, tzinfo=tz), seq)


def test_refmsgid_and_times_have_the_national_shapes():
    now = dt.datetime(2025, 3, 1, 8, 30, 5, 123_456, tzinfo=CHINA_TZ)
    assert new_refmsgid("330000", now, 42) == "330000" + "20250301083005" + "0000000042"
    assert format_ref_time(now) == "20250301083005123"
    assert format_inf_time(now) == "2025-03-01 08:30:05"
    assert parse_inf_time("2025-03-01 08:30:05") == now.replace(microsecond=0)


def test_province_of_an_area():
    assert province_of("330106") == "330000"
    with pytest.raises(ValueError):
        province_of("33010")


# --- structures ----------------------------------------------------------------------------------


def test_settlement_input_decodes_with_money_as_integer_fen():
    decoded = decode_input("2206", msgspec.json.encode(settlement_input()))
    assert isinstance(decoded, SettlementInput)
    assert decoded.medfee_sumamt == 3_800
    assert decoded.begntime == dt.date(2025, 3, 1)
    assert decoded.feedetail[1].non_medical is True


def test_decimal_yuan_is_refused():
    with pytest.raises(msgspec.ValidationError):
        decode_input("2206", msgspec.json.encode(settlement_input(medfee_sumamt=38.0)))


def test_item_total_must_equal_count_times_price():
    data = settlement_input()
    data["feedetail"][0]["det_item_fee_sumamt"] = 2_999
    with pytest.raises(msgspec.ValidationError, match="cnt"):
        decode_input("2207", msgspec.json.encode(data))


def test_settlement_total_must_equal_the_items():
    with pytest.raises(msgspec.ValidationError, match="medfee_sumamt"):
        decode_input("2207", msgspec.json.encode(settlement_input(medfee_sumamt=3_801)))


def test_unknown_transaction_is_a_key_error():
    with pytest.raises(KeyError):
        decode_input("9999", b"{}")


def test_fee_detail_rejects_an_unknown_class():
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(
            {
                "feedetl_sn": "1",
                "med_list_codg": "X",
                "med_list_name": "x",
                "cnt": 1,
                "pric": 1,
                "det_item_fee_sumamt": 1,
                "chrgitm_lv": "04",
            },
            FeeDetail,
        )


def test_response_envelope_decodes_typed_output():
    body = msgspec.json.encode(
        {
            "infcode": -2,
            "inf_refmsgid": "330000202503010830050000000001",
            "refmsg_time": "20250301083005000",
            "respond_time": "20250301083005001",
            "err_msg": "person not insured in this province",
            "output": None,
        }
    )
    answer = response_decoder(SettlementOutput).decode(body)
    assert isinstance(answer, ResponseEnvelope)
    assert answer.infcode == -2
    assert answer.output is None


# --- asynchronous answers and callbacks ---------------------------------------------------------

SETLINFO = {
    "setl_id": "330000202503010000000001",
    "psn_no": "33000000000000000001",
    "mdtrt_id": "V1",
    "medfee_sumamt": 3_800,
    "fulamt_ownpay_amt": 800,
    "overlmt_selfpay": 0,
    "preselfpay_amt": 0,
    "inscp_scp_amt": 3_000,
    "act_pay_dedc": 0,
    "hifp_pay": 2_100,
    "pool_prop_selfpay": 7_000,
    "hifmi_pay": 0,
    "maf_pay": 0,
    "fund_pay_sumamt": 2_100,
    "psn_part_amt": 1_700,
    "acct_pay": 900,
    "psn_cash_pay": 800,
    "balc": 99_100,
    "insutype": "310",
    "setl_time": "2025-03-01 08:30:06",
}


def callback(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "callback_id": "CB330000202503010830060000000007",
        "ref_msgid": "H33010600001202503010830050001",
        "infno": "2207",
        "ord_stas": "settled",
        "setlinfo": SETLINFO,
        "callback_time": "20250301083006123",
    }
    data.update(overrides)
    return data


def test_settlement_answer_without_ord_stas_reads_as_settled():
    body = msgspec.json.encode({"setlinfo": SETLINFO, "setldetail": []})
    answer = msgspec.json.decode(body, type=SettlementOrderOutput)
    assert answer.ord_stas == "settled"
    assert answer.setlinfo is not None


def test_processing_answer_has_no_figures():
    answer = msgspec.json.decode(b'{"ord_stas": "processing"}', type=SettlementOrderOutput)
    assert answer.setlinfo is None
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            msgspec.json.encode({"ord_stas": "processing", "setlinfo": SETLINFO}),
            type=SettlementOrderOutput,
        )
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"ord_stas": "settled"}', type=SettlementOrderOutput)


def test_order_query_may_answer_processing_or_failed():
    failed = msgspec.json.decode(
        b'{"ord_stas": "failed", "err_code": -2, "err_msg": "no"}', type=OrderQueryOutput
    )
    assert (failed.ord_stas, failed.err_code) == ("failed", -2)
    assert (
        msgspec.json.decode(b'{"ord_stas": "processing"}', type=OrderQueryOutput).err_code is None
    )


def test_callback_decodes_with_its_figures():
    decoded = callback_decoder().decode(msgspec.json.encode(callback()))
    assert isinstance(decoded, SettlementCallback)
    assert decoded.setlinfo is not None
    assert decoded.setlinfo.hifp_pay == 2_100


def test_failed_callback_carries_a_negative_err_code_and_no_figures():
    decoded = callback_decoder().decode(
        msgspec.json.encode(
            callback(ord_stas="failed", setlinfo=None, err_code=-2, err_msg="unknown")
        )
    )
    assert decoded.err_code == -2


@pytest.mark.parametrize(
    "overrides",
    [
        {"infno": "2208", "ord_stas": "settled"},  # a reversal reports "reversed" or "failed"
        {"infno": "2207", "ord_stas": "reversed"},
        {"infno": "2206"},
        {"ord_stas": "failed"},  # no err_code, and figures
        {"ord_stas": "failed", "setlinfo": None, "err_code": 0},
        {"setlinfo": None},  # settled without figures
        {"setlinfo": {**SETLINFO, "setl_id": None}},
        {"err_code": -1},  # settled with an error
        {"callback_time": "2025-03-01 08:30:06"},
        {"ref_msgid": "short"},
        {"callback_id": ""},
        {"setlinfo": {**SETLINFO, "hifp_pay": 21.0}},  # money is integer fen
    ],
)
def test_inconsistent_callback_is_refused(overrides):
    with pytest.raises(msgspec.ValidationError):
        callback_decoder().decode(msgspec.json.encode(callback(**overrides)))


def test_callback_path_and_ref_time():
    assert callback_path("330000") == "/v1/callbacks/330000"
    moment = dt.datetime(2025, 3, 1, 0, 30, 6, 123_000, tzinfo=dt.UTC)
    assert parse_ref_time(format_ref_time(moment)) == moment
    with pytest.raises(ValueError, match="yyyyMMddHHmmssSSS"):
        parse_ref_time("2025030108300612")
