"""The books as text for people (``medpay ledger``, ``reconcile``, ``clearing``); JSON is for machines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medpay.wire.national import PROVINCES

if TYPE_CHECKING:
    from collections.abc import Sequence

    from medpay.clearing.schemas import ClearingMatrix
    from medpay.ledger.schemas import Balances, InvariantCheck
    from medpay.reconciliation.schemas import DayReport, DifferenceView, ReconciliationReport

__all__ = [
    "balances_text",
    "check_text",
    "clearing_text",
    "day_text",
    "fen",
    "reconciliation_text",
]


def fen(amount: int) -> str:
    """An amount of fen as yuan for reading, exactly (integer arithmetic, never a float)."""
    sign = "-" if amount < 0 else ""
    yuan, cents = divmod(abs(amount), 100)
    return f"{sign}{yuan:,}.{cents:02d}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    return [line(header).rstrip(), *(line(row).rstrip() for row in rows)]


def balances_text(balances: Balances) -> str:
    """Accounts and balances, with their sum."""
    scope = balances.account or (f"{balances.prefix}*" if balances.prefix else "every account")
    when = balances.as_of.isoformat() if balances.as_of else "now"
    rows = [(a.account, fen(a.balance_fen)) for a in balances.accounts]
    lines = [f"Balances of {scope} as of {when} (yuan; debit > 0, credit < 0)"]
    lines += _table(("account", "balance"), rows) if rows else ["(no postings)"]
    lines.append(f"total: {fen(balances.total_fen)}")
    return "\n".join(lines)


def check_text(check: InvariantCheck) -> str:
    """What was checked over how many records, then the first failures of each invariant."""
    lines = ["ledger check: " + ("OK" if check.ok else f"FAILED ({len(check.failures)} shown)")]
    lines += [f"  {name}: {count} checked" for name, count in check.checked.items()]
    for failure in check.failures:
        lines.append(f"  FAIL {failure.invariant}: {failure.subject}: {failure.detail}")
    return "\n".join(lines)


def _difference_rows(differences: list[DifferenceView]) -> list[tuple[str, ...]]:
    return [
        (
            str(d.difference_id),
            d.kind,
            d.subject,
            d.status,
            d.resolution or f"awaiting {d.awaiting}",
            (d.resolution_detail or d.note or "")[:110],
        )
        for d in differences
    ]


def reconciliation_text(report: ReconciliationReport) -> str:
    """One province's day: the comparison, then every difference one by one."""
    name = PROVINCES.get(report.province, report.province)
    lines = [
        f"Reconciliation of {report.province} ({name}) for {report.day}: {report.outcome}"
        f" (run {report.run_id}, {report.triggered_by})"
    ]
    if report.error:
        lines.append(f"  statement unavailable: {report.error}")
    else:
        start = report.totals_at_start
        end = report.totals
        lines.append(
            f"  statement {report.statement_lines} lines, ours {report.our_lines}, alike "
            f"{report.matched}; totals (3201) agreed at start: "
            f"{'yes' if start and start.agreed else 'no'}, at the end: "
            f"{'yes' if end and end.agreed else 'no'}"
        )
        if end is not None:
            for line in end.theirs:
                lines.append(
                    f"    {line.insurance_scheme}/{line.clearing_type}: "
                    f"{line.settlement_count} net settlements, medfee {fen(line.medical_fee_total_fen)}, "
                    f"fund {fen(line.fund_total_fen)}, account {fen(line.personal_account_fen)}"
                    f" ({'agreed' if line.agreed else 'differs'})"
                )
    if report.differences:
        lines.append(
            f"  {len(report.differences)} differences ({report.new_differences} new, "
            f"{report.resolved_now} resolved now, {report.unexplained} unexplained):"
        )
        table = _table(
            ("id", "kind", "subject", "status", "resolution", "detail"),
            _difference_rows(report.differences),
        )
        lines += [f"    {row}" for row in table]
    return "\n".join(lines)


def day_text(day: DayReport) -> str:
    """Every province's outcome for the day, then the differences of those that had any."""
    rows = [
        (
            r.province,
            PROVINCES.get(r.province, r.province),
            r.outcome,
            str(r.statement_lines),
            str(r.our_lines),
            str(len(r.differences)),
            str(r.unexplained),
        )
        for r in day.provinces
    ]
    lines = [f"Reconciliation of {day.day} with {len(day.provinces)} provinces"]
    lines += _table(
        ("province", "name", "outcome", "theirs", "ours", "differences", "unexplained"), rows
    )
    for report in day.provinces:
        if report.differences or report.error:
            lines += ["", reconciliation_text(report)]
    lines.append("")
    lines.append(
        f"unexplained differences: {day.unexplained}; statements unavailable: {day.unavailable}"
    )
    return "\n".join(lines)


def clearing_text(matrix: ClearingMatrix) -> str:
    """A period's pairs and each province's net position (yuan)."""
    state = (
        matrix.state
        if matrix.state == "open"
        else f"closed {matrix.closed_at} by {matrix.closed_by}"
    )
    lines = [f"Clearing of {matrix.period} ({state})"]
    rows = [
        (
            c.insured_province,
            c.treatment_province,
            str(c.settlements),
            fen(c.funds.employee_basic_fen),
            fen(c.funds.resident_basic_fen),
            fen(c.funds.critical_illness_fen),
            fen(c.funds.medical_assistance_fen),
            fen(c.fund_total_fen),
        )
        for c in matrix.cells
    ]
    if rows:
        lines += _table(
            (
                "insured",
                "treated in",
                "settlements",
                "310100",
                "390100",
                "390200",
                "610100",
                "funds",
            ),
            rows,
        )
    else:
        lines.append("(no off-site settlements)")
    positions = [p for p in matrix.positions if p.receivable_fen or p.payable_fen]
    lines.append("")
    lines.append("Net positions (receivable by its institutions less payable by its funds):")
    lines += (
        _table(
            ("province", "name", "receivable", "payable", "net"),
            [
                (p.province, p.name, fen(p.receivable_fen), fen(p.payable_fen), fen(p.net_fen))
                for p in positions
            ],
        )
        if positions
        else ["(none)"]
    )
    lines.append(
        f"between provinces: {fen(matrix.cross_provincial_fen)}; sum of nets: "
        f"{fen(matrix.net_sum_fen)}"
    )
    return "\n".join(lines)
