"""HTTP for the operator's view of the books: volumes, a payment's story, balances, the check.

Signed operator endpoints (``X-Operator-Id``). Imports: ``medpay.books`` and below.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import asyncpg
from litestar import Controller, get
from litestar.params import FromPath, QueryParameter

from medpay.books.schemas import DayVolumes, PaymentStory
from medpay.books.service import check_books, parse_payment_id, payment_story, volumes_on
from medpay.errors import InvalidRequest
from medpay.http import Injected
from medpay.http.openapi import OPERATOR_SECURITY
from medpay.http.problems import problem_responses
from medpay.ledger.schemas import Balances, InvariantCheck
from medpay.ledger.service import balances
from medpay.security.guards import signed_by

__all__ = ["BooksController"]

_ACCOUNT = r"^[a-z_]+(:[A-Za-z0-9_]+)*$"
_PREFIX = r"^[a-z_]+(:[A-Za-z0-9_]*)*$"


class BooksController(Controller):
    """What an operator reads of the books (issue 11): nothing here changes anything."""

    path = "/v1/books"
    tags = ["books"]
    guards = [signed_by("operator")]
    security = OPERATOR_SECURITY

    @get(
        "/volumes",
        operation_id="getDailyVolumes",
        summary="A day's payments and amounts by insured province",
        responses=problem_responses(400, 401),
    )
    async def volumes(
        self,
        pool: Injected[asyncpg.Pool],
        day: Annotated[
            dt.date | None,
            QueryParameter(
                name="date", description="The service date (YYYY-MM-DD); default today, China time"
            ),
        ] = None,
    ) -> DayVolumes:
        """Counts by state, and the split of what is settled now, per insured province."""
        return await volumes_on(pool, day)

    @get(
        "/payments/{payment_id:str}",
        operation_id="getPaymentStory",
        summary="A payment's whole story: states, province messages, callbacks, journals",
        responses=problem_responses(401, 404),
    )
    async def story(self, payment_id: FromPath[str], pool: Injected[asyncpg.Pool]) -> PaymentStory:
        """Any app's payment, for an operator; also its clearing entries and reconciliation."""
        return await payment_story(pool, parse_payment_id(payment_id))

    @get(
        "/balances",
        operation_id="getLedgerBalances",
        summary="Account balances from the journals, by account or prefix, as of a time",
        responses=problem_responses(400, 401),
    )
    async def balances(
        self,
        pool: Injected[asyncpg.Pool],
        account: Annotated[
            str | None, QueryParameter(pattern=_ACCOUNT, max_length=200, description="One account")
        ] = None,
        prefix: Annotated[
            str | None,
            QueryParameter(
                pattern=_PREFIX,
                max_length=200,
                description="Every account it begins, e.g. fund_receivable:",
            ),
        ] = None,
        as_of: Annotated[
            dt.datetime | None,
            QueryParameter(description="Journals written up to this time (ISO 8601 with zone)"),
        ] = None,
    ) -> Balances:
        """Debits minus credits of each account: a whole ledger sums to zero."""
        if as_of is not None and as_of.tzinfo is None:
            raise InvalidRequest(
                "as_of_without_zone",
                "as_of needs a time zone",
                "For example 2026-11-26T08:00+08:00.",
            )
        return await balances(pool, account=account, prefix=prefix, as_of=as_of)

    @get(
        "/check",
        operation_id="checkBooks",
        summary="Every invariant of the ledger and of clearing, with the first failures",
        responses=problem_responses(401),
    )
    async def check(self, pool: Injected[asyncpg.Pool]) -> InvariantCheck:
        """What ``medpay ledger check`` verifies."""
        return await check_books(pool)
