"""The replay's book: who funds the pool, who borrows, how much, in what.

A book file is TOML (every amount in whole 元, every share in %):

    [pool]
    senior_yuan = 16_000_000
    junior_yuan = 4_000_000
    insurance_seed_yuan = 200_000       # operator's seed of the insurance fund
    target_utilisation_pct = 80         # margins are scaled so the planned loans reach this

    [stocks]
    count = 40                          # drawn from the data's most liquid stocks
    per_borrower = [3, 6]               # securities per borrower (inclusive range)

    [tiers.3]
    borrowers = 8
    margin_yuan = [200_000, 1_000_000]  # uniform draw before scaling
    reserve_pct = 10                    # reserve = this share of the margin …
    with_reserve_pct = 50               # … for this share of the tier's borrowers
    use_pct = 85                        # share of the tier's maximum leverage bought

    [[borrower]]                        # optional explicit borrowers (added to the tiers')
    tier = 2
    margin_yuan = 300_000
    reserve_yuan = 30_000

The planned loan of a borrower is margin × ((1 + leverage) × use − 1). With a target
utilisation, every drawn margin is multiplied by one factor so the planned loans sum to
target × pool; explicit borrowers are not scaled. What is actually lent is lower (whole
lots, the engine's pre-trade checks, the platform's 5% exposure per security): the report
gives the realised utilisation.

Stocks are assigned to borrowers least-exposed first (planned value), so the book spreads
over the drawn stocks the way a platform's exposure limit would force it to.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from crowdleverage.domain.errors import InvalidInput
from crowdleverage.domain.params import TIERS

YUAN = 100
BPS = 10_000


@dataclass(frozen=True, slots=True)
class TierBook:
    borrowers: int = 8
    margin_min_fen: int = 200_000 * YUAN
    margin_max_fen: int = 1_000_000 * YUAN
    reserve_bps: int = 1_000  # reserve as a share of margin
    with_reserve_bps: int = 5_000  # share of the tier's borrowers that post a reserve
    use_bps: int = 8_500  # share of the tier's maximum gross exposure bought


@dataclass(frozen=True, slots=True)
class BorrowerSpec:
    name: str
    tier: int
    margin_fen: int
    reserve_fen: int
    use_bps: int = 8_500
    codes: tuple[str, ...] = ()  # filled in by `assign_stocks`

    @property
    def planned_loan_fen(self) -> int:
        return planned_loan(self.tier, self.margin_fen, self.use_bps)


def planned_loan(tier: int, margin_fen: int, use_bps: int) -> int:
    gross = margin_fen * (1 + TIERS[tier].max_leverage) * use_bps // BPS
    return max(gross - margin_fen, 0)


def _default_tiers() -> dict[int, TierBook]:
    return {t: TierBook() for t in sorted(TIERS)}


@dataclass(frozen=True, slots=True)
class Book:
    senior_fen: int = 16_000_000 * YUAN
    junior_fen: int = 4_000_000 * YUAN
    insurance_seed_fen: int = 200_000 * YUAN
    target_utilisation_bps: int = 8_000  # 0: margins as drawn, no scaling
    stocks: int = 40
    stocks_per_borrower: tuple[int, int] = (3, 6)
    tiers: dict[int, TierBook] = field(default_factory=_default_tiers)
    borrowers: tuple[BorrowerSpec, ...] = ()  # explicit borrowers, never scaled

    def __post_init__(self) -> None:
        if self.senior_fen < 0 or self.junior_fen <= 0 or self.insurance_seed_fen < 0:
            raise InvalidInput("pool: junior must be positive, senior and seed not negative")
        if not 0 <= self.target_utilisation_bps <= 9_000:
            raise InvalidInput("target utilisation must be within 0–90% (the pool's stop)")
        lo, hi = self.stocks_per_borrower
        if not 1 <= lo <= hi <= 10:
            raise InvalidInput("stocks per borrower must be a range within 1..10")
        if self.stocks < max(3, hi):
            raise InvalidInput(f"need at least max(3, {hi}) stocks")
        for t, tb in self.tiers.items():
            if t not in TIERS:
                raise InvalidInput(f"unknown tier {t}")
            if tb.borrowers < 0 or not 0 < tb.margin_min_fen <= tb.margin_max_fen:
                raise InvalidInput(f"tier {t}: borrowers ≥ 0 and 0 < margin min ≤ max")
            if not 0 <= tb.reserve_bps <= BPS or not 0 <= tb.with_reserve_bps <= BPS:
                raise InvalidInput(f"tier {t}: reserve shares must be within 0–100%")
            if not 0 < tb.use_bps <= BPS:
                raise InvalidInput(f"tier {t}: use must be within (0, 100%]")
        for b in self.borrowers:
            if b.tier not in TIERS or b.margin_fen <= 0 or b.reserve_fen < 0:
                raise InvalidInput(f"borrower {b.name}: known tier, positive margin")
        if not self.borrower_count:
            raise InvalidInput("the book has no borrower")

    @property
    def pool_fen(self) -> int:
        return self.senior_fen + self.junior_fen

    @property
    def borrower_count(self) -> int:
        return sum(tb.borrowers for tb in self.tiers.values()) + len(self.borrowers)

    def with_options(
        self,
        *,
        borrowers_per_tier: int | None = None,
        utilisation_pct: int | None = None,
        pool_yuan: int | None = None,
        stocks: int | None = None,
    ) -> Book:
        """The CLI's common overrides. `pool_yuan` keeps the senior:junior split."""
        b = self
        if borrowers_per_tier is not None:
            tiers = {t: replace(tb, borrowers=borrowers_per_tier) for t, tb in b.tiers.items()}
            b = replace(b, tiers=tiers)
        if utilisation_pct is not None:
            b = replace(b, target_utilisation_bps=utilisation_pct * 100)
        if pool_yuan is not None:
            if pool_yuan <= 0:
                raise InvalidInput("--pool must be positive")
            pool = pool_yuan * YUAN
            junior = pool * b.junior_fen // b.pool_fen
            b = replace(b, senior_fen=pool - junior, junior_fen=junior)
        if stocks is not None:
            b = replace(b, stocks=stocks)
        return b

    # ── borrowers ────────────────────────────────────────────────────────────────────

    def plan(self, rng: np.random.Generator) -> list[BorrowerSpec]:
        """The borrowers, drawn tier by tier, margins scaled to the target utilisation."""
        drawn: list[tuple[BorrowerSpec, int]] = []  # (borrower, reserve bps of margin)
        for t in sorted(self.tiers):
            tb = self.tiers[t]
            for i in range(tb.borrowers):
                lo, hi = tb.margin_min_fen // YUAN, tb.margin_max_fen // YUAN
                margin = int(rng.integers(lo, hi + 1)) * YUAN
                with_reserve = i * BPS < tb.with_reserve_bps * tb.borrowers
                spec = BorrowerSpec(f"borrower-t{t}-{i + 1}", t, margin, 0, tb.use_bps)
                drawn.append((spec, tb.reserve_bps if with_reserve else 0))
        fixed = sum(b.planned_loan_fen for b in self.borrowers)
        want = self.target_utilisation_bps * self.pool_fen // BPS - fixed
        have = sum(b.planned_loan_fen for b, _ in drawn)
        scale_num, scale_den = (want, have) if self.target_utilisation_bps and have else (1, 1)
        if scale_num <= 0:
            raise InvalidInput("explicit borrowers alone exceed the target utilisation")
        out = []
        for b, reserve_bps in drawn:
            margin = b.margin_fen * scale_num // scale_den // YUAN * YUAN
            out.append(replace(b, margin_fen=margin, reserve_fen=margin * reserve_bps // BPS))
        return out + list(self.borrowers)

    def assign_stocks(
        self, borrowers: list[BorrowerSpec], codes: list[str], rng: np.random.Generator
    ) -> list[BorrowerSpec]:
        """Each borrower gets k ∈ stocks_per_borrower codes, the least-exposed (planned gross
        value) first, ties broken at random: the book spreads as exposure limits require."""
        exposure = dict.fromkeys(codes, 0)
        lo, hi = self.stocks_per_borrower
        out = []
        for b in sorted(borrowers, key=lambda b: -b.planned_loan_fen):  # big ones first
            k = min(int(rng.integers(lo, hi + 1)), len(codes))
            noise = rng.random(len(codes))
            order = sorted(range(len(codes)), key=lambda i: (exposure[codes[i]], noise[i]))
            picked = sorted(codes[i] for i in order[:k])
            each = (b.margin_fen + b.planned_loan_fen) // k
            for c in picked:
                exposure[c] += each
            out.append(replace(b, codes=tuple(picked)))
        by_name = {b.name: b for b in out}
        return [by_name[b.name] for b in borrowers]


# ── the file ─────────────────────────────────────────────────────────────────────────────


def _yuan(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InvalidInput(f"{what} must be a whole, non-negative number of 元")
    return v * YUAN


def _pct(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 100:
        raise InvalidInput(f"{what} must be a percentage within 0–100")
    return round(v * 100)


def _table(d: dict[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
    t = d.get(key, {})
    if not isinstance(t, dict):
        raise InvalidInput(f"[{key}] must be a table")
    unknown = set(t) - allowed
    if unknown:
        raise InvalidInput(f"[{key}]: unknown key(s) {', '.join(sorted(unknown))}")
    return t


def _range(v: Any, what: str) -> tuple[int, int]:
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) for x in v)):
        raise InvalidInput(f"{what} must be a list [min, max] of integers")
    return int(v[0]), int(v[1])


def _tier(t: int, d: dict[str, Any]) -> TierBook:
    allowed = {"borrowers", "margin_yuan", "reserve_pct", "with_reserve_pct", "use_pct"}
    unknown = set(d) - allowed
    if unknown:
        raise InvalidInput(f"[tiers.{t}]: unknown key(s) {', '.join(sorted(unknown))}")
    base = TierBook()
    lo, hi = _range(d["margin_yuan"], f"tiers.{t}.margin_yuan") if "margin_yuan" in d else (
        base.margin_min_fen // YUAN, base.margin_max_fen // YUAN)  # fmt: skip
    n = d.get("borrowers", base.borrowers)
    if isinstance(n, bool) or not isinstance(n, int):
        raise InvalidInput(f"tiers.{t}.borrowers must be an integer")
    return TierBook(
        borrowers=n,
        margin_min_fen=_yuan(lo, f"tiers.{t}.margin_yuan"),
        margin_max_fen=_yuan(hi, f"tiers.{t}.margin_yuan"),
        reserve_bps=_pct(d.get("reserve_pct", base.reserve_bps / 100), f"tiers.{t}.reserve_pct"),
        with_reserve_bps=_pct(
            d.get("with_reserve_pct", base.with_reserve_bps / 100), f"tiers.{t}.with_reserve_pct"
        ),
        use_bps=_pct(d.get("use_pct", base.use_bps / 100), f"tiers.{t}.use_pct"),
    )


def parse_book(d: dict[str, Any]) -> Book:
    unknown = set(d) - {"pool", "stocks", "tiers", "borrower"}
    if unknown:
        raise InvalidInput(f"unknown section(s) {', '.join(sorted(unknown))}")
    base = Book()
    pool = _table(d, "pool", {"senior_yuan", "junior_yuan", "insurance_seed_yuan",
                              "target_utilisation_pct"})  # fmt: skip
    stocks = _table(d, "stocks", {"count", "per_borrower"})
    tiers_raw = _table(d, "tiers", {str(t) for t in TIERS})
    tiers = {int(k): _tier(int(k), v) for k, v in tiers_raw.items()} or base.tiers
    explicit = []
    for i, b in enumerate(d.get("borrower", [])):
        if not isinstance(b, dict) or set(b) - {"tier", "margin_yuan", "reserve_yuan", "name"}:
            raise InvalidInput(f"borrower #{i + 1}: keys are tier, margin_yuan, reserve_yuan")
        tier = b.get("tier")
        if tier not in TIERS:
            raise InvalidInput(f"borrower #{i + 1}: tier must be one of {sorted(TIERS)}")
        explicit.append(
            BorrowerSpec(
                str(b.get("name", f"borrower-x{i + 1}")),
                int(tier),
                _yuan(b.get("margin_yuan"), f"borrower #{i + 1} margin_yuan"),
                _yuan(b.get("reserve_yuan", 0), f"borrower #{i + 1} reserve_yuan"),
            )
        )
    count = stocks.get("count", base.stocks)
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidInput("stocks.count must be an integer")
    return Book(
        senior_fen=_yuan(pool.get("senior_yuan", base.senior_fen // YUAN), "pool.senior_yuan"),
        junior_fen=_yuan(pool.get("junior_yuan", base.junior_fen // YUAN), "pool.junior_yuan"),
        insurance_seed_fen=_yuan(
            pool.get("insurance_seed_yuan", base.insurance_seed_fen // YUAN),
            "pool.insurance_seed_yuan",
        ),
        target_utilisation_bps=_pct(
            pool.get("target_utilisation_pct", base.target_utilisation_bps / 100),
            "pool.target_utilisation_pct",
        ),
        stocks=count,
        stocks_per_borrower=_range(stocks["per_borrower"], "stocks.per_borrower")
        if "per_borrower" in stocks
        else base.stocks_per_borrower,
        tiers=tiers,
        borrowers=tuple(explicit),
    )


def load_book(path: Path) -> Book:
    """A book file, all or nothing (InvalidInput with the reason)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"book file {path} not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"book file {path}: {exc}") from None
    return parse_book(data)
