"""Masking, and the scan that fails a test run on an unmasked number."""

from __future__ import annotations

import tempfile
from pathlib import Path

from medpay.privacy import masked_name, masked_number, masked_phone, masked_text, unmasked_numbers

from ..privacy_scan import scan


def test_numbers_keep_their_first_and_last_four() -> None:
    assert masked_number("33000000000000000001") == "3300************0001"
    assert masked_number("11010519491231002X") == "1101**********002X"
    assert masked_number("12345678") == "********"
    assert masked_phone("+8613812345678") == "+86138****5678"
    assert masked_name("王建国") == "王**"


def test_free_text_is_masked_wherever_a_number_stands() -> None:
    text = "psn 33000000000000000001, id 11010519491231002x; call 13812345678."
    assert masked_text(text) == (
        "psn 3300************0001, id 1101**********002x; call 138****5678."
    )
    assert unmasked_numbers(masked_text(text)) == []
    # Identifiers of our own are not person numbers: a msgid, a uuid, an amount.
    ours = "msgid H11010800124202612021530450001 payment 0b6c9a4e-0000-4000-8000-000000000001 11100"
    assert masked_text(ours) == ours
    assert masked_text(None) == ""


def test_the_scan_finds_what_is_unmasked_and_passes_over_the_rest() -> None:
    # Outside the run's temporary folder, which the run's own scan reads.
    with tempfile.TemporaryDirectory(prefix="medpay-scan-test-") as folder:
        _scan_a_planted_folder(Path(folder))


def _scan_a_planted_folder(tmp_path: Path) -> None:
    (tmp_path / "gateway.log").write_text('{"message": "person 33000000000000000001"}\n')
    (tmp_path / "masked.log").write_text('{"message": "person 3300************0001"}\n')
    (tmp_path / "named.log").write_text("王建国 paid\n", encoding="utf-8")
    (tmp_path / "shot.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR 33000000000000000001")
    (tmp_path / "statement-330000.json").write_text('{"psn_no": "33000000000000000001"}')
    report = scan([tmp_path, tmp_path / "missing"], names=["王建国"])
    assert set(report.findings) == {str(tmp_path / "gateway.log"), str(tmp_path / "named.log")}
    assert report.files == 3 and report.data_files == 1
    assert "2 unmasked identifiers" in report.lines()[0]
