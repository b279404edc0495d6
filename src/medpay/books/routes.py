"""HTTP for the operator's view of the books: volumes, a payment's story, balances, the check.

Signed operator endpoints (``X-Operator-Id``). Imports: ``medpay.books`` and below.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Router
from litestar.params import FromPath, QueryParameter

from medpay.books.schemas import DayVolumes, PaymentStory
from medpay.books.service import check_books, parse_payment_id, payment_story, volumes_on
from medpay.errors import InvalidRequest
from medpay.ledger.schemas import Balances, InvariantCheck
from medpay.ledger.service import balances as ledger_balances
from medpay.parties.service import SigningParty
from medpay.security.actions import OPERATORS, Act, signed_get

__all__ = ["books_router"]

Operator = Act[SigningParty]
_ACCOUNT = r"^[a-z_]+(:[A-Za-z0-9_]+)*$"
_PREFIX = r"^[a-z_]+(:[A-Za-z0-9_]*)*$"
_DAY = QueryParameter(
    name="date", description="The service date (YYYY-MM-DD); default today, China time"
)
_ONE = QueryParameter(pattern=_ACCOUNT, max_length=200, description="One account")
_BEGINNING = QueryParameter(
    pattern=_PREFIX, max_length=200, description="Every account it begins, e.g. fund_receivable:"
)
_AS_OF = QueryParameter(description="Journals written up to this time (ISO 8601 with zone)")


@signed_get("/volumes", "getDailyVolumes", "A day's payments and amounts by insured province", OPERATORS, problems=(400, 401))  # fmt: skip
async def volumes(act: Operator, day: Annotated[dt.date | None, _DAY] = None) -> DayVolumes:
    """Counts by state, and the split of what is settled now, per insured province."""
    return await volumes_on(act.pool, day)


@signed_get("/payments/{payment_id:str}", "getPaymentStory", "A payment's whole story: states, province messages, callbacks, journals", OPERATORS)  # fmt: skip
async def story(act: Operator, payment_id: FromPath[str]) -> PaymentStory:
    """Any app's payment, for an operator; also its clearing entries and reconciliation."""
    return await payment_story(act.pool, parse_payment_id(payment_id))


@signed_get("/balances", "getLedgerBalances", "Account balances from the journals, by account or prefix, as of a time", OPERATORS, problems=(400, 401))  # fmt: skip
async def balances(
    act: Operator,
    account: Annotated[str | None, _ONE] = None,
    prefix: Annotated[str | None, _BEGINNING] = None,
    as_of: Annotated[dt.datetime | None, _AS_OF] = None,
) -> Balances:
    """Debits minus credits of each account: a whole ledger sums to zero."""
    if as_of is not None and as_of.tzinfo is None:
        raise InvalidRequest(
            "as_of_without_zone",
            "as_of needs a time zone",
            "For example 2026-11-26T08:00+08:00.",
        )
    return await ledger_balances(act.pool, account=account, prefix=prefix, as_of=as_of)


@signed_get("/check", "checkBooks", "Every invariant of the ledger and of clearing, with the first failures", OPERATORS, problems=(401,))  # fmt: skip
async def check(act: Operator) -> InvariantCheck:
    """What ``medpay ledger check`` verifies."""
    return await check_books(act.pool)


#: What an operator reads of the books (issue 11): nothing here changes anything.
books_router = Router(
    path="/v1/books", tags=["books"], route_handlers=[volumes, story, balances, check]
)
