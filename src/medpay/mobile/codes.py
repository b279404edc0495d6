"""How the national front door answers a failure: ``code``, ``errCode`` and ``message``.

Every answer, success or failure, is HTTP 200 with the national answer envelope, as
the national interface answers (its ``code`` says what happened, not the HTTP
status). ``code`` is 0 for success; for a failure it is the family of the failure,
numbered like the HTTP status our own API (``/v1``) gives the same kind of error, and
``errCode`` is its stable name:

| code | errCode (stable) |
| --- | --- |
| 400 | `envelope_malformed` (not JSON; a field missing, unknown or mistyped), `algorithm_unsupported` (encType / signType not SM4 / SM2), `business_data_invalid` (encData is not the transaction's data), `amount_invalid` (more than two decimals, negative, a float), `fee_total_mismatch` (a line is not `cnt * pric`, or the total not their sum) |
| 401 | `app_unknown`, `app_suspended`, `timestamp_out_of_window` (more than 300 s from the gateway's clock), `decryption_failed` (not the app's SM4 key), `signature_invalid`, `request_replayed` (the same signed message twice), `pay_auth_invalid`, `pay_auth_expired` |
| 403 | `pay_auth_face_required`, `pay_auth_person_mismatch` (a payAuthNo of another person) |
| 404 | `order_not_found` (no such payOrdId for this app, or the payToken does not match) |
| 409 | `order_number_reused` (a medOrgOrd uploaded before with other content), `pay_auth_reused` (a payAuthNo bound to another order), `order_cancelled`, `order_already_paid` (6401 after 6202), `order_not_paid`, `refund_already_requested` (another appRefdSn), `payment_not_reversible` |
| 413 | `request_too_large` |
| 422 | `refund_amount_mismatch` (only full refunds), and every refusal of the payment flow under its own code (`person_not_insured`, `prescription_required`, `treatment_area_mismatch`, `filing_required`, ...) |
| 502 | the home province refused or answered badly (its problem code) |
| 503 | the home province could not be reached; `front_door_not_configured` (unsigned: there is no key to sign with) |
| 500 | `internal_error` (never expected; nothing half-done is left behind) |

Answers to requests that name no registered app carry no ``appId`` and are signed
without an appSecret (see :mod:`medpay.wire.mobile`).
"""

from __future__ import annotations

from typing import Final

from medpay.errors import DomainError, InvalidRequest, Unauthenticated
from medpay.http.problems import status_of
from medpay.wire import mobile

__all__ = [
    "INTERNAL_ERROR",
    "SUCCESS",
    "answer_code",
    "envelope_refusal",
    "refusal",
]

SUCCESS: Final = 0
INTERNAL_ERROR: Final = 500


def answer_code(exc: DomainError) -> int:
    """The answer's ``code`` for a failure: its family, as the HTTP status of its kind."""
    return status_of(exc)


def refusal(code: str, title: str, detail: str | None = None) -> Unauthenticated:
    """A request the front door does not believe (401 family)."""
    return Unauthenticated(code, title, detail)


def envelope_refusal(exc: mobile.EnvelopeError) -> DomainError:
    """The domain error of an envelope that does not open (wire.mobile's exceptions)."""
    detail = str(exc)
    if isinstance(exc, mobile.UnsupportedAlgorithm):
        return InvalidRequest("algorithm_unsupported", "encType must be SM4, signType SM2", detail)
    if isinstance(exc, mobile.DecryptionFailed):
        return refusal("decryption_failed", "encData does not decrypt under the app's key", detail)
    if isinstance(exc, mobile.SignatureInvalid):
        return refusal("signature_invalid", "signData does not verify", detail)
    if isinstance(exc, mobile.BusinessDataNotJson):
        return InvalidRequest("business_data_invalid", "encData is not a JSON object", detail)
    return InvalidRequest("envelope_malformed", "The envelope is malformed", detail)
