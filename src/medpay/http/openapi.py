"""The OpenAPI description: how to sign a request, with a short client example, and who signs what."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, Link, Operation, Reference, Schema, SecurityScheme

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition

__all__ = [
    "AGENCY_OR_OPERATOR",
    "AGENCY_SECURITY",
    "INSTITUTION_SECURITY",
    "OPERATOR_SECURITY",
    "PATIENT_SECURITY",
    "RESOURCE_LINKS",
    "ClosedStructSchemaPlugin",
    "add_resource_links",
    "openapi_config",
]

_SIGNED: dict[str, list[str]] = {"AppTimestamp": [], "AppNonce": [], "AppSignature": []}
#: Signed by an insurance agency's key (X-Agency-Id and the same three headers as apps).
AGENCY_SECURITY: list[dict[str, list[str]]] = [{"AgencyId": [], **_SIGNED}]
#: Signed by a medpay operator's key (X-Operator-Id).
OPERATOR_SECURITY: list[dict[str, list[str]]] = [{"OperatorId": [], **_SIGNED}]
#: Either of the two.
AGENCY_OR_OPERATOR: list[dict[str, list[str]]] = AGENCY_SECURITY + OPERATOR_SECURITY
#: A patient app's signature and the patient's identity token, both required.
PATIENT_SECURITY: list[dict[str, list[str]]] = [{"AppId": [], **_SIGNED, "PatientToken": []}]
#: Signed by a designated institution's key (X-Institution-Id).
INSTITUTION_SECURITY: list[dict[str, list[str]]] = [{"InstitutionId": [], **_SIGNED}]

DESCRIPTION = """\
medpay lets insured people pay for "Internet plus" care (online revisits, pharmacy
purchases on an e-prescription) with basic medical insurance, settled with their
home province.

## Signed requests
Every patient-app request carries four headers:

| header | value |
| --- | --- |
| `X-App-Id` | the app's registered id |
| `X-Timestamp` | unix seconds; refused when more than 300 s from the server's clock |
| `X-Nonce` | 16 to 64 characters of `A-Z a-z 0-9 _ -`, never reused |
| `X-Signature` | base64 of the signature over the string below |

The string signed is

```
METHOD\\nPATH_WITH_QUERY\\nTIMESTAMP\\nNONCE\\nHEX(SHA-256(BODY))
```

signed with the app's Ed25519 key, or its ECDSA P-256 key (SHA-256, DER signature).
`PATH_WITH_QUERY` is the request target as sent (`/v1/payments`, or
`/v1/payments?x=1`); an empty body hashes to
`e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`.

```python
import base64, hashlib, secrets, time
from cryptography.hazmat.primitives.serialization import load_pem_private_key

body = b'{"institution_code":"H11010800123", ...}'
ts, nonce = str(int(time.time())), secrets.token_urlsafe(24)
message = "\\n".join(["POST", "/v1/payments", ts, nonce, hashlib.sha256(body).hexdigest()])
key = load_pem_private_key(open("app-key.pem", "rb").read(), None)
headers = {"X-App-Id": APP_ID, "X-Timestamp": ts, "X-Nonce": nonce,
           "X-Signature": base64.b64encode(key.sign(message.encode())).decode(),
           "Authorization": f"Bearer {identity_token}", "Idempotency-Key": order_id,
           "Content-Type": "application/json"}
```

Each failure is a 401 `application/problem+json` with its own `code`:
`signature_missing`, `timestamp_invalid`, `timestamp_out_of_window`, `nonce_invalid`,
`app_unknown`, `app_suspended`, `signature_invalid`, `nonce_replayed`.

Insurance agencies (`X-Agency-Id`), medpay operators (`X-Operator-Id`) and designated
institutions issuing e-prescriptions (`X-Institution-Id`) sign the same way, each
against its own registry of keys: a patient app's key opens none of their endpoints.

## The patient
`Authorization: Bearer <JWT>` from a trusted identity service: EdDSA or ES256 only;
`iss`, `aud`, `exp`, `nbf` enforced with 30 s of clock leeway either way; a token may
live at most 4 hours (`exp - nbf`, else 401 `identity_token_lifetime_too_long`); `sub`
is the person number (`psn_no`). Paying needs `face` in `amr` (else 403
`face_verification_required`). A repeated security header (`X-App-Id`, `X-Timestamp`,
`X-Nonce`, `X-Signature`, `Authorization`) is refused: 401 `security_header_repeated`.

## Idempotency
Every POST takes `Idempotency-Key`. A repeat of the same request returns the first
status and body (with `Idempotent-Replayed: true`); another request under the same
key is 409 `idempotency_key_reused`; a repeat while the first still runs is 409
`idempotency_request_in_progress` with `Retry-After`. Keys are kept 24 hours.

## Requests
Bodies are JSON (`application/json`, else 415) of exactly the schema's types: `"1"` is
not an integer and `1` not a boolean; an integer is written without a fraction or an
exponent (`1.0` and `1e2`, which JSON Schema would take for integers, are refused:
amounts are integer fen, never floats); unknown fields are refused. A query parameter is
sent once (a repeat is 400 `query_parameter_repeated`). A body must arrive within 10 s
(else 408 and the connection is closed).

## Errors
Every error is `application/problem+json` (RFC 9457) with `type`, `title`, `status`,
`detail` and our stable `code`. Money is integer fen (1 yuan = 100 fen).

## The national mobile-payment interface (`/v1/mobile/...`)
For apps built against the national interface: 6201 fee upload (with the patient's
`payAuthNo`; answers `payOrdId`, `payToken`), 6202 pay (`ordStas`, `feeSumamt`,
`ownPayAmt`, `psnAcctPay`, `fundPay`), 6203 refund (in full), 6301 order query, 6401
upload cancel, onto the same payment flow. The body is the national envelope
`{appId, timestamp (ms), encType "SM4", signType "SM2", encData, signData, version?}`:

- `signData`: base64 of the raw `r || s` SM3withSM2 signature (user id
  `1234567812345678`) over the envelope's fields except `signData`/`encData`/`extra`,
  plus the plaintext business data as `data`, empty values skipped, sorted by key,
  `key=value` joined by `&` (objects as compact JSON with sorted keys, scalars as
  strings), then `&key=<appSecret>`;
- `encData`: upper-case hex of SM4-ECB (PKCS#7) of the business data as JSON, under
  the app's key: the first 16 characters of the upper-case hex of
  SM4-ECB(key = appId[:16], appSecret).

Checked in this order: the app, the clock (300 s), SM4 and SM2, replay (the same
signed message twice is refused). A `payAuthNo` is a face-verified identity token
(EdDSA/ES256, `aud` "medpay-mobile-pay", `sub` the person, a `jti`), used for one
order. Amounts are yuan with at most two decimals.

Every answer is HTTP 200 with `{code, message, errCode?, appId?, timestamp, encType,
signType, encData?, signData}` signed with the gateway's SM2 key by the same rules
(`&key=` the app's secret, or nothing when `appId` is absent). `code` 0 is success;
otherwise `code` is the failure's family and `errCode` its stable name:

| code | errCode |
| --- | --- |
| 400 | `envelope_malformed`, `algorithm_unsupported`, `business_data_invalid`, `amount_invalid`, `fee_total_mismatch` |
| 401 | `app_unknown`, `app_suspended`, `timestamp_out_of_window`, `decryption_failed`, `signature_invalid`, `request_replayed`, `pay_auth_invalid`, `pay_auth_expired` |
| 403 | `pay_auth_face_required`, `pay_auth_person_mismatch` |
| 404 | `order_not_found` |
| 409 | `order_number_reused`, `pay_auth_reused`, `order_cancelled`, `order_already_paid`, `order_not_paid`, `refund_already_requested`, `payment_not_reversible` |
| 413 | `request_too_large` |
| 422 | `refund_amount_mismatch`, and the payment flow's refusals (`person_not_insured`, ...) |
| 502, 503 | the home province refused, answered badly, or could not be reached; `front_door_not_configured` |
"""


def _header_key(name: str, description: str) -> SecurityScheme:
    return SecurityScheme(
        type="apiKey", name=name, security_scheme_in="header", description=description
    )


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """Struct schemas as Litestar makes them, closed where the server refuses unknown fields.

    What a client sends forbids unknown fields; the document says so with
    ``additionalProperties: false``.
    """

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        """Litestar's schema, closed when the Struct is."""
        schema = super().to_openapi_schema(field_definition, schema_creator)
        if field_definition.type_.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        _restore_zero_bounds(field_definition.type_, schema)
        return schema


_ZERO_BOUNDS = {
    "ge": "minimum",
    "gt": "exclusive_minimum",
    "le": "maximum",
    "lt": "exclusive_maximum",
}


def _restore_zero_bounds(struct: type, schema: Schema) -> None:
    """Put back the bounds of 0 that Litestar drops from optional numbers (it tests ``if value``).

    ``waiting_months: Annotated[int, Meta(ge=0, le=6)] | None`` came out with ``maximum: 6``
    and no ``minimum``: the document called -5 valid and the server refused it (found by
    schemathesis).
    """
    info = msgspec.inspect.type_info(struct)
    if not isinstance(info, msgspec.inspect.StructType) or not schema.properties:
        return
    for field in info.fields:
        target = schema.properties.get(field.encode_name)
        if not isinstance(target, Schema):
            continue
        options = (
            field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
        )
        for option in options:
            if isinstance(option, msgspec.inspect.IntType | msgspec.inspect.FloatType):
                for bound, keyword in _ZERO_BOUNDS.items():
                    if getattr(option, bound) == 0 and getattr(target, keyword) is None:
                        setattr(target, keyword, 0)


def openapi_config(version: str) -> OpenAPIConfig:
    """The document's info, security schemes and the signing scheme in prose."""
    return OpenAPIConfig(
        title="medpay",
        version=version,
        description=DESCRIPTION,
        use_handler_docstrings=True,
        create_examples=False,
        path="/schema",
        render_plugins=[JsonRenderPlugin()],
        components=Components(
            security_schemes={
                "AppId": _header_key("X-App-Id", "The patient app's registered id."),
                "AgencyId": _header_key(
                    "X-Agency-Id", "An insurance agency's registered id; signs like an app."
                ),
                "OperatorId": _header_key(
                    "X-Operator-Id", "A medpay operator's registered id; signs like an app."
                ),
                "InstitutionId": _header_key(
                    "X-Institution-Id",
                    "A designated institution's code (fixmedins_code); signs like an app.",
                ),
                "AppTimestamp": _header_key(
                    "X-Timestamp", "Unix seconds, within 300 s of the server."
                ),
                "AppNonce": _header_key("X-Nonce", "16 to 64 characters, used once."),
                "AppSignature": _header_key(
                    "X-Signature",
                    "base64 signature over METHOD\\nPATH_WITH_QUERY\\nTIMESTAMP\\nNONCE\\nHEX(SHA-256(BODY)).",
                ),
                "ProvinceSignature": _header_key(
                    "X-Province-Signature",
                    "base64 Ed25519 by the province's key over TIMESTAMP\\nHEX(SHA-256(BODY)), "
                    "with X-Province-Timestamp (unix seconds, within 300 s).",
                ),
                "PatientToken": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="The patient's identity token (EdDSA or ES256).",
                ),
            }
        ),
    )


def _from_body(*names: str) -> dict[str, str]:
    return {name: f"$response.body#/{name}" for name in names}


#: Where what a POST creates can be read and acted on next (OpenAPI links): the operation
#: that creates it, and for each next operation the path parameters taken from the answer.
#: Clients and the stateful fuzzer (schemathesis) follow them: create, then read.
RESOURCE_LINKS: dict[str, dict[str, dict[str, str]]] = {
    "createPayment": {
        "getPayment": _from_body("payment_id"),
        "reversePayment": _from_body("payment_id"),
    },
    "reversePayment": {"getPayment": _from_body("payment_id")},
    "issuePrescription": {"getPrescription": _from_body("prescription_id")},
    "createFiling": {
        "getFiling": _from_body("filing_id"),
        "changeFiling": _from_body("filing_id"),
        "cancelFiling": _from_body("filing_id"),
    },
    "changeFiling": {"getFiling": _from_body("filing_id")},
    "registerInstitution": {
        "getInstitution": _from_body("institution_code"),
        "signAgreement": _from_body("institution_code"),
    },
    "signAgreement": {
        "getInstitution": _from_body("institution_code"),
        "suspendAgreement": _from_body("institution_code", "agreement_id"),
        "dissolveAgreement": _from_body("institution_code", "agreement_id"),
        "reinstateAgreement": _from_body("institution_code", "agreement_id"),
    },
    "requestRelationshipTransfer": {
        "getRelationshipTransfer": _from_body("transfer_id"),
        "issueContributionCertificate": _from_body("transfer_id"),
        "acceptRelationshipTransfer": _from_body("transfer_id"),
        "rejectRelationshipTransfer": _from_body("transfer_id"),
        "cancelRelationshipTransfer": _from_body("transfer_id"),
    },
}


def add_resource_links(operation: Operation) -> None:
    """Add the :data:`RESOURCE_LINKS` of ``operation`` to its successful answers."""
    links = RESOURCE_LINKS.get(str(operation.operation_id))
    if not links or not operation.responses:
        return
    for status, response in operation.responses.items():
        if str(status).startswith("2") and not isinstance(response, Reference):
            response.links = {
                target: Link(operation_id=target, parameters=dict(parameters))
                for target, parameters in links.items()
            }
