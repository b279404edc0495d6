"""The national envelope's answers (wire.mobile): signed, encrypted for the app, verifiable."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from medpay.wire import gm, mobile

GATEWAY = gm.generate_private_key()
APP = gm.generate_private_key()
APP_ID = "3F2A9C7B1E4D8F6A0B5C2D7E9F1A3B4C"
SECRET = "Q7W2E9R4T6Y1U8I3O5P0A2S4D6F8G1H3"


def test_a_success_answer_opens_for_its_app() -> None:
    sealed = mobile.seal_answer(
        {"payOrdId": "ORD1", "feeSumamt": Decimal("12.30")},
        code=0,
        message="success",
        app_id=APP_ID,
        app_secret=SECRET,
        private_key=GATEWAY,
    )
    body = mobile.encode_answer(sealed)
    assert b'"code":0' in body and b"errCode" not in body

    opened = mobile.open_answer(
        body, app_id=APP_ID, app_secret=SECRET, public_key=GATEWAY.public_key()
    )

    assert (opened.code, opened.err_code, opened.app_id) == (0, None, APP_ID)
    assert opened.data == {"payOrdId": "ORD1", "feeSumamt": Decimal("12.30")}


def test_a_failure_to_an_unknown_app_is_signed_without_a_secret() -> None:
    body = mobile.encode_answer(
        mobile.seal_answer(
            None, code=401, message="no such app", err_code="app_unknown", private_key=GATEWAY
        )
    )
    opened = mobile.open_answer(
        body, app_id=APP_ID, app_secret=SECRET, public_key=GATEWAY.public_key()
    )
    assert (opened.code, opened.err_code, opened.app_id, opened.data) == (
        401,
        "app_unknown",
        None,
        None,
    )


def test_an_answer_with_a_changed_code_does_not_verify() -> None:
    sealed = mobile.seal_answer(
        None,
        code=409,
        message="conflict",
        err_code="order_cancelled",
        app_id=APP_ID,
        app_secret=SECRET,
        private_key=GATEWAY,
    )
    forged = msgspec.structs.replace(sealed, code=0)
    with pytest.raises(mobile.SignatureInvalid):
        mobile.open_answer(
            forged, app_id=APP_ID, app_secret=SECRET, public_key=GATEWAY.public_key()
        )
    with pytest.raises(mobile.SignatureInvalid):  # another signer
        mobile.open_answer(sealed, app_id=APP_ID, app_secret=SECRET, public_key=APP.public_key())


def test_an_answer_for_another_app_is_refused() -> None:
    sealed = mobile.seal_answer(
        {"a": "1"}, code=0, message="ok", app_id=APP_ID, app_secret=SECRET, private_key=GATEWAY
    )
    with pytest.raises(mobile.MalformedEnvelope, match="for app"):
        mobile.open_answer(
            sealed, app_id="0" * 16, app_secret=SECRET, public_key=GATEWAY.public_key()
        )
    with pytest.raises(mobile.DecryptionFailed):
        mobile.open_answer(
            sealed, app_id=APP_ID, app_secret="another secret!!", public_key=GATEWAY.public_key()
        )


def test_data_is_only_ever_encrypted_for_a_named_app() -> None:
    with pytest.raises(ValueError, match="encrypted for an app"):
        mobile.seal_answer({"a": "1"}, code=0, message="ok", private_key=GATEWAY)
    with pytest.raises(ValueError, match="together"):
        mobile.seal_answer(None, code=0, message="ok", app_id=APP_ID, private_key=GATEWAY)


def test_the_replay_digest_names_the_message_not_its_signature() -> None:
    data = {"payOrdId": "ORD1"}
    one = mobile.seal(data, app_id=APP_ID, app_secret=SECRET, private_key=APP, timestamp_ms=1)
    two = mobile.seal(data, app_id=APP_ID, app_secret=SECRET, private_key=APP, timestamp_ms=1)
    later = mobile.seal(data, app_id=APP_ID, app_secret=SECRET, private_key=APP, timestamp_ms=2)
    assert one.signData != two.signData  # SM2 signatures are randomised

    def digest(envelope: mobile.Envelope) -> str:
        opened = mobile.open_envelope(envelope, app_secret=SECRET, public_key=APP.public_key())
        return mobile.replay_digest(opened)

    assert digest(one) == digest(two) != digest(later)
    assert SECRET not in digest(one)
