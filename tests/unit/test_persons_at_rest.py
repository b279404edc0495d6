"""The person key (medpay.security.persons): references, sealed copies, stored documents."""

from __future__ import annotations

import pytest

from medpay.security.persons import (
    PERSON_REF_PATTERN,
    PersonIdentifiers,
    PersonKey,
    SealedPersonInvalid,
    by_reference,
    person_ref,
)
from medpay.security.secrets import generate_key

NUMBER = "33000000000000000001"
OTHER = "44000000000000000002"


CONFIGURED = generate_key()


@pytest.fixture
def key() -> PersonKey:
    return PersonKey(CONFIGURED)


def test_a_reference_is_32_hex_digits_the_same_each_time_and_keyed(key: PersonKey) -> None:
    ref = key.ref(NUMBER)
    assert PERSON_REF_PATTERN.fullmatch(ref)
    assert key.ref(NUMBER) == ref == PersonKey(CONFIGURED).ref(NUMBER)  # another process
    assert key.ref(OTHER) != ref
    assert PersonKey(generate_key()).ref(NUMBER) != ref  # another key, another reference
    assert NUMBER not in ref


def test_a_sealed_copy_opens_only_in_its_own_row_under_its_key(key: PersonKey) -> None:
    sealed = key.seal(PersonIdentifiers(NUMBER, "王建国"))
    assert NUMBER.encode() not in sealed and "王建国".encode() not in sealed
    assert key.open(sealed, key.ref(NUMBER)) == PersonIdentifiers(NUMBER, "王建国")
    assert key.seal(PersonIdentifiers(NUMBER, "王建国")) != sealed  # a fresh nonce each time
    with pytest.raises(SealedPersonInvalid):
        key.open(sealed, key.ref(OTHER))  # moved to another person's row
    with pytest.raises(SealedPersonInvalid):
        PersonKey(generate_key()).open(sealed, key.ref(NUMBER))
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealedPersonInvalid):
        key.open(tampered, key.ref(NUMBER))
    with pytest.raises(SealedPersonInvalid):
        key.open(b"\x02" + sealed[1:], key.ref(NUMBER))  # another key generation


def test_a_sealed_record_opens_only_for_its_context(key: PersonKey) -> None:
    sealed = key.seal_bytes(b'{"psn_no":"33000000000000000001"}', "app_1/key-1")
    assert b"33000000000000000001" not in sealed
    assert key.open_bytes(sealed, "app_1/key-1") == b'{"psn_no":"33000000000000000001"}'
    with pytest.raises(SealedPersonInvalid):
        key.open_bytes(sealed, "app_1/key-2")


def test_a_stored_document_keeps_identifiers_by_reference_and_drops_names() -> None:
    callback = {
        "callback_id": "cb1",
        "setlinfo": {"psn_no": NUMBER, "psn_name": "王建国", "medfee_sumamt": "111.00"},
        "setldetail": [{"fund_pay_type": "310100", "mdtrt_cert_no": "11010519491231002X"}],
        "err_msg": None,
    }
    kept = by_reference(callback)
    assert kept == {
        "callback_id": "cb1",
        "setlinfo": {"psn_no": person_ref(NUMBER), "medfee_sumamt": "111.00"},
        "setldetail": [
            {"fund_pay_type": "310100", "mdtrt_cert_no": person_ref("11010519491231002X")}
        ],
        "err_msg": None,
    }
