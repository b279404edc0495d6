"""A patient-app client's side of the signing schemes: ours as an ``httpx.Auth``, and the national envelope.

Used by ``medpay demo``, the load and chaos scripts and the tests, so that all of
them sign exactly the way the README tells app developers to. ``AppSignatureAuth``
signs with an Ed25519, ECDSA P-256 or SM2 key (whichever PEM it is given);
:class:`NationalMobileClient` speaks the national mobile-payment interface
(SM2-signed, SM4-encrypted envelopes, :mod:`medpay.wire.mobile`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import httpx

from medpay.security.signatures import signature_headers
from medpay.wire import gm, mobile

__all__ = [
    "AgencySignatureAuth",
    "AppSignatureAuth",
    "InstitutionSignatureAuth",
    "NationalMobileClient",
    "OperatorSignatureAuth",
]


class AppSignatureAuth(httpx.Auth):
    """Adds X-App-Id, X-Timestamp, X-Nonce, X-Signature and the patient's bearer token."""

    requires_request_body = True
    id_header = "X-App-Id"

    def __init__(
        self,
        app_id: str,
        private_key_pem: str,
        identity_token: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] | None = None,
    ) -> None:
        self.app_id = app_id
        self.private_key_pem = private_key_pem
        self.identity_token = identity_token
        self._clock = clock
        self._nonce = nonce or (lambda: secrets.token_urlsafe(24))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the request as it will be sent."""
        headers = signature_headers(
            app_id=self.app_id,
            private_pem=self.private_key_pem,
            method=request.method,
            path_with_query=request.url.raw_path.decode("ascii"),
            body=request.content,
            timestamp=int(self._clock()),
            nonce=self._nonce(),
            id_header=self.id_header,
        )
        request.headers.update(headers)
        if self.identity_token is not None:
            request.headers["Authorization"] = f"Bearer {self.identity_token}"
        yield request


class AgencySignatureAuth(AppSignatureAuth):
    """Signs as an insurance agency (X-Agency-Id); no patient token."""

    id_header = "X-Agency-Id"

    def __init__(self, agency_id: str, private_key_pem: str, **kwargs: Any) -> None:
        super().__init__(agency_id, private_key_pem, None, **kwargs)


class OperatorSignatureAuth(AppSignatureAuth):
    """Signs as a medpay operator (X-Operator-Id); no patient token."""

    id_header = "X-Operator-Id"

    def __init__(self, operator_id: str, private_key_pem: str, **kwargs: Any) -> None:
        super().__init__(operator_id, private_key_pem, None, **kwargs)


class InstitutionSignatureAuth(AppSignatureAuth):
    """Signs as a designated institution (X-Institution-Id), e.g. issuing a prescription."""

    id_header = "X-Institution-Id"

    def __init__(self, institution_code: str, private_key_pem: str, **kwargs: Any) -> None:
        super().__init__(institution_code, private_key_pem, None, **kwargs)


@dataclass(eq=False)
class NationalMobileClient:
    """An app on the national interface: seal a request, POST it, open the gateway's answer.

    ``private_key`` is the app's SM2 key; ``gateway_public_key`` verifies the answers.
    ``transaction`` is 6201, 6202, 6203, 6301 or 6401.
    """

    http: httpx.AsyncClient
    _: KW_ONLY
    app_id: str
    app_secret: str = field(repr=False)
    private_key: gm.Sm2PrivateKey = field(repr=False)
    gateway_public_key: gm.Sm2PublicKey
    path: str = "/v1/mobile"

    def __post_init__(self) -> None:
        self.path = self.path.rstrip("/")

    def seal(self, data: Mapping[str, Any], *, timestamp_ms: int | None = None) -> bytes:
        """The request body for ``data``: signed, then encrypted."""
        envelope = mobile.seal(
            data,
            app_id=self.app_id,
            app_secret=self.app_secret,
            private_key=self.private_key,
            timestamp_ms=timestamp_ms,
        )
        return mobile.encode_envelope(envelope)

    async def send(self, transaction: str, body: bytes) -> mobile.OpenedAnswer:
        """POST an already sealed body; the answer verified (and decrypted)."""
        response = await self.http.post(
            f"{self.path}/{transaction}",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        response.raise_for_status()
        return mobile.open_answer(
            response.content,
            app_id=self.app_id,
            app_secret=self.app_secret,
            public_key=self.gateway_public_key,
        )

    async def call(self, transaction: str, data: Mapping[str, Any]) -> mobile.OpenedAnswer:
        """Seal ``data``, send it as ``transaction``, open the answer."""
        return await self.send(transaction, self.seal(data))
