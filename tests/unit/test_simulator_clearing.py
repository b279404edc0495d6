"""The simulator exports the clearing configuration the gateway reads (no code shared)."""

from __future__ import annotations

import msgspec

from medpay.settlement.adapters.config import ProvinceEndpoint
from medpay.simulator.codes import SimulatorCode
from medpay.simulator.config import clearing_provinces, default_config


def _two_provinces():
    config = default_config(gateway_public_keys=[], seed=1)
    kept = [p for p in config.provinces if p.admdvs in ("330000", "110000")]
    return msgspec.structs.replace(config, provinces=kept)


def test_clearing_lines_point_at_each_province():
    lines = msgspec.convert(
        clearing_provinces(_two_provinces(), "http://127.0.0.1:8700/"), list[ProvinceEndpoint]
    )
    assert [(e.admdvs, e.url) for e in lines] == [
        ("110000", "http://127.0.0.1:8700/provinces/110000/api"),
        ("330000", "http://127.0.0.1:8700/provinces/330000/api"),
    ]


def test_clearing_lines_say_what_the_simulators_finer_codes_mean():
    (line, _) = msgspec.convert(
        clearing_provinces(_two_provinces(), "http://127.0.0.1:8700"), list[ProvinceEndpoint]
    )
    assert line.infcodes[int(SimulatorCode.WRONG_PROVINCE)] == "wrong_province"
    assert line.infcodes[int(SimulatorCode.DUPLICATE_CHARGE)] == "charge_already_settled"
    assert all(code < 0 for code in line.infcodes)
