"""An identity token is verified once and remembered, never past its validity."""

from __future__ import annotations

import time

import jwt
import pytest

from medpay.errors import Unauthenticated
from medpay.security.identity import DevelopmentIssuer, IdentityVerifier

PERSON = "33000000000000000001"


@pytest.fixture(scope="module")
def issuer() -> DevelopmentIssuer:
    return DevelopmentIssuer.generate()


def test_a_token_is_checked_once_then_remembered(issuer, monkeypatch):
    verifier = IdentityVerifier((issuer.trusted(),), "medpay", 0)
    token = issuer.issue(PERSON)
    first = verifier.verify_token(token)
    calls = []
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: calls.append(1))

    again = verifier.verify_token(token)

    assert again == first
    assert calls == []


def test_a_remembered_token_is_refused_once_it_expires(issuer):
    verifier = IdentityVerifier((issuer.trusted(),), "medpay", 0)
    token = issuer.issue(PERSON, ttl_seconds=1)
    assert verifier.verify_token(token).psn_no == PERSON

    time.sleep(1.2)

    with pytest.raises(Unauthenticated) as refused:
        verifier.verify_token(token)
    assert refused.value.code == "identity_token_expired"


def test_the_cache_is_bounded(issuer):
    verifier = IdentityVerifier((issuer.trusted(),), "medpay", 0, cache_size=3)
    tokens = [issuer.issue(PERSON, extra={"n": n}) for n in range(5)]
    for token in tokens:
        verifier.verify_token(token)
    assert len(verifier._verified) == 3
    assert list(verifier._verified) == tokens[2:]
