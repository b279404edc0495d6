"""schemathesis against the served OpenAPI document, every request signed (issue 12, item 2).

A real gateway and simulator on loopback; schemathesis runs in a thread beside them,
over HTTP, with a signing hook that signs each request the way its operation's
``security`` says (the app's signature and the patient's token, or an agency's,
operator's or institution's signature). What must hold, per answer:

- no 5xx (``not_a_server_error``); the status, content type, headers and body are the
  ones the document gives for that operation;
- schema-valid data is never refused as malformed (``positive_data_acceptance``): it may
  be refused by a documented rule of the domain (401, 403, 404, 409, 422, 429, 502,
  503), never with 400, 413 or 415; schema-invalid data is refused
  (``negative_data_rejection``);
- the stateful phase follows the document's links (create a payment, then read and
  reverse it; issue a prescription, then read it; a filing, an institution and its
  agreement, a relationship transfer), with realistic bodies for some creates so that
  links are followed from things that exist.

The national front door (``/v1/mobile/*``) is fuzzed at the envelope level, unsigned
and in positive mode only: it answers every failure with HTTP 200 in its own envelope,
so "refused" is not a status there; what holds is no 5xx and an answer of its schema.
Provincial callbacks are left out (signed by a province's key; their parser is
property-fuzzed in ``tests/unit/test_fuzz_parsers.py``).

Bounded for CI: ``MEDPAY_FUZZ_EXAMPLES`` cases per operation and mode (default 4) and
``MEDPAY_FUZZ_SCENARIOS`` stateful scenarios (default 8); raise them for a longer run.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import os
import secrets
import time
import traceback
from typing import Any

import hypothesis
import msgspec
import requests
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode

from medpay.app import create_app
from medpay.demo import DEMO_ORDER
from medpay.http.openapi import RESOURCE_LINKS
from medpay.institutions.keys import register_institution_key
from medpay.security.signatures import signature_headers

from .conftest import ZHEJIANG_EMPLOYEE, running_gateway

EXAMPLES = int(os.environ.get("MEDPAY_FUZZ_EXAMPLES", "4"))
SCENARIOS = int(os.environ.get("MEDPAY_FUZZ_SCENARIOS", "8"))
STEPS = int(os.environ.get("MEDPAY_FUZZ_STEPS", "8"))
#: What a schema-valid request may be answered: success, or a documented refusal that is
#: not "malformed" (400, 413, 415 would mean a rule the document does not state).
ACCEPTED = ["2xx", "401", "403", "404", "409", "422", "429", "502", "503"]
CONFIG = {
    # The stateless phase asks for each mode itself; the stateful one follows links from
    # things that exist, so it sends valid data (invalid data is the stateless phase's).
    "generation": {"mode": "positive"},
    "checks": {
        "positive_data_acceptance": {"expected-statuses": ACCEPTED},
        # Its probe drops the credentials but our signer adds them back: 401s without
        # credentials are tested one by one in test_signed_requests and test_identity_tokens.
        "ignored_auth": {"enabled": False},
    },
}
#: Treatment areas to file for, one after another (filings for one area overlap).
_AREAS = ["110000", "120000", "130000", "310000", "320000", "340000", "350000", "360000",
          "370000", "410000", "420000", "430000", "440000", "450000", "500000", "510000"]  # fmt: skip


def _filing(n: int) -> dict[str, Any]:
    return {
        "psn_no": ZHEJIANG_EMPLOYEE,
        "treatment_area": _AREAS[n % len(_AREAS)],
        "filing_type": "referral",
        "valid_from": "2024-01-01",
    }


def _institution(n: int) -> dict[str, Any]:
    return {
        "institution_code": f"H320102{n:05d}",
        "name": "南京市鼓楼医院",
        "area": "320102",
        "kind": "hospital",
        "level": 3,
    }


#: Realistic bodies for some creates (the n-th of each), sent for every other positive
#: case, so that the stateful phase follows links from things that exist.
REALISTIC: dict[str, Any] = {
    "createPayment": lambda n: copy.deepcopy(DEMO_ORDER),
    "issuePrescription": lambda n: {
        "psn_no": ZHEJIANG_EMPLOYEE,
        "kind": "standard",
        "items": [{"item_code": "XA10BAA075A001010101445", "max_quantity": 2}],
    },
    "createFiling": _filing,
    "registerInstitution": _institution,
}


class Signer(requests.auth.AuthBase):
    """Signs a prepared request as one caller: the four headers, and the patient's token."""

    def __init__(self, id_header: str, caller_id: str, private_pem: str, token: str | None) -> None:
        self.id_header, self.caller_id, self.private_pem, self.token = (
            id_header,
            caller_id,
            private_pem,
            token,
        )

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        headers = signature_headers(
            app_id=self.caller_id,
            private_pem=self.private_pem,
            method=str(request.method),
            path_with_query=str(request.path_url),
            body=body,
            timestamp=int(time.time()),
            nonce=secrets.token_urlsafe(24),
            id_header=self.id_header,
        )
        for name in ("X-App-Id", "X-Agency-Id", "X-Operator-Id", "X-Institution-Id"):
            request.headers.pop(name, None)
        request.headers.update(headers)
        if self.token is not None:
            request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class Run:
    """One schemathesis run: its signers, its counts and what it found."""

    def __init__(self, url: str, signers: dict[str, Signer]) -> None:
        self.url = url
        self.signers = signers
        self.cases: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[int] = collections.Counter()
        self.failures: list[str] = []
        self.drawn: collections.Counter[str] = collections.Counter()
        #: Stateful steps that succeeded, by operation: the links followed from real things.
        self.succeeded: collections.Counter[str] = collections.Counter()
        self.positive = False
        self.ended_early = False

    def auth_for(self, operation: Any) -> Signer | None:
        for requirement in operation.definition.raw.get("security", []):
            for scheme in requirement:
                if scheme in self.signers:
                    return self.signers[scheme]
        return None

    def auth_for_case(self, case: Any) -> Signer | None:
        """The signer of the case's operation, unless the case leaves its headers out on purpose."""
        if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
            # Headers were made invalid (the security ones among them): signing would undo it.
            return None
        return self.auth_for(case.operation)

    def realistic(self, case: Any) -> None:
        """Every other positive case of a create gets a body that can succeed."""
        known = REALISTIC.get(case.operation.definition.raw.get("operationId"))
        if known is None or case.meta is None or not case.meta.generation.mode.is_positive:
            return
        self.drawn[case.operation.label] += 1
        drawn = self.drawn[case.operation.label]
        if drawn % 2:
            case.body = known(drawn // 2)

    def send(self, case: Any) -> Any:
        self.realistic(case)
        response = case.call(base_url=self.url, auth=self.auth_for_case(case), timeout=30)
        self.cases[case.operation.label] += 1
        self.statuses[response.status_code] += 1
        return response


def _schema(run: Run) -> Any:
    config = SchemathesisConfig.from_dict(CONFIG)
    schema = schemathesis.openapi.from_url(f"{run.url}/schema/openapi.json", config=config)
    schema = schema.exclude(path_regex="^/v1/callbacks/")
    # Readiness answers a documented 503 whenever the database or a province is slow to
    # answer its probe (a loaded CI machine): the truth, which the no-5xx check would
    # count as a failure. test_observability tests both of its answers.
    schema = schema.exclude(path_regex="^/health/ready$")

    @schema.hook("filter_body")
    def no_integral_floats(context: Any, body: Any) -> bool:
        # JSON Schema takes 4489.0 for an integer; the gateway, as its document says, does not.
        return not (run.positive and _has_integral_float(body))

    return schema


def _stateless(run: Run, schema: Any) -> None:
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = [GenerationMode.POSITIVE]
        if not operation.path.startswith("/v1/mobile/"):
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            run.positive = mode is GenerationMode.POSITIVE

            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            def exercise(case: Any) -> None:
                case.validate_response(run.send(case))

            try:
                exercise()
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing of this operation can be made invalid (GET /health)
            except (Exception, BaseExceptionGroup) as exc:
                run.failures.append(f"{operation.label} ({mode}): {_summary(exc)}")


def _stateful(run: Run, schema: Any) -> None:
    run.positive = True

    # The operations the links join, so that a scenario's steps follow them rather than
    # wander over all forty: the creates and whatever reads or acts on what they made.
    linked = sorted({op for create, targets in RESOURCE_LINKS.items() for op in (create, *targets)})
    schema = schema.include(operation_id=linked)

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            run.realistic(case)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": run.url, "auth": run.auth_for_case(case), "timeout": 30}

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            run.cases[f"stateful {case.operation.label}"] += 1
            run.statuses[response.status_code] += 1
            if response.status_code < 300:
                run.succeeded[case.operation.label] += 1

    try:
        Machine.run(
            settings=hypothesis.settings(
                max_examples=SCENARIOS,
                stateful_step_count=STEPS,
                # No shrinking: the server's state has moved on, so a replay would differ
                # (hypothesis calls that flaky); the first failing scenario is reported as is.
                phases=[hypothesis.Phase.generate],
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(hypothesis.HealthCheck),
            )
        )
    except hypothesis.errors.FlakyStrategyDefinition:
        # hypothesis replays a scenario's choices and finds the server moved on (a create
        # that succeeded is now a 409, so a bundle is empty): not a finding, the run ends.
        run.ended_early = True
    except (Exception, BaseExceptionGroup) as exc:
        run.failures.append(f"stateful: {_summary(exc)}")


def _has_integral_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_integral_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_integral_float(v) for v in value)
    return False


def _summary(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    for sub in getattr(exc, "exceptions", ()):
        text += "\n  - " + "".join(traceback.format_exception_only(type(sub), sub)).strip()
    return text[:3000]


async def test_schemathesis_finds_nothing_in_the_signed_api(
    settings, clearing, signed, patient_app, patient_token, zhejiang_agency, operator, db_pool
) -> None:
    # The fuzzer comes from one address and sends garbage on purpose: limits out of its way.
    unlimited = msgspec.structs.replace(
        settings,
        rate_limit_per_source=10**7,
        rate_limit_per_caller=10**7,
        rate_limit_per_person=10**7,
        rate_limit_estimates_per_caller=10**7,
        rate_limit_estimates_per_person=10**7,
    )
    institution_key, _ = await register_institution_key(db_pool, "H11010800124")
    async with running_gateway(create_app(unlimited, clearing=clearing)) as client:
        run = Run(
            str(client.base_url).rstrip("/"),
            {
                "PatientToken": Signer(
                    "X-App-Id", patient_app.app_id, patient_app.private_key_pem, patient_token
                ),
                "AgencyId": Signer(
                    "X-Agency-Id", zhejiang_agency.party_id, zhejiang_agency.private_key_pem, None
                ),
                "OperatorId": Signer(
                    "X-Operator-Id", operator.party_id, operator.private_key_pem, None
                ),
                "InstitutionId": Signer("X-Institution-Id", "H11010800124", institution_key, None),
            },
        )

        def fuzz() -> None:
            schema = _schema(run)
            _stateless(run, schema)
            _stateful(run, schema)

        started = time.monotonic()
        await asyncio.to_thread(fuzz)
        elapsed = time.monotonic() - started

    stateless = sum(n for label, n in run.cases.items() if not label.startswith("stateful "))
    stateful = sum(n for label, n in run.cases.items() if label.startswith("stateful "))
    print(
        f"\nschemathesis: {len([k for k in run.cases if not k.startswith('stateful ')])} operations,"
        f" {stateless} stateless and {stateful} stateful cases in {elapsed:.1f} s;"
        f" statuses {dict(sorted(run.statuses.items()))}; {len(run.failures)} failures;"
        f" stateful successes {dict(sorted(run.succeeded.items()))}"
        + (
            " (the stateful run ended early: the server's state moved on)"
            if run.ended_early
            else ""
        )
    )
    assert not run.failures, "\n\n".join(run.failures)
    assert stateless > 0 and stateful > 0
