"""Load test of a medpay gateway for staging (issue 9, item 5): the realistic mix, really signed.

Sends the payment mix of ``workload.py`` (online revisits, pharmacy purchases on
prescriptions that the person's internet hospital issues just before, a few
estimates; persons of all 31 provinces, a third treated outside their province) to
the ``--host`` it is given and nowhere else: every request is a path on that host,
redirects are not followed. Each request carries the app's signature (README,
"Signing a request") and the person's identity token, minted once per person.
Each simulated user runs ``--medpay-rate`` tasks per second (``constant_throughput``),
so the offered load is users x rate, whatever the latency. Failures are named by the
problem document's ``code`` (``422 person_not_insured``); a payment answered 202 is a
failure named ``202 processing`` (the province's answer did not come in time).

What it needs (each an option or an environment variable; paths on every worker):

=============================  ===========================  =================================
option                         environment                  what, and how a staging operator gets it
=============================  ===========================  =================================
``--medpay-app-id``            ``MEDPAY_LOAD_APP_ID``       the patient app: ``medpay apps add "load test"``
``--medpay-app-key``           ``MEDPAY_LOAD_APP_KEY``      file with that app's private key (PEM, printed by it)
``--medpay-population``        ``MEDPAY_LOAD_POPULATION``   ``medpay seed --persons N --out FILE`` (against
                                                            staging's DATABASE_URL; ``--no-simulator`` when the
                                                            provinces are not the simulator)
``--medpay-issuer-key``        ``MEDPAY_LOAD_ISSUER_KEY``   an identity issuer's private key (PEM) that staging
                                                            trusts (``MEDPAY_IDENTITY_ISSUERS``); e.g. the
                                                            development issuer's ``.medpay/dev-identity-issuer.pem``
``--medpay-issuer``            ``MEDPAY_LOAD_ISSUER``       its ``iss`` (default ``medpay-dev-identity``)
``--medpay-tokens``            ``MEDPAY_LOAD_TOKENS``       instead of a key: JSON ``{psn_no: token}``, e.g. from
                                                            ``medpay tokens issue PSN_NO --ttl 7200``
``--medpay-prescribers``       ``MEDPAY_LOAD_PRESCRIBERS``  JSON ``{institution_code: private key PEM}``:
                                                            ``medpay seed ... --prescriber-keys FILE``; without
                                                            it there are no pharmacy purchases
``--medpay-rate``              ``MEDPAY_LOAD_RATE``         tasks per second per user (default 1)
=============================  ===========================  =================================

One machine, headless, 30 s::

    locust -f scripts/locustfile.py --headless -u 50 -r 10 --run-time 30s --host https://staging.example

Distributed (a master and workers, e.g. one worker per core)::

    locust -f scripts/locustfile.py --master --headless -u 500 -r 50 --run-time 10m \\
        --expect-workers 4 --host https://staging.example
    locust -f scripts/locustfile.py --worker --master-host MASTER_ADDRESS    # on each worker

Headless without ``--run-time`` it stops after 60 s all the same: a load test ends by
itself.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from locust import FastHttpUser, events, task
from locust.user.wait_time import constant_throughput

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import PaymentMix, Planned, new_key

from medpay.population import load_population_file
from medpay.security.identity import DEV_ISSUER, DevelopmentIssuer
from medpay.security.signatures import signature_headers

DEFAULT_RUN_TIME_S = 60
TOKEN_TTL_S = 2 * 3600
PROBLEM = "application/problem+json"
failures_by_code: Counter[str] = Counter()


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("medpay")
    group.add_argument(
        "--medpay-app-id", env_var="MEDPAY_LOAD_APP_ID", default="", help="patient app id"
    )
    group.add_argument(
        "--medpay-app-key",
        env_var="MEDPAY_LOAD_APP_KEY",
        default="",
        help="its private key (PEM file)",
    )
    group.add_argument(
        "--medpay-population",
        env_var="MEDPAY_LOAD_POPULATION",
        default="",
        help="population file of medpay seed",
    )
    group.add_argument(
        "--medpay-issuer-key",
        env_var="MEDPAY_LOAD_ISSUER_KEY",
        default="",
        help="identity issuer private key (PEM file)",
    )
    group.add_argument(
        "--medpay-issuer", env_var="MEDPAY_LOAD_ISSUER", default=DEV_ISSUER, help="the issuer's iss"
    )
    group.add_argument(
        "--medpay-audience",
        env_var="MEDPAY_LOAD_AUDIENCE",
        default="medpay",
        help="the tokens' aud",
    )
    group.add_argument(
        "--medpay-tokens",
        env_var="MEDPAY_LOAD_TOKENS",
        default="",
        help="JSON file {psn_no: token}",
    )
    group.add_argument(
        "--medpay-prescribers",
        env_var="MEDPAY_LOAD_PRESCRIBERS",
        default="",
        help="JSON file {code: PEM}",
    )
    group.add_argument(
        "--medpay-rate",
        env_var="MEDPAY_LOAD_RATE",
        type=float,
        default=1.0,
        help="tasks/s per user",
    )
    group.add_argument(
        "--medpay-seed",
        env_var="MEDPAY_LOAD_SEED",
        type=int,
        default=1,
        help="mix seed (per process)",
    )


@events.init.add_listener
def _bounded(environment: Any, **_: Any) -> None:
    """Refuse a run without a host; give a headless run without --run-time one."""
    options = environment.parsed_options
    if options is None or options.worker:
        return  # a worker takes the host and the options from its master
    if not environment.host:
        raise SystemExit("locustfile: --host is required (the gateway to load, and nothing else)")
    if urlsplit(environment.host).scheme not in ("http", "https"):
        raise SystemExit(f"locustfile: --host must be an http(s) URL, not {environment.host!r}")
    if options.headless and not options.run_time:
        options.run_time = DEFAULT_RUN_TIME_S
        print(
            f"locustfile: no --run-time given; stopping after {DEFAULT_RUN_TIME_S} s",
            file=sys.stderr,
        )


class Traffic:
    """What every user of this process shares: keys, persons, tokens, the mix."""

    def __init__(self, options: Any) -> None:
        def required(value: str, name: str) -> str:
            if not value:
                raise SystemExit(f"locustfile: {name} is required (see the module docstring)")
            return value

        self.app_id = required(options.medpay_app_id, "--medpay-app-id / MEDPAY_LOAD_APP_ID")
        self.app_key = Path(required(options.medpay_app_key, "--medpay-app-key")).read_text()
        population = load_population_file(
            required(options.medpay_population, "--medpay-population")
        )
        self.tokens: dict[str, tuple[str, float]] = {}
        self.issuer: DevelopmentIssuer | None = None
        self.audience = options.medpay_audience
        persons = population.persons
        if options.medpay_issuer_key:
            self.issuer = DevelopmentIssuer(
                Path(options.medpay_issuer_key).read_text(), issuer=options.medpay_issuer
            )
        elif options.medpay_tokens:
            given = json.loads(Path(options.medpay_tokens).read_text())
            self.tokens = {psn: (token, float("inf")) for psn, token in given.items()}
            persons = [p for p in persons if p.psn_no in given]
        else:
            raise SystemExit("locustfile: give --medpay-issuer-key or --medpay-tokens")
        self.prescribers: dict[str, str] = {}
        if options.medpay_prescribers:
            self.prescribers = json.loads(Path(options.medpay_prescribers).read_text())
        self.mix = PaymentMix(
            persons,
            population.institutions,
            seed=options.medpay_seed * 100_003 + os.getpid(),
            pharmacy_share=0.33 if self.prescribers else 0.0,
        )
        if not options.medpay_rate > 0:
            raise SystemExit("locustfile: --medpay-rate must be more than 0 tasks per second")
        self.rate = options.medpay_rate

    def token(self, psn_no: str) -> str:
        """The person's identity token, minted once (and again shortly before it expires)."""
        token, expires = self.tokens.get(psn_no, ("", 0.0))
        if time.time() < expires - 300:
            return token
        assert self.issuer is not None, f"no token for {psn_no}"
        token = self.issuer.issue(psn_no, audience=self.audience, ttl_seconds=TOKEN_TTL_S)
        self.tokens[psn_no] = (token, time.time() + TOKEN_TTL_S)
        return token

    def headers(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        psn_no: str | None = None,
        signer: tuple[str, str, str] | None = None,
    ) -> dict[str, str]:
        """Signed headers for one request: as the app (with the patient's token) or another signer."""
        app_id, key, id_header = signer or (self.app_id, self.app_key, "X-App-Id")
        headers = signature_headers(
            app_id=app_id,
            private_pem=key,
            method=method,
            path_with_query=path,
            body=body,
            timestamp=int(time.time()),
            nonce=secrets.token_urlsafe(24),
            id_header=id_header,
        )
        headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = new_key("locust")
        if psn_no is not None:
            headers["Authorization"] = f"Bearer {self.token(psn_no)}"
        return headers


_traffic: Traffic | None = None


def traffic(environment: Any) -> Traffic:
    global _traffic
    if _traffic is None:
        _traffic = Traffic(environment.parsed_options)
    return _traffic


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _failure(response: Any) -> str:
    """The failure's name: status and problem code."""
    code = "-"
    if response.headers and PROBLEM in (response.headers.get("content-type") or ""):
        try:
            code = json.loads(response.content).get("code", "-")
        except ValueError:
            code = "unparsable problem"
    elif response.status_code == 202:
        code = "processing"
    elif response.status_code == 0:
        code = "no answer"
    return f"{response.status_code} {code}"


class PatientApp(FastHttpUser):
    """A patient app sending the mix; paths only, on the host given."""

    def on_start(self) -> None:
        self.traffic = traffic(self.environment)
        self.pacer = constant_throughput(self.traffic.rate)

    def wait_time(self) -> float:
        return self.pacer(self)

    def _post(
        self, path: str, data: bytes, name: str, expected: int, headers: dict[str, str]
    ) -> Any:
        with self.client.post(
            path, data=data, headers=headers, name=name, catch_response=True, allow_redirects=False
        ) as response:
            if response.status_code == expected:
                response.success()
                return response
            failure = _failure(response)
            failures_by_code[failure] += 1
            response.failure(failure)
            return None

    def _as_patient(
        self, plan: Planned, path: str, body: dict[str, Any], name: str, expected: int
    ) -> Any:
        data = _encode(body)
        headers = self.traffic.headers("POST", path, data, psn_no=plan.person.psn_no)
        return self._post(path, data, name, expected, headers)

    @task
    def pay(self) -> None:
        plan = self.traffic.mix.next()
        if plan.kind == "estimate":
            self._as_patient(plan, plan.path, plan.order, "POST /v1/payments/estimate", 200)
            return
        order = plan.order
        if plan.kind == "pharmacy":
            assert plan.prescriber is not None and plan.prescription is not None
            data = _encode(plan.prescription)
            signer = (
                plan.prescriber,
                self.traffic.prescribers[plan.prescriber],
                "X-Institution-Id",
            )
            headers = self.traffic.headers("POST", "/v1/prescriptions", data, signer=signer)
            issued = self._post("/v1/prescriptions", data, "POST /v1/prescriptions", 201, headers)
            if issued is None:
                return
            order = plan.with_prescription(json.loads(issued.content)["prescription_id"])
        name = (
            "POST /v1/payments (pharmacy purchase)"
            if plan.kind == "pharmacy"
            else "POST /v1/payments (online revisit)"
        )
        self._as_patient(plan, "/v1/payments", order, name, 201)


@events.quitting.add_listener
def _report(environment: Any, **_: Any) -> None:
    """Failures by problem code, over every request name (this process's share)."""
    if failures_by_code:
        print("failures by problem code:", file=sys.stderr)
        for failure, count in failures_by_code.most_common():
            print(f"  {count:>7}  {failure}", file=sys.stderr)
