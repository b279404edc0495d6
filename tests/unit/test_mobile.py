"""The national mobile-payment envelope: signed string, SM4 key, seal/open, every refusal."""

from __future__ import annotations

import base64
import time
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from gmssl import sm4 as gmssl_sm4
from hypothesis import given, settings
from hypothesis import strategies as st

from medpay.wire import gm, mobile
from medpay.wire.yuan import YuanFen, yuan_to_fen

# Made-up credentials of the shape national platforms hand out (32 characters each).
APP_ID = "3F2A9C7B1E4D8F6A0B5C2D7E9F1A3B4C"
APP_SECRET = "Q7W2E9R4T6Y1U8I3O5P0A2S4D6F8G1H3"
STAMP = 1_757_326_792_488
KEY = gm.generate_private_key()
PUBLIC = KEY.public_key()

ORDER: dict[str, Any] = {
    "payOrdId": "ORD202501010000001",
    "payToken": "TK-1",
    "ordStas": "1",
    "feeSumamt": Decimal("123.45"),
    "ownPayAmt": Decimal("0.10"),
    "psnAcctPay": Decimal("23.35"),
    "fundPay": Decimal("100.00"),
    "deposit": 0,
    "extData": {"medOrgOrd": "H0001", "remark": "复诊 处方"},
}


def _seal(data: Any = ORDER, **overrides: Any) -> mobile.Envelope:
    options: dict[str, Any] = {
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "private_key": KEY,
        "timestamp_ms": STAMP,
        "version": "1.0.0",
    }
    options.update(overrides)
    return mobile.seal(data, **options)


def _open(envelope: mobile.Envelope, **overrides: Any) -> mobile.OpenedEnvelope:
    options: dict[str, Any] = {"app_secret": APP_SECRET, "public_key": PUBLIC}
    options.update(overrides)
    return mobile.open_envelope(envelope, **options)


def _replace(envelope: mobile.Envelope, **fields: Any) -> mobile.Envelope:
    return msgspec.structs.replace(envelope, **fields)


def _body(envelope: mobile.Envelope, **fields: Any) -> bytes:
    data = msgspec.to_builtins(envelope)
    data.update(fields)
    return msgspec.json.encode({k: v for k, v in data.items() if v is not ...})


def _encdata(plaintext: bytes) -> str:
    return gm.sm4_ecb_encrypt(mobile.derive_sm4_key(APP_ID, APP_SECRET), plaintext).hex().upper()


# --- the signed string ----------------------------------------------------------------------


def test_signed_string_follows_the_national_rules() -> None:
    fields = {
        "appId": APP_ID,
        "timestamp": STAMP,
        "encType": "SM4",
        "signType": "SM2",
        "version": "1.0.0",
        "signData": "never signed",
        "encData": "never signed",
        "extra": {"never": "signed"},
        "data": {
            "userName": "测试",
            "idType": "01",
            "pageNo": 2,
            "isAdult": True,
            "empty": "",
            "nothing": None,
            "none": [],
            "amount": Decimal("123.40"),
            "items": [{"b": 1, "a": None}, "", None, {"c": False}],
        },
    }
    assert (
        mobile.sign_string(fields, "SECRET")
        == (
            f"appId={APP_ID}"
            '&data={"amount":"123.40","idType":"01","isAdult":"true","items":[{"b":"1"},{"c":"false"}],'
            '"pageNo":"2","userName":"测试"}'
            f"&encType=SM4&signType=SM2&timestamp={STAMP}&version=1.0.0&key=SECRET"
        ).encode()
    )


def test_signed_string_sorts_by_ascii_code_not_ignoring_case() -> None:
    signed = mobile.sign_string({"data": {"feedetlSn": "1", "feeSumamt": "2"}}, "S")
    assert signed == b'data={"feeSumamt":"2","feedetlSn":"1"}&key=S'


def test_signed_string_skips_empty_top_level_values() -> None:
    signed = mobile.sign_string({"appId": APP_ID, "version": None, "remark": ""}, "S")
    assert signed == f"appId={APP_ID}&key=S".encode()


def test_signed_string_writes_yuan_fen_as_yuan() -> None:
    signed = mobile.sign_string({"data": {"feeSumamt": YuanFen(12345)}}, "S")
    assert signed == b'data={"feeSumamt":"123.45"}&key=S'


def test_numbers_and_their_strings_sign_alike() -> None:
    # A property of the national scheme, so that typed decoding must treat them alike.
    as_numbers = mobile.sign_string({"data": {"a": Decimal("1.50"), "b": 2}}, "S")
    as_strings = mobile.sign_string({"data": {"a": "1.50", "b": "2"}}, "S")
    assert as_numbers == as_strings


@pytest.mark.parametrize("value", [0.1, 1.0, float("nan"), b"bytes", {1, 2}])
def test_values_that_cannot_be_signed_exactly_are_refused(value) -> None:
    with pytest.raises(TypeError):
        _seal({"amount": value})


def test_decimal_nan_cannot_be_signed() -> None:
    with pytest.raises(ValueError, match="not a JSON number"):
        _seal({"amount": Decimal("NaN")})


def test_business_data_nested_too_deeply_is_refused_when_sealing() -> None:
    deep: dict[str, Any] = {"leaf": "x"}
    for _ in range(40):
        deep = {"d": deep}
    with pytest.raises(ValueError, match="nested deeper"):
        _seal(deep)


# --- the SM4 key ----------------------------------------------------------------------------


def test_sm4_key_is_sixteen_upper_case_hex_characters() -> None:
    key = mobile.derive_sm4_key(APP_ID, APP_SECRET)
    assert len(key) == 16
    assert key.decode().isalnum()
    assert key == key.upper()


def test_sm4_key_derivation_agrees_with_gmssl() -> None:
    # SM4-ECB(PKCS#7) of appSecret under appId[:16], upper-case hex, first 16 characters.
    other = gmssl_sm4.CryptSM4(padding_mode=gmssl_sm4.PKCS7)
    other.set_key(APP_ID[:16].encode(), gmssl_sm4.SM4_ENCRYPT)
    expected = other.crypt_ecb(APP_SECRET.encode()).hex().upper()[:16].encode()
    assert mobile.derive_sm4_key(APP_ID, APP_SECRET) == expected


def test_sm4_key_depends_on_the_app_secret() -> None:
    assert mobile.derive_sm4_key(APP_ID, APP_SECRET) != mobile.derive_sm4_key(APP_ID, "other")


@pytest.mark.parametrize(
    ("app_id", "app_secret"), [("SHORT", APP_SECRET), ("应用" * 8, APP_SECRET), (APP_ID, "")]
)
def test_sm4_key_needs_an_ascii_app_id_and_a_secret(app_id, app_secret) -> None:
    with pytest.raises(ValueError):
        mobile.derive_sm4_key(app_id, app_secret)


# --- seal and open --------------------------------------------------------------------------


def test_round_trip_returns_the_business_data_and_the_timestamp() -> None:
    body = mobile.encode_envelope(_seal())
    opened = _open(mobile.decode_envelope(body))
    assert opened.data == ORDER
    assert opened.app_id == APP_ID
    assert opened.timestamp_ms == STAMP
    assert opened.version == "1.0.0"


def test_amounts_come_back_as_exact_decimals() -> None:
    opened = _open(_seal())
    assert opened.data["ownPayAmt"] == Decimal("0.10")
    assert str(opened.data["ownPayAmt"]) == "0.10"
    assert yuan_to_fen(opened.data["feeSumamt"]) == 12345
    assert isinstance(opened.data["deposit"], int)


def test_envelope_carries_the_national_fields_only() -> None:
    body = msgspec.json.decode(mobile.encode_envelope(_seal()))
    assert set(body) == {
        "appId",
        "timestamp",
        "encType",
        "signType",
        "encData",
        "signData",
        "version",
    }
    assert body["encType"] == "SM4"
    assert body["signType"] == "SM2"
    assert body["timestamp"] == STAMP
    assert body["encData"] == body["encData"].upper()
    assert len(base64.b64decode(body["signData"])) == 64  # raw r || s


def test_version_is_optional_and_then_absent() -> None:
    envelope = _seal(version=None)
    assert b"version" not in mobile.encode_envelope(envelope)
    assert _open(envelope).version is None


def test_timestamp_defaults_to_now() -> None:
    before = time.time_ns() // 1_000_000
    envelope = _seal(timestamp_ms=None)
    assert before <= envelope.timestamp <= time.time_ns() // 1_000_000


def test_enc_data_is_the_ascii_json_of_the_business_data() -> None:
    envelope = _seal({"userName": "测试", "emoji": "😀", "n": 1})
    plaintext = gm.sm4_ecb_decrypt(
        mobile.derive_sm4_key(APP_ID, APP_SECRET), bytes.fromhex(envelope.encData)
    )
    assert plaintext == b'{"emoji":"\\ud83d\\ude00","n":1,"userName":"\\u6d4b\\u8bd5"}'
    assert _open(envelope).data == {"userName": "测试", "emoji": "😀", "n": 1}


def test_enc_data_decrypts_with_gmssl() -> None:
    envelope = _seal({"payOrdId": "ORD1"})
    other = gmssl_sm4.CryptSM4(padding_mode=gmssl_sm4.PKCS7)
    other.set_key(mobile.derive_sm4_key(APP_ID, APP_SECRET), gmssl_sm4.SM4_DECRYPT)
    assert other.crypt_ecb(bytes.fromhex(envelope.encData)) == b'{"payOrdId":"ORD1"}'


def test_a_struct_with_yuan_fen_seals_as_yuan() -> None:
    class Refund(msgspec.Struct, frozen=True):
        payOrdId: str
        refdAmt: YuanFen  # national field names

    opened = _open(_seal(Refund(payOrdId="ORD1", refdAmt=YuanFen(1050))))
    assert opened.data == {"payOrdId": "ORD1", "refdAmt": Decimal("10.50")}


def test_der_signatures_are_an_option_on_both_ends() -> None:
    envelope = _seal(signature_encoding="der")
    assert _open(envelope, signature_encoding="der").data == ORDER
    with pytest.raises(mobile.SignatureInvalid):
        _open(envelope)


def test_sealing_refuses_what_a_receiver_would_refuse() -> None:
    with pytest.raises(ValueError, match="not a valid envelope"):
        _seal(version="1.0&timestamp=1")


# --- tampering and wrong keys -----------------------------------------------------------------


def test_tampered_sign_data_is_refused() -> None:
    envelope = _seal()
    raw = bytearray(base64.b64decode(envelope.signData))
    raw[10] ^= 1
    with pytest.raises(mobile.SignatureInvalid, match="does not verify"):
        _open(_replace(envelope, signData=base64.b64encode(bytes(raw)).decode()))


@pytest.mark.parametrize("sign_data", ["", "not base64!", base64.b64encode(bytes(63)).decode()])
def test_malformed_sign_data_is_refused(sign_data) -> None:
    with pytest.raises(mobile.SignatureInvalid):
        _open(_replace(_seal(), signData=sign_data))


def test_tampered_enc_data_in_the_last_block_fails_to_decrypt() -> None:
    envelope = _seal()
    flipped = envelope.encData[:-1] + ("0" if envelope.encData[-1] != "0" else "1")
    with pytest.raises(mobile.DecryptionFailed, match="does not decrypt"):
        _open(_replace(envelope, encData=flipped))


def test_enc_data_replaced_by_other_data_under_the_same_key_is_refused() -> None:
    envelope = _seal()
    forged = _encdata(b'{"payOrdId":"ORD202501010000001","fundPay":"999.00"}')
    with pytest.raises(mobile.SignatureInvalid):
        _open(_replace(envelope, encData=forged))


_SEALED = _seal()


@given(position=st.integers(min_value=0), digit=st.sampled_from("0123456789ABCDEF"))
@settings(max_examples=60)
def test_any_change_to_enc_data_is_refused(position, digit) -> None:
    envelope = _SEALED
    position %= len(envelope.encData)
    if envelope.encData[position] == digit:
        return
    changed = envelope.encData[:position] + digit + envelope.encData[position + 1 :]
    with pytest.raises(mobile.EnvelopeError):
        _open(_replace(envelope, encData=changed))


@pytest.mark.parametrize(
    "fields",
    [{"timestamp": STAMP + 1}, {"version": "1.0.1"}, {"version": None}],
    ids=["timestamp", "version", "version-removed"],
)
def test_changed_envelope_fields_are_refused(fields) -> None:
    with pytest.raises(mobile.SignatureInvalid):
        _open(_replace(_seal(), **fields))


def test_another_app_id_derives_another_key_and_fails_to_decrypt() -> None:
    with pytest.raises(mobile.DecryptionFailed):
        _open(_replace(_seal(), appId="3F2A9C7B1E4D8F6B0B5C2D7E9F1A3B4C"))


def test_wrong_sm4_key_fails_to_decrypt() -> None:
    with pytest.raises(mobile.DecryptionFailed):
        _open(_seal(), app_secret="NOT-THE-APP-SECRET")


def test_signature_of_another_app_key_is_refused() -> None:
    with pytest.raises(mobile.SignatureInvalid):
        _open(_seal(private_key=gm.generate_private_key()))


def test_verifying_with_another_public_key_is_refused() -> None:
    with pytest.raises(mobile.SignatureInvalid):
        _open(_seal(), public_key=gm.generate_private_key().public_key())


@pytest.mark.parametrize("enc_data", ["", "XYZ", "00 11", "0" * 30, "0" * 31])
def test_enc_data_that_is_not_whole_hex_blocks_fails_to_decrypt(enc_data) -> None:
    with pytest.raises(mobile.DecryptionFailed):
        _open(_replace(_seal(), encData=enc_data))


def test_enc_data_that_decrypts_to_non_utf8_fails_to_decrypt() -> None:
    with pytest.raises(mobile.DecryptionFailed, match="UTF-8"):
        _open(_replace(_seal(), encData=_encdata(b"\xff\xfe{}")))


@pytest.mark.parametrize("plaintext", [b"not json", b"[1, 2]", b'"text"', b"", b"{"])
def test_business_data_that_is_not_a_json_object_is_refused(plaintext) -> None:
    with pytest.raises(mobile.BusinessDataNotJson):
        _open(_replace(_seal(), encData=_encdata(plaintext)))


@pytest.mark.parametrize("depth", [40, 5000])
def test_business_data_nested_too_deeply_is_refused_when_opening(depth) -> None:
    # 40: past our limit for the signed string; 5000: past Python's recursion limit.
    plaintext = b'{"d":' * depth + b"1" + b"}" * depth
    with pytest.raises(mobile.BusinessDataNotJson):
        _open(_replace(_seal(), encData=_encdata(plaintext)))


# --- malformed envelopes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'"envelope"', b"{"],
    ids=["empty", "text", "array", "string", "truncated"],
)
def test_bodies_that_are_not_an_envelope_are_malformed(body) -> None:
    with pytest.raises(mobile.MalformedEnvelope):
        mobile.decode_envelope(body)


@pytest.mark.parametrize(
    "missing", ["appId", "timestamp", "encType", "signType", "encData", "signData"]
)
def test_missing_fields_are_malformed(missing) -> None:
    with pytest.raises(mobile.MalformedEnvelope, match=missing):
        mobile.decode_envelope(_body(_seal(), **{missing: ...}))


@pytest.mark.parametrize("unknown", ["extra", "data", "sign", "appid"])
def test_unknown_fields_are_malformed(unknown) -> None:
    with pytest.raises(mobile.MalformedEnvelope, match=unknown):
        mobile.decode_envelope(_body(_seal(), **{unknown: "x"}))


@pytest.mark.parametrize(
    "fields",
    [
        {"timestamp": str(STAMP)},
        {"timestamp": True},
        {"timestamp": -1},
        {"timestamp": 1.5},
        {"appId": "SHORT"},
        {"appId": APP_ID + "&x=1"},
        {"version": "1.0&timestamp=1"},
        {"encData": 12},
        {"signData": None},
    ],
)
def test_fields_of_the_wrong_form_are_malformed(fields) -> None:
    with pytest.raises(mobile.MalformedEnvelope):
        mobile.decode_envelope(_body(_seal(), **fields))


@pytest.mark.parametrize(
    "fields", [{"encType": "AES"}, {"signType": "RSA"}, {"encType": "sm4"}, {"signType": ""}]
)
def test_other_algorithms_are_unsupported(fields) -> None:
    envelope = mobile.decode_envelope(_body(_seal(), **fields))
    with pytest.raises(mobile.UnsupportedAlgorithm):
        _open(envelope)


def test_every_refusal_is_an_envelope_error_and_a_value_error() -> None:
    for error in (
        mobile.MalformedEnvelope,
        mobile.UnsupportedAlgorithm,
        mobile.DecryptionFailed,
        mobile.BusinessDataNotJson,
        mobile.SignatureInvalid,
    ):
        assert issubclass(error, mobile.EnvelopeError)
        assert issubclass(error, ValueError)


# --- properties -------------------------------------------------------------------------------

_SCALARS = (
    st.text(max_size=12)
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.booleans()
    | st.decimals(allow_nan=False, allow_infinity=False, places=2, max_value=10**9)
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(data=st.dictionaries(st.text(max_size=8), _JSON, max_size=5))
@settings(max_examples=60, deadline=None)
def test_any_json_object_round_trips(data) -> None:
    assert _open(_seal(data)).data == data


@given(body=st.binary(max_size=200))
def test_any_body_decodes_or_is_malformed(body) -> None:
    try:
        mobile.decode_envelope(body)
    except mobile.MalformedEnvelope:
        pass


@given(enc_data=st.text(max_size=80), sign_data=st.text(max_size=100))
@settings(max_examples=80)
def test_any_enc_data_and_sign_data_open_or_raise_an_envelope_error(enc_data, sign_data) -> None:
    try:
        _open(_replace(_SEALED, encData=enc_data, signData=sign_data))
    except mobile.EnvelopeError:
        pass
