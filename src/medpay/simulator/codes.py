"""The simulator's answer codes beyond the national ones (``medpay.wire.national.InfCode``).

A real province answers -1 with a message for most of these; the simulator tells
them apart so tests can see which check refused a request. The gateway learns what
they mean from the clearing configuration the simulator exports
(:func:`medpay.simulator.config.clearing_provinces`), not from code.
"""

from __future__ import annotations

import enum

from medpay.wire.national import ERROR_MESSAGES, InfCode

__all__ = ["ANSWER_MESSAGES", "GATEWAY_PROBLEMS", "AnswerCode", "SimulatorCode"]


class SimulatorCode(enum.IntEnum):
    """Finer refusals; like every negative infcode, nothing was done."""

    MALFORMED = -8  # the envelope or input does not parse or validate
    WRONG_PROVINCE = -9  # insuplc_admdvs belongs to another province
    UNSUPPORTED_INFNO = -10  # transaction number not served
    PERSON_MISMATCH = -11  # insutype / insured area disagree with the province's record
    DUPLICATE_CHARGE = -12  # this visit's charge batch is already settled


#: Any code the simulator answers.
AnswerCode = InfCode | SimulatorCode

ANSWER_MESSAGES: dict[int, str] = {
    **{int(code): message for code, message in ERROR_MESSAGES.items()},
    SimulatorCode.MALFORMED: "malformed request",
    SimulatorCode.WRONG_PROVINCE: "insured area belongs to another province",
    SimulatorCode.UNSUPPORTED_INFNO: "transaction not supported",
    SimulatorCode.PERSON_MISMATCH: "request disagrees with the person's record",
    SimulatorCode.DUPLICATE_CHARGE: "charge batch already settled",
}

#: What each finer code means in the gateway's problem vocabulary (clearing configuration).
GATEWAY_PROBLEMS: dict[int, str] = {
    SimulatorCode.MALFORMED: "province_refused_request",
    SimulatorCode.WRONG_PROVINCE: "wrong_province",
    SimulatorCode.UNSUPPORTED_INFNO: "province_refused_request",
    SimulatorCode.PERSON_MISMATCH: "person_record_mismatch",
    SimulatorCode.DUPLICATE_CHARGE: "charge_already_settled",
}
