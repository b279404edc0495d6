"""The scan of everything a test run wrote, for person, identity and phone numbers unmasked.

Each xdist worker writes its in-process log records (through the gateway's own JSON
formatter, at INFO) and, at the end, a copy of its PostgreSQL server's log into its
temporary folder; the gateway and simulator processes tests start write their logs
there too, and the browser tests their screenshots to ``artefacts/``. When the run
ends, the controller reads every text file under the run's temporary folder and
``artefacts/`` and fails the run if one holds an unmasked number or a sample person's
name. Files that are data by design (a province's statement, a seed file: they carry
person numbers because a province needs them) are named in :data:`DATA_FILES` and
only counted.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path

from medpay.privacy import unmasked_numbers

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "medpay" / "samples" / "persons.json"
#: Files whose purpose is to carry person numbers to a province or a seed: not logs.
DATA_FILES = (
    "*.sql",
    "*statement*.json*",
    "*clearing*.json",
    "*simulator*.json",
    "population*.json",  # the persons a load test pays for
)
MAX_BYTES = 64 * 1024 * 1024


def sample_names() -> list[str]:
    """The sample persons' names: no log or answer should ever carry one."""
    return [person["name"] for person in json.loads(SAMPLES.read_text(encoding="utf-8"))]


@dataclass
class ScanReport:
    """What the scan read and what it found, file by file."""

    files: int = 0
    data_files: int = 0
    bytes: int = 0
    findings: dict[str, list[str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The report as the run's summary prints it."""
        head = (
            f"privacy scan: {self.files} files, {self.bytes:,} bytes read; "
            f"{self.data_files} data files passed over; "
            f"{sum(len(v) for v in self.findings.values())} unmasked identifiers"
        )
        found = [
            f"  {path}: {', '.join(sorted(set(found))[:5])}"
            for path, found in sorted(self.findings.items())
        ]
        if found:
            found.append("the run fails: mask these (medpay.privacy), or name a data file")
        return [head, *found]


def scan(roots: list[Path], names: list[str] | None = None) -> ScanReport:
    """Read every text file under ``roots``; report unmasked numbers and known names."""
    names = sample_names() if names is None else names
    report = ScanReport()
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            if any(fnmatch.fnmatch(path.name, pattern) for pattern in DATA_FILES):
                report.data_files += 1
                continue
            try:
                raw = path.read_bytes()[:MAX_BYTES]
            except OSError:
                continue
            if b"\x00" in raw[:8192]:  # a binary file: a screenshot, a database page
                continue
            text = raw.decode("utf-8", errors="replace")
            report.files += 1
            report.bytes += len(raw)
            found = unmasked_numbers(text) + [name for name in names if name in text]
            if found:
                report.findings[str(path)] = found
    return report
