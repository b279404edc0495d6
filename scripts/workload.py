"""The realistic payment mix, shared by ``scripts/bench`` and ``scripts/locustfile.py``.

What patient apps across the country send in the busy minutes of a day (issue 9):

* **online revisits** (about 62 %) at an internet hospital: the revisit fee at the
  ordinary outpatient price, often a drug or two, sometimes a delivery fee
  (DOMAIN.md section 4: never paid by insurance);
* **pharmacy purchases** (about 33 %) at a retail pharmacy, on an electronic
  prescription issued beforehand by the internet hospital of the person's province
  (mutual recognition: the pharmacy may be anywhere), buying what it prescribes;
* **estimates** (about 5 %): the same order as a revisit, pre-settled (2206).

Persons are taken in a shuffled cycle over the population, so that each is used once
before anyone is used twice (row locks on a person's totals and balance serialise
that person's payments, and a benchmark should not measure that). About a third of
the payments are treated outside the person's province, at the institutions of a
province drawn at random; the rest at home.

Everything is drawn from one ``random.Random(seed)``: a seed gives the same sequence.
Prices are integer fen around the catalogue's limits (a few over, which the province
charges to the patient).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from medpay.institutions.service import Institution
from medpay.population import SyntheticPerson

REVISIT_FEE = "001101000010000-IR01"
DELIVERY_FEE = "FEE-DRUG-DELIVERY"
#: (item code, lowest and highest unit price in fen) of the drugs patients buy.
DRUGS: tuple[tuple[str, int, int], ...] = (
    ("XA10BAA075A001010101445", 1100, 1200),  # metformin, class A, limit 1200
    ("XC10AAA096A001010178938", 3400, 3800),  # atorvastatin, class B, limit 3650
    ("XC09CAC033A001010302115", 2500, 2800),  # valsartan, class B, limit 2800
    ("XA11JAX000A001010100017", 3000, 5000),  # multivitamins, class C
)
PRESCRIBED = DRUGS[:3]  # the class C vitamins are bought without a prescription

Kind = Literal["revisit", "pharmacy", "estimate"]


@dataclass(frozen=True)
class Planned:
    """One request of the mix, before it is signed."""

    kind: Kind
    person: SyntheticPerson
    path: str  # /v1/payments or /v1/payments/estimate
    order: dict[str, Any]  # the body; a pharmacy purchase's prescription_id is set later
    cross_province: bool
    #: For a pharmacy purchase: who prescribes it and the prescription order.
    prescriber: str | None = None
    prescription: dict[str, Any] | None = None

    def with_prescription(self, prescription_id: str) -> dict[str, Any]:
        """The order naming the prescription issued for it."""
        return {**self.order, "prescription_id": prescription_id}


class PaymentMix:
    """Draws the requests of the mix from a population and its institutions."""

    def __init__(
        self,
        persons: Iterable[SyntheticPerson],
        institutions: Iterable[Institution],
        *,
        seed: int = 1,
        pharmacy_share: float = 0.33,
        estimate_share: float = 0.05,
        cross_province_share: float = 1 / 3,
    ) -> None:
        self.rng = random.Random(seed)
        self.persons = list(persons)
        if not self.persons:
            raise ValueError("the mix needs at least one person")
        self.rng.shuffle(self.persons)
        self.cursor = 0
        self.by_province: dict[str, dict[str, Institution]] = {}
        for institution in institutions:
            province = institution.area[:2] + "0000"
            self.by_province.setdefault(province, {}).setdefault(institution.kind, institution)
        for kind in ("internet_hospital", "retail_pharmacy"):
            if not any(kind in kinds for kinds in self.by_province.values()):
                raise ValueError(f"the mix needs at least one {kind}")
        self.pharmacy_share = pharmacy_share
        self.estimate_share = estimate_share
        self.cross_province_share = cross_province_share

    def next_person(self) -> SyntheticPerson:
        """The next person of the shuffled cycle."""
        person = self.persons[self.cursor % len(self.persons)]
        self.cursor += 1
        return person

    def _institution(self, person: SyntheticPerson, kind: str) -> tuple[Institution, bool]:
        """Where the person is treated: at home, or (a third of the time) in another province."""
        home = self.by_province.get(person.province, {}).get(kind)
        if home is not None and self.rng.random() >= self.cross_province_share:
            return home, False
        elsewhere = [
            kinds[kind]
            for province, kinds in sorted(self.by_province.items())
            if kind in kinds and province != person.province
        ]
        if not elsewhere:
            assert home is not None
            return home, False
        return self.rng.choice(elsewhere), True

    def _price(self, lowest: int, highest: int) -> int:
        return self.rng.randint(lowest, highest)

    def _revisit_items(self) -> list[dict[str, Any]]:
        items = [
            {
                "item_code": REVISIT_FEE,
                "quantity": 1,
                "unit_price_fen": self.rng.choice((2000, 2200, 2500)),
            }
        ]
        for code, lowest, highest in self.rng.sample(DRUGS, self.rng.choice((0, 1, 1, 2))):
            items.append(
                {
                    "item_code": code,
                    "quantity": self.rng.randint(1, 3),
                    "unit_price_fen": self._price(lowest, highest),
                }
            )
        if self.rng.random() < 0.4:
            items.append(
                {"item_code": DELIVERY_FEE, "quantity": 1, "unit_price_fen": self._price(800, 1200)}
            )
        return items

    def next(self) -> Planned:
        """The next request of the mix."""
        person = self.next_person()
        draw = self.rng.random()
        account = person.scheme == "employee" and self.rng.random() < 0.7
        if draw < self.pharmacy_share:
            return self._pharmacy(person, account)
        hospital, cross = self._institution(person, "internet_hospital")
        order = {
            "institution_code": hospital.institution_code,
            "treatment_area": hospital.area,
            "visit_type": "online_revisit",
            "items": self._revisit_items(),
            "personal_account_allowed": account,
        }
        if draw < self.pharmacy_share + self.estimate_share:
            return Planned("estimate", person, "/v1/payments/estimate", order, cross)
        return Planned("revisit", person, "/v1/payments", order, cross)

    def _pharmacy(self, person: SyntheticPerson, account: bool) -> Planned:
        pharmacy, cross = self._institution(person, "retail_pharmacy")
        home = self.by_province.get(person.province, {})
        prescriber = home.get("internet_hospital") or next(
            kinds["internet_hospital"]
            for _, kinds in sorted(self.by_province.items())
            if "internet_hospital" in kinds
        )
        drugs = self.rng.sample(PRESCRIBED, self.rng.choice((1, 1, 2)))
        prescribed = [
            (code, self.rng.randint(1, 3), lowest, highest) for code, lowest, highest in drugs
        ]
        items = [
            {
                "item_code": code,
                "quantity": self.rng.randint(1, most),
                "unit_price_fen": self._price(lowest, highest),
            }
            for code, most, lowest, highest in prescribed
        ]
        if self.rng.random() < 0.5:
            items.append(
                {"item_code": DELIVERY_FEE, "quantity": 1, "unit_price_fen": self._price(600, 1000)}
            )
        order = {
            "institution_code": pharmacy.institution_code,
            "treatment_area": pharmacy.area,
            "visit_type": "pharmacy_purchase",
            "items": items,
            "personal_account_allowed": account,
        }
        prescription = {
            "psn_no": person.psn_no,
            "kind": "standard",
            "items": [{"item_code": code, "max_quantity": most} for code, most, _, _ in prescribed],
        }
        return Planned(
            "pharmacy",
            person,
            "/v1/payments",
            order,
            cross,
            prescriber=prescriber.institution_code,
            prescription=prescription,
        )


def new_key(prefix: str) -> str:
    """A fresh Idempotency-Key under ``prefix`` (8 to 128 characters of the allowed set)."""
    return f"{prefix}-{uuid.uuid4().hex}"
