"""A synthetic insured population for benchmarks and load tests (issue 9, item 2).

``medpay seed --persons N [--seed S]`` creates N insured persons spread evenly over
the 31 provinces (DOMAIN.md section 1), in the gateway's registry (``persons`` and an
open ``insurance_segments`` row each) and, unless told otherwise, in the simulator's
(``simulator.persons``: scheme, personal account balance, medical-assistance flag).
A benchmark with twelve persons measures lock contention on twelve rows, not the
system; a few hundred thousand rows of registry is what a province's traffic meets.

Deterministic: person ``i`` of seed ``S`` is always the same person, whatever N, so
``--persons 2000`` after ``--persons 1000`` adds the second thousand. Each person is
drawn from ``blake2b(seed, i)`` alone:

* ``psn_no``: 20 digits, ``PP`` (the province) ``8`` ``SSS`` (the seed) and the index
  in 14 digits; the ``8`` keeps them apart from the sample persons (``PP0000...``);
* insured area: a real district of the province's capital (``330106`` Hangzhou
  Xihu), drawn from :data:`DISTRICTS`;
* scheme: about 45 % employees (insutype 310), each with a personal account whose
  balance, in integer fen, is drawn from a few tiers (some empty, most a few hundred
  yuan, a few tens of thousands); the rest residents (390, no personal account),
  about 3 % of whom are eligible for medical assistance at the simulator;
* a segment from 2020-01-01 with 12 to 359 months contributed before it.

Running it again skips every person already present, on each side separately (a
person with any insurance segment, or known to the simulator, is left exactly as
it is: balances and transfers since belong to the person's history), and reports
how many it added; it never fails on a repeat and never duplicates.

Each side is loaded with ``COPY`` into a temporary table and one ``INSERT ... ON
CONFLICT DO NOTHING`` per table, in one transaction per side: 100,000 persons take a
few seconds.

The benchmark also needs somewhere to be treated in every province:
:func:`benchmark_institutions` gives each province a hospital, the internet
hospital that relies on it, and a retail pharmacy, in the province's first district,
designated from 2020-01-01. The treatment-place catalogue of every province comes
with :func:`medpay.seed.seed_sample_data`, which the command runs first.

The persons and institutions are written to a population file
(:class:`PopulationFile`, JSON) from which ``scripts/bench`` and
``scripts/locustfile.py`` draw their traffic.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from medpay.db.pool import connection
from medpay.institutions.keys import register_institution_key
from medpay.institutions.service import Institution, register_institution, sign_sample_agreement
from medpay.security.persons import person_ref, seal_person
from medpay.simulator import bulk as simulator_bulk
from medpay.simulator.store import PersonRecord

if TYPE_CHECKING:
    from collections.abc import Iterable

    import asyncpg

    from medpay.config import Settings

__all__ = [
    "DISTRICTS",
    "PROVINCE_NAMES",
    "PopulationFile",
    "SeedReport",
    "SyntheticPerson",
    "benchmark_institutions",
    "generate_persons",
    "load_population_file",
    "psn_no_for",
    "register_prescriber_keys",
    "seed_command",
    "seed_institutions",
    "seed_population",
    "write_population_file",
]

#: Real districts (admdvs) of each province's capital; the first hosts the benchmark
#: institutions. Insured areas are drawn from these.
DISTRICTS: dict[str, tuple[str, ...]] = {
    "110000": ("110108", "110101", "110102", "110105"),  # Beijing: Haidian, Dongcheng, ...
    "120000": ("120101", "120102", "120103"),  # Tianjin: Heping, Hedong, Hexi
    "130000": ("130102", "130104", "130105"),  # Shijiazhuang: Chang'an, Qiaoxi, Xinhua
    "140000": ("140105", "140106", "140107"),  # Taiyuan: Xiaodian, Yingze, Xinghualing
    "150000": ("150102", "150103", "150104"),  # Hohhot: Xincheng, Huimin, Yuquan
    "210000": ("210102", "210103", "210104"),  # Shenyang: Heping, Shenhe, Dadong
    "220000": ("220102", "220103", "220104"),  # Changchun: Nanguan, Kuancheng, Chaoyang
    "230000": ("230102", "230103", "230104"),  # Harbin: Daoli, Nangang, Daowai
    "310000": ("310101", "310104", "310105", "310115"),  # Shanghai: Huangpu, ..., Pudong
    "320000": ("320102", "320104", "320105"),  # Nanjing: Xuanwu, Qinhuai, Jianye
    "330000": ("330106", "330102", "330105"),  # Hangzhou: Xihu, Shangcheng, Gongshu
    "340000": ("340102", "340103", "340104"),  # Hefei: Yaohai, Luyang, Shushan
    "350000": ("350102", "350103", "350104"),  # Fuzhou: Gulou, Taijiang, Cangshan
    "360000": ("360102", "360103", "360104"),  # Nanchang: Donghu, Xihu, Qingyunpu
    "370000": ("370102", "370103", "370104"),  # Jinan: Lixia, Shizhong, Huaiyin
    "410000": ("410105", "410102", "410103"),  # Zhengzhou: Jinshui, Zhongyuan, Erqi
    "420000": ("420106", "420102", "420103"),  # Wuhan: Wuchang, Jiang'an, Jianghan
    "430000": ("430102", "430103", "430104"),  # Changsha: Furong, Tianxin, Yuelu
    "440000": ("440104", "440103", "440106", "440305"),  # Guangzhou ..., Shenzhen Nanshan
    "450000": ("450103", "450102", "450107"),  # Nanning: Qingxiu, Xingning, Xixiangtang
    "460000": ("460106", "460105", "460107"),  # Haikou: Longhua, Xiuying, Qiongshan
    "500000": ("500103", "500105", "500106"),  # Chongqing: Yuzhong, Jiangbei, Shapingba
    "510000": ("510107", "510104", "510105"),  # Chengdu: Wuhou, Jinjiang, Qingyang
    "520000": ("520102", "520103", "520111"),  # Guiyang: Nanming, Yunyan, Huaxi
    "530000": ("530102", "530103", "530111"),  # Kunming: Wuhua, Panlong, Guandu
    "540000": ("540102", "540103", "540104"),  # Lhasa: Chengguan, Doilungdeqen, Dagze
    "610000": ("610103", "610102", "610104"),  # Xi'an: Beilin, Xincheng, Lianhu
    "620000": ("620102", "620103", "620104"),  # Lanzhou: Chengguan, Qilihe, Xigu
    "630000": ("630102", "630103", "630104"),  # Xining: Chengdong, Chengzhong, Chengxi
    "640000": ("640104", "640105", "640106"),  # Yinchuan: Xingqing, Xixia, Jinfeng
    "650000": ("650102", "650103", "650104"),  # Urumqi: Tianshan, Saybag, Xinshi
}
PROVINCES = tuple(DISTRICTS)
assert len(PROVINCES) == 31 and all(
    all(area[:2] == province[:2] for area in areas) for province, areas in DISTRICTS.items()
)

#: Short Chinese names, for the benchmark institutions' names.
PROVINCE_NAMES: dict[str, str] = dict(
    zip(
        PROVINCES,
        "北京 天津 河北 山西 内蒙古 辽宁 吉林 黑龙江 上海 江苏 浙江 安徽 福建 江西 山东 河南 "
        "湖北 湖南 广东 广西 海南 重庆 四川 贵州 云南 西藏 陕西 甘肃 青海 宁夏 新疆".split(),
        strict=True,
    )
)

SEGMENT_START = dt.date(2020, 1, 1)
AGREEMENT_START = dt.date(2020, 1, 1)
MAX_SEED = 999

_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华建国玉梅红志文辉婷雪"
#: Personal account balances of employees: (weight, lowest, highest) in fen.
_BALANCE_TIERS: tuple[tuple[int, int, int], ...] = (
    (8, 0, 0),
    (30, 1_000, 50_000),
    (42, 50_000, 500_000),
    (16, 500_000, 2_000_000),
    (4, 2_000_000, 6_000_000),
)
_BALANCE_WEIGHT = sum(weight for weight, _, _ in _BALANCE_TIERS)


class SyntheticPerson(msgspec.Struct, frozen=True, kw_only=True):
    """One synthetic insured person, as both registries and the traffic generators see them."""

    psn_no: str  # psn_no
    name: str
    province: str  # the insured province (DOMAIN.md section 1)
    insured_area: str  # insuplc_admdvs
    scheme: Literal["employee", "resident"]  # insutype 310 / 390
    acct_balance_fen: int  # the personal account's opening balance (employees only)
    maf_eligible: bool  # medical assistance (simulator side)
    contribution_months: int  # before the segment's start

    @property
    def insutype(self) -> Literal["310", "390"]:
        """The national insurance type code."""
        return "310" if self.scheme == "employee" else "390"


class PopulationFile(msgspec.Struct, frozen=True, kw_only=True):
    """What ``medpay seed`` writes for the benchmark and the load tests."""

    seed: int
    persons: list[SyntheticPerson]
    institutions: list[Institution]


class SeedReport(msgspec.Struct, frozen=True, kw_only=True):
    """How many persons each side already had, and how many were added."""

    persons: int
    gateway_added: int
    simulator_added: int | None  # None: the simulator's registry was not seeded
    institutions: int
    seconds: float


def psn_no_for(province: str, seed: int, index: int) -> str:
    """The person number of person ``index`` of ``seed``: 20 digits, the province's first."""
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be 0 to {MAX_SEED}, not {seed}")
    return f"{province[:2]}8{seed:03d}{index:014d}"


def _person(seed: int, index: int) -> SyntheticPerson:
    province = PROVINCES[index % len(PROVINCES)]
    draw = hashlib.blake2b(f"medpay-population:{seed}:{index}".encode(), digest_size=32).digest()

    def part(at: int, modulus: int) -> int:
        return int.from_bytes(draw[at : at + 2], "big") % modulus

    areas = DISTRICTS[province]
    employee = part(0, 100) < 45
    balance_fen = 0
    if employee:
        pick = part(2, _BALANCE_WEIGHT)
        for weight, lowest, highest in _BALANCE_TIERS:
            if pick < weight:
                balance_fen = lowest + int.from_bytes(draw[16:20], "big") % (highest - lowest + 1)
                break
            pick -= weight
    name = _SURNAMES[part(4, len(_SURNAMES))] + _GIVEN[part(6, len(_GIVEN))]
    if part(8, 3):
        name += _GIVEN[part(10, len(_GIVEN))]
    return SyntheticPerson(
        psn_no=psn_no_for(province, seed, index),
        name=name,
        province=province,
        insured_area=areas[part(12, len(areas))],
        scheme="employee" if employee else "resident",
        acct_balance_fen=balance_fen,
        maf_eligible=not employee and part(14, 100) < 3,
        contribution_months=12 + part(20, 348),
    )


def generate_persons(count: int, seed: int = 1) -> list[SyntheticPerson]:
    """Persons ``0 .. count - 1`` of ``seed``, evenly over the 31 provinces (round robin)."""
    if count < 0:
        raise ValueError("count must not be negative")
    psn_no_for("110000", seed, 0)  # checks the seed
    return [_person(seed, index) for index in range(count)]


def benchmark_institutions() -> list[Institution]:
    """Per province: a hospital, its internet hospital and a retail pharmacy (codes ``*9000n``).

    Levels vary by province (3, 2, 1, 3, ...) so that every ratio of the reference
    policy is exercised; the internet hospital takes its hospital's level.
    """
    institutions = []
    for number, province in enumerate(PROVINCES):
        area = DISTRICTS[province][0]
        name = PROVINCE_NAMES[province]
        level = (3, 2, 1)[number % 3]
        hospital = f"H{area}90001"
        institutions += [
            Institution(
                institution_code=hospital,
                name=f"{name}第一人民医院",
                area=area,
                kind="hospital",
                level=level,
            ),
            Institution(
                institution_code=f"H{area}90002",
                name=f"{name}第一人民医院互联网医院",
                area=area,
                kind="internet_hospital",
                level=level,
                relies_on=hospital,
            ),
            Institution(
                institution_code=f"P{area}90003",
                name=f"{name}医保定点大药房",
                area=area,
                kind="retail_pharmacy",
                level=None,
            ),
        ]
    return institutions


async def seed_institutions(pool: asyncpg.Pool, institutions: Iterable[Institution]) -> int:
    """Register and designate the institutions (idempotent); physical ones first."""
    ordered = sorted(institutions, key=lambda i: i.relies_on is not None)
    async with connection(pool) as conn, conn.transaction():
        for institution in ordered:
            await register_institution(conn, institution)
            await sign_sample_agreement(conn, institution.institution_code, AGREEMENT_START)
    return len(ordered)


_CREATE_GATEWAY_STAGE = """
CREATE TEMPORARY TABLE population_stage (
    psn_no text, sealed bytea, insured_area text, scheme text, valid_from date,
    contribution_months integer
) ON COMMIT DROP
"""
_INSERT_PERSONS = """
INSERT INTO persons (psn_no, sealed)
SELECT psn_no, sealed FROM population_stage
ON CONFLICT (psn_no) DO NOTHING
"""
# A person with any segment already has a relationship history: leave it as it is.
_INSERT_SEGMENTS = """
INSERT INTO insurance_segments (psn_no, insured_area, scheme, valid_from, contribution_months)
SELECT s.psn_no, s.insured_area, s.scheme, s.valid_from, s.contribution_months
  FROM population_stage s
 WHERE NOT EXISTS (SELECT 1 FROM insurance_segments g WHERE g.psn_no = s.psn_no)
"""


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])


async def _load_gateway(pool: asyncpg.Pool, persons: list[SyntheticPerson]) -> int:
    async with connection(pool) as conn, conn.transaction():
        await conn.execute(_CREATE_GATEWAY_STAGE)
        await conn.copy_records_to_table(
            "population_stage",
            records=(
                (
                    person_ref(p.psn_no),  # the registry keeps a person by reference
                    seal_person(p.psn_no, p.name),
                    p.insured_area,
                    p.scheme,
                    SEGMENT_START,
                    p.contribution_months,
                )
                for p in persons
            ),
        )
        await conn.execute(_INSERT_PERSONS)
        return _count(await conn.execute(_INSERT_SEGMENTS))


async def _load_simulator(pool: asyncpg.Pool, persons: list[SyntheticPerson]) -> int:
    records = (
        PersonRecord(
            psn_no=p.psn_no,
            name=p.name,
            insuplc_admdvs=p.insured_area,
            insutype=p.insutype,
            acct_balance_fen=p.acct_balance_fen,
            maf_eligible=p.maf_eligible,
        )
        for p in persons
    )
    async with connection(pool) as conn, conn.transaction():
        return await simulator_bulk.load_persons(conn, records)


async def seed_population(
    pool: asyncpg.Pool,
    persons: list[SyntheticPerson],
    *,
    simulator: bool = True,
    institutions: Iterable[Institution] | None = None,
) -> SeedReport:
    """Load ``persons`` (and the benchmark institutions) into the registries; skip existing.

    ``simulator`` False leaves the simulator's registry alone (a staging gateway in
    front of real provinces or a simulator elsewhere). The treatment-place catalogue
    must be there already (:func:`medpay.seed.seed_sample_data`).
    """
    started = time.monotonic()
    count = await seed_institutions(
        pool, benchmark_institutions() if institutions is None else institutions
    )
    gateway_added = await _load_gateway(pool, persons)
    simulator_added = await _load_simulator(pool, persons) if simulator else None
    return SeedReport(
        persons=len(persons),
        gateway_added=gateway_added,
        simulator_added=simulator_added,
        institutions=count,
        seconds=time.monotonic() - started,
    )


def write_population_file(path: Path, seed: int, persons: list[SyntheticPerson]) -> None:
    """Write the population file (persons and benchmark institutions) for the traffic generators."""
    document = PopulationFile(seed=seed, persons=persons, institutions=benchmark_institutions())
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(msgspec.json.encode(document))
    os.replace(temporary, path)


def load_population_file(path: str | Path) -> PopulationFile:
    """Read a population file written by :func:`write_population_file`."""
    return msgspec.json.decode(Path(path).read_bytes(), type=PopulationFile)


async def register_prescriber_keys(pool: asyncpg.Pool) -> dict[str, str]:
    """A new signing key for each benchmark hospital and internet hospital; private PEM by code.

    For load tests that issue prescriptions as the institutions do (DOMAIN.md section
    4). Development keys: the private halves are for the load generator only.
    """
    keys = {}
    for institution in benchmark_institutions():
        if institution.kind != "retail_pharmacy":
            private_pem, _ = await register_institution_key(pool, institution.institution_code)
            keys[institution.institution_code] = private_pem
    return keys


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


async def seed_command(
    settings: Settings,
    *,
    persons: int,
    seed: int,
    out: Path | None,
    simulator: bool,
    prescriber_keys: Path | None = None,
) -> int:
    """``medpay seed``: migrate, load the samples, then the population; write the file(s)."""
    from medpay.db.pool import create_pool
    from medpay.db.runtime import database, migrate
    from medpay.seed import seed_sample_data
    from medpay.simulator.store import SIMULATOR_MIGRATIONS, SIMULATOR_SCHEMA

    if persons < 0 or not 0 <= seed <= MAX_SEED:
        print(
            f"medpay seed: --persons must be 0 or more and --seed 0 to {MAX_SEED}", file=sys.stderr
        )
        return 2
    generated = generate_persons(persons, seed)
    extra = ((SIMULATOR_MIGRATIONS, SIMULATOR_SCHEMA),) if simulator else ()
    async with database(settings.database_url, settings.data_path) as dsn:
        await migrate(dsn, extra=extra)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            await seed_sample_data(pool)
            report = await seed_population(pool, generated, simulator=simulator)
            keys = await register_prescriber_keys(pool) if prescriber_keys else {}
        finally:
            await pool.close()
    target = out or settings.data_path / "population.json"
    write_population_file(target, seed, generated)
    simulator_part = (
        "simulator not seeded"
        if report.simulator_added is None
        else f"simulator added {report.simulator_added}"
    )
    print(
        f"persons: {report.persons} of seed {seed} over 31 provinces; gateway added "
        f"{report.gateway_added}, {simulator_part} (existing persons are skipped)"
    )
    print(
        f"institutions: {report.institutions} (a hospital, an internet hospital, a pharmacy per province)"
    )
    print(f"took {report.seconds:.1f} s; wrote {target}")
    if prescriber_keys:
        _write_private(prescriber_keys, msgspec.json.encode(keys))
        print(f"registered a new key for each of {len(keys)} prescribers; wrote {prescriber_keys}")
    return 0
