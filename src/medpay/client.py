"""A patient-app client's side of the signing scheme, as an ``httpx.Auth``.

Used by ``medpay demo``, the load and chaos scripts and the tests, so that all of
them sign exactly the way the README tells app developers to.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Generator
from typing import Any

import httpx

from medpay.security.signatures import signature_headers

__all__ = [
    "AgencySignatureAuth",
    "AppSignatureAuth",
    "InstitutionSignatureAuth",
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
