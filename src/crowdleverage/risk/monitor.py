"""Vectorised risk monitor: every account's margin ratio on every tick, with numpy.

State, one row per account and one column per security:

- positions: a scipy.sparse CSR matrix of share quantities (accounts × securities), float64
  (quantities are integers far below 2**53, so exact);
- cash, reserve and debt (principal plus accrued interest) as int64 fen vectors — the book —
  with float64 mirrors and the two thresholds per account (warning × debt, liquidation × debt)
  kept up to date on each update, so a tick does no conversions;
- per security: last price (fen) and haircut; a halt lowers the haircut to 50%.

A tick is one sparse mat-vec (collateral = cash + Q · (price × haircut)), a division for the
ratios, and a few vector comparisons for the states. Comparisons are made on collateral
against `line × debt`, so an account without debt is healthy without special cases.

Updates are incremental: a changed quantity of an existing position is written into the CSR
data in place; a new position goes to a small overlay (added to the mat-vec with `np.add.at`)
that is merged into the CSR when it grows past 1% of the entries.

The monitor is an early warning system in float64 (DESIGN.md §4): the keeper acts on chain,
and the contract recomputes the ratio in integers before anything happens.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crowdleverage.domain.errors import Conflict, InvalidInput, NotFound
from crowdleverage.domain.params import HALTED_HAIRCUT_BPS, TIERS

BPS = 10_000

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class AccountState(IntEnum):
    HEALTHY = 0
    WARNING = 1  # below the warning line, no reserve to top up from
    TOPUP_DUE = 2  # below the warning line and the reserve can lift it above liquidation
    LIQUIDATION_DUE = 3  # below the liquidation line and the reserve cannot save it
    LIQUIDATING = 4  # locked by the engine, orders working


MAX_TIERS = 8  # as RiskParams
# per tier: (warning bps, liquidation bps) of the starting definition; index 0 unused. A monitor
# copies them and follows the chain (`set_tier_lines`, from `chain.params.ParamsSync`).
_WARN = np.zeros(MAX_TIERS + 1, dtype=np.float64)
_LIQ = np.zeros(MAX_TIERS + 1, dtype=np.float64)
for _t in TIERS.values():
    _WARN[_t.tier], _LIQ[_t.tier] = _t.warning_ratio_bps, _t.liquidation_ratio_bps


@dataclass(frozen=True, slots=True)
class TickResult:
    ratio_bps: F64  # inf for accounts without debt
    state: npt.NDArray[np.int8]
    changed: npt.NDArray[np.intp]  # rows whose state differs from the previous tick

    def count(self, state: AccountState) -> int:
        return int(np.count_nonzero(self.state == state))


try:  # scipy's own CSR kernel, called directly: accumulates into the cash (no extra pass)
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover - a scipy without it falls back to q.dot
    _csr_matvec = None

_MIN_ROWS_PER_THREAD = 100_000  # below this a thread hand-off costs more than it saves
_CHUNK_ROWS = 16_384  # rows per inner step: its temporaries (~300 KiB) stay in L2


def _canonical(q: sp.csr_matrix) -> sp.csr_matrix:
    """Sorted indices, and one index dtype for indices and indptr (so row-block views are
    made without copies)."""
    q.sort_indices()
    dtype = np.int32 if q.nnz < 2**31 - 1 else np.int64
    return sp.csr_matrix(
        (q.data, q.indices.astype(dtype, copy=False), q.indptr.astype(dtype, copy=False)),
        shape=q.shape,
        copy=False,
    )


def _resized(old: npt.NDArray[Any] | None, cap: int, keep: int, dtype: Any) -> Any:
    new = np.zeros(cap, dtype=dtype)
    if old is not None:
        new[:keep] = old[:keep]
    return new


class RiskMonitor:
    """Margin ratios of many accounts. Rows are assigned in `add_account` order."""

    def __init__(
        self,
        codes: Sequence[str],
        haircut_bps: Sequence[int] | npt.ArrayLike,
        *,
        threads: int | None = None,
    ) -> None:
        self.threads = max(1, threads if threads is not None else min(2, os.cpu_count() or 1))
        self._pool: ThreadPoolExecutor | None = None
        self.codes = list(codes)
        self._col = {c: i for i, c in enumerate(self.codes)}
        if len(self._col) != len(self.codes):
            raise InvalidInput("security codes must be unique")
        n_sec = len(self.codes)
        self._base_haircut = np.asarray(haircut_bps, dtype=np.float64) / BPS
        if self._base_haircut.shape != (n_sec,):
            raise InvalidInput("one haircut per security")
        self._warn_bps = _WARN.copy()  # per tier; `set_lines` (stressed regime) changes them
        self._liq_bps = _LIQ.copy()
        self._halted = np.zeros(n_sec, dtype=bool)
        self._warn_bps = _WARN.copy()
        self._liq_bps = _LIQ.copy()
        self._haircut = self._base_haircut.copy()
        self._price = np.zeros(n_sec, dtype=np.float64)
        self._value = np.zeros(n_sec, dtype=np.float64)  # price × haircut
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._n = 0
        self._alloc(1024)
        self._q = sp.csr_matrix((self._cap, n_sec), dtype=np.float64)
        self._overlay: dict[tuple[int, int], float] = {}
        self._overlay_arrays: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], F64] | None = None
        self._prev_state = np.zeros(self._cap, dtype=np.int8)

    # ── construction ───────────────────────────────────────────────────────────────────

    def _alloc(self, cap: int) -> None:
        """(Re)allocate the per-account vectors for `cap` rows, keeping the first `_n`."""
        n = self._n
        first = not hasattr(self, "cash_fen")

        def i64(old: I64 | None) -> I64:
            return _resized(old, cap, n, np.int64)

        def f64(old: F64 | None) -> F64:
            return _resized(old, cap, n, np.float64)

        self.cash_fen: I64 = i64(None if first else self.cash_fen)
        self.reserve_fen: I64 = i64(None if first else self.reserve_fen)
        self.debt_fen: I64 = i64(None if first else self.debt_fen)
        self._cash_f: F64 = f64(None if first else self._cash_f)
        self._reserve_f: F64 = f64(None if first else self._reserve_f)
        self._warn_thr: F64 = f64(None if first else self._warn_thr)
        self._liq_thr: F64 = f64(None if first else self._liq_thr)
        self._inv_debt_bps: F64 = f64(None if first else self._inv_debt_bps)
        self._no_debt: npt.NDArray[np.bool_] = _resized(
            None if first else self._no_debt, cap, n, np.bool_
        )
        self.tier: npt.NDArray[np.int8] = _resized(None if first else self.tier, cap, n, np.int8)
        self.liquidating: npt.NDArray[np.bool_] = _resized(
            None if first else self.liquidating, cap, n, np.bool_
        )
        self._cap = cap

    def _grow_rows(self, cap: int) -> None:
        self._alloc(cap)
        q = self._q
        indptr = np.concatenate([q.indptr, np.full(cap - q.shape[0], q.indptr[-1])])
        self._q = _canonical(sp.csr_matrix((q.data, q.indices, indptr), shape=(cap, q.shape[1])))
        prev = np.zeros(cap, dtype=np.int8)
        prev[: len(self._prev_state)] = self._prev_state
        self._prev_state = prev

    @classmethod
    def from_arrays(
        cls,
        codes: Sequence[str],
        haircut_bps: npt.ArrayLike,
        positions: sp.csr_matrix,
        cash_fen: npt.ArrayLike,
        reserve_fen: npt.ArrayLike,
        debt_fen: npt.ArrayLike,
        tier: npt.ArrayLike,
        ids: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> RiskMonitor:
        """Bulk load (start of day, benchmarks). Without `ids`, accounts are named by row."""
        m = cls(codes, haircut_bps, threads=threads)
        n = positions.shape[0]
        if positions.shape[1] != len(m.codes):
            raise InvalidInput("positions need one column per security")
        m._n = 0
        m._alloc(max(n, 1))
        m._n = n
        m._q = _canonical(sp.csr_matrix(positions, dtype=np.float64))
        m.cash_fen[:n] = np.asarray(cash_fen, dtype=np.int64)
        m.reserve_fen[:n] = np.asarray(reserve_fen, dtype=np.int64)
        m.debt_fen[:n] = np.asarray(debt_fen, dtype=np.int64)
        tiers = np.asarray(tier, dtype=np.int8)
        if tiers.size and not np.all(m._warn_bps[np.clip(tiers, 0, MAX_TIERS)] > 0):
            raise InvalidInput("unknown leverage tier")
        m.tier[:n] = tiers
        m._prev_state = np.zeros(m._cap, dtype=np.int8)
        if ids is not None:
            m._ids = list(ids)
            m._row = {a: i for i, a in enumerate(m._ids)}
        m._refresh_mirrors(slice(0, n))
        return m

    def _refresh_mirrors(self, rows: slice | npt.NDArray[np.intp] | int) -> None:
        self._cash_f[rows] = self.cash_fen[rows]
        self._reserve_f[rows] = self.reserve_fen[rows]
        debt = self.debt_fen[rows].astype(np.float64)
        tiers = self.tier[rows]
        self._warn_thr[rows] = debt * self._warn_bps[tiers] / BPS
        self._liq_thr[rows] = debt * self._liq_bps[tiers] / BPS
        no_debt = debt <= 0
        self._no_debt[rows] = no_debt
        self._inv_debt_bps[rows] = np.where(no_debt, 0.0, BPS / np.where(no_debt, 1.0, debt))

    def lines(self) -> dict[int, tuple[int, int]]:
        """Per tier: the (warning, liquidation) lines in force, bps."""
        return {t: (int(self._warn_bps[t]), int(self._liq_bps[t])) for t in sorted(TIERS)}

    def set_lines(self, lines: dict[int, tuple[int, int]]) -> bool:
        """Per tier: the (warning, liquidation) lines in force (the Liquidator raises them
        while the regime is stressed). Returns whether anything changed."""
        if self.lines() == {**self.lines(), **lines}:
            return False
        for t, (warn, liq) in lines.items():
            if t not in TIERS or not warn >= liq > BPS:
                raise InvalidInput(f"tier {t}: need warning ≥ liquidation > 100%")
            self._warn_bps[t], self._liq_bps[t] = warn, liq
        self._refresh_mirrors(slice(0, self._n))
        return True

    # ── accounts ───────────────────────────────────────────────────────────────────────

    @property
    def n_accounts(self) -> int:
        return self._n

    def row(self, account: str) -> int:
        try:
            return self._row[account]
        except KeyError:
            if not self._row and account.isdigit() and int(account) < self._n:
                return int(account)  # bulk-loaded without ids: rows are the names
            raise NotFound(f"no account {account} in the monitor", account=account) from None

    def account_id(self, row: int) -> str:
        return self._ids[row] if self._ids else str(row)

    def add_account(
        self, account: str, tier: int, *, cash_fen: int = 0, reserve_fen: int = 0, debt_fen: int = 0
    ) -> int:
        if account in self._row:
            raise Conflict(f"account {account} is already monitored", account=account)
        if not 1 <= tier <= MAX_TIERS or self._warn_bps[tier] == 0:
            raise InvalidInput(f"unknown leverage tier {tier}")
        if self._n and not self._ids:
            raise Conflict("a monitor bulk-loaded without ids cannot add named accounts")
        if self._n == self._cap:
            self._grow_rows(self._cap * 2)
        r = self._n
        self._n += 1
        self._ids.append(account)
        self._row[account] = r
        self.tier[r] = tier
        self.set_balances(account, cash_fen=cash_fen, reserve_fen=reserve_fen, debt_fen=debt_fen)
        return r

    def set_balances(
        self,
        account: str,
        *,
        cash_fen: int | None = None,
        reserve_fen: int | None = None,
        debt_fen: int | None = None,
    ) -> None:
        """Absolute values from chain events (deposit, draw, repay, top-up, interest)."""
        r = self.row(account)
        for name, v in (
            ("cash_fen", cash_fen),
            ("reserve_fen", reserve_fen),
            ("debt_fen", debt_fen),
        ):
            if v is None:
                continue
            if v < 0:
                raise InvalidInput(f"{name} must not be negative", account=account)
            getattr(self, name)[r] = v
        self._refresh_mirrors(r)

    def set_liquidating(self, account: str, liquidating: bool = True) -> None:
        self.liquidating[self.row(account)] = liquidating

    # ── positions ──────────────────────────────────────────────────────────────────────

    def col(self, code: str) -> int:
        try:
            return self._col[code]
        except KeyError:
            raise NotFound(f"security {code} is not monitored", code=code) from None

    def set_position(self, account: str, code: str, quantity: int) -> None:
        """The account now holds `quantity` shares of `code` (0 removes the position)."""
        if quantity < 0:
            raise InvalidInput("quantity must not be negative", account=account, code=code)
        r, c = self.row(account), self.col(code)
        q = self._q
        start, end = q.indptr[r], q.indptr[r + 1]
        k = start + int(np.searchsorted(q.indices[start:end], c))
        if k < end and q.indices[k] == c:
            q.data[k] = quantity  # in place; a zero stays as an explicit zero until compact()
            return
        if quantity == 0:
            self._overlay.pop((r, c), None)
        else:
            self._overlay[(r, c)] = float(quantity)
        self._overlay_arrays = None
        if len(self._overlay) > max(1_000, q.nnz // 100):
            self.compact()

    def position(self, account: str, code: str) -> int:
        r, c = self.row(account), self.col(code)
        if (r, c) in self._overlay:
            return int(self._overlay[(r, c)])
        return int(self._q[r, c])

    def compact(self) -> None:
        """Merge the overlay into the CSR matrix and drop explicit zeros."""
        if self._overlay:
            keys = np.array(list(self._overlay.keys()), dtype=np.intp)
            vals = np.fromiter(self._overlay.values(), dtype=np.float64, count=len(self._overlay))
            add = sp.csr_matrix((vals, (keys[:, 0], keys[:, 1])), shape=self._q.shape)
            self._q = (self._q + add).tocsr()
            self._overlay.clear()
            self._overlay_arrays = None
        self._q.eliminate_zeros()
        self._q = _canonical(self._q)

    @property
    def nnz(self) -> int:
        return int(self._q.nnz) + len(self._overlay)

    # ── market ─────────────────────────────────────────────────────────────────────────

    def update_prices(self, cols: npt.ArrayLike, price_fen: npt.ArrayLike) -> None:
        """New prices (fen) for the given security columns."""
        idx = np.asarray(cols, dtype=np.intp)
        self._price[idx] = price_fen
        self._value[idx] = self._price[idx] * self._haircut[idx]

    def update_price(self, code: str, price_fen: int) -> None:
        self.update_prices([self.col(code)], [price_fen])

    def tier_lines(self, tier: int) -> tuple[int, int]:
        """(warning, liquidation) bps the monitor classifies `tier` with."""
        return int(self._warn_bps[tier]), int(self._liq_bps[tier])

    def set_tier_lines(self, tier: int, warning_bps: int, liquidation_bps: int) -> None:
        """A tier's lines changed on chain (`RiskParams.TierSet`): every account of the tier
        is classified with the new lines from the next tick."""
        if not 1 <= tier <= MAX_TIERS or not BPS < liquidation_bps < warning_bps:
            raise InvalidInput(f"tier {tier}: lines {warning_bps}/{liquidation_bps} not ordered")
        self._warn_bps[tier], self._liq_bps[tier] = warning_bps, liquidation_bps
        rows = np.flatnonzero(self.tier[: self._n] == tier)
        if rows.size:
            self._refresh_mirrors(rows)

    def set_base_haircut(self, code: str, haircut_bps: int) -> None:
        """A security's haircut changed on chain (board haircut, ST status, new listing):
        its value is re-computed now (a halt still caps it)."""
        if not 0 <= haircut_bps <= BPS:
            raise InvalidInput(f"haircut {haircut_bps} bps not in 0..{BPS}")
        c = self.col(code)
        self._base_haircut[c] = haircut_bps / BPS
        self.set_halted(code, bool(self._halted[c]))

    def set_halted(self, code: str, halted: bool = True) -> None:
        c = self.col(code)
        self._halted[c] = halted
        base = self._base_haircut[c]
        self._haircut[c] = min(base, HALTED_HAIRCUT_BPS / BPS) if halted else base
        self._value[c] = self._price[c] * self._haircut[c]

    def cols(self, codes: Iterable[str]) -> npt.NDArray[np.intp]:
        return np.fromiter((self.col(c) for c in codes), dtype=np.intp)

    # ── the tick ───────────────────────────────────────────────────────────────────────

    def _bounds(self) -> list[tuple[int, int]]:
        """Row ranges, one per thread (one range when the book is small)."""
        n = self._n
        k = self.threads if n >= _MIN_ROWS_PER_THREAD * self.threads else 1
        edges = np.linspace(0, n, k + 1).astype(int).tolist()
        return list(itertools.pairwise(edges))

    def _parallel(self, fn: Any) -> None:
        bounds = self._bounds()
        if len(bounds) == 1:
            fn(*bounds[0])
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="risk-monitor")
        for f in [self._pool.submit(fn, lo, hi) for lo, hi in bounds]:
            f.result()

    def _overlay_rows(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], F64]:
        """The overlay as arrays sorted by row (cached until it changes)."""
        if self._overlay_arrays is None:
            keys = np.array(sorted(self._overlay), dtype=np.intp).reshape(-1, 2)
            vals = np.array([self._overlay[(r, c)] for r, c in keys.tolist()], dtype=np.float64)
            self._overlay_arrays = (keys[:, 0], keys[:, 1], vals)
        return self._overlay_arrays

    def _collateral_into(self, out: F64, lo: int, hi: int) -> None:
        """out = cash + Q · value for rows [lo, hi), overlay included."""
        q = self._q
        if _csr_matvec is None:
            np.add(q[lo:hi].dot(self._value), self._cash_f[lo:hi], out=out)
        else:
            out[:] = self._cash_f[lo:hi]  # the kernel accumulates: out += Q · value
            # indptr keeps absolute offsets, so the whole index/data arrays are passed
            _csr_matvec(
                hi - lo, q.shape[1], q.indptr[lo : hi + 1], q.indices, q.data, self._value, out
            )
        if self._overlay:
            rows, cols, vals = self._overlay_rows()
            i, j = np.searchsorted(rows, [lo, hi])
            if j > i:
                np.add.at(out, rows[i:j] - lo, vals[i:j] * self._value[cols[i:j]])

    def collateral(self) -> F64:
        """cash + Σ haircut × price × quantity, per account (float64 fen)."""
        coll = np.empty(self._n)
        self._parallel(lambda lo, hi: self._collateral_into(coll[lo:hi], lo, hi))
        return coll

    def tick(self) -> TickResult:
        """Recompute every ratio and state; report the accounts whose state changed.

        Each thread walks its rows in chunks small enough for the temporaries to stay in
        cache: mat-vec, ratio and states of a chunk are computed before the next is read."""
        n = self._n
        ratio = np.empty(n)
        state = np.empty(n, dtype=np.int8)
        changed = np.empty(n, dtype=np.bool_)

        def rows(lo: int, hi: int) -> None:
            coll = np.empty(min(_CHUNK_ROWS, hi - lo))
            for a in range(lo, hi, _CHUNK_ROWS):
                b = min(a + _CHUNK_ROWS, hi)
                c = coll[: b - a]
                self._collateral_into(c, a, b)
                self._classify(c, a, b, ratio[a:b], state[a:b], changed[a:b])

        self._parallel(rows)
        return TickResult(ratio, state, np.flatnonzero(changed))

    def _classify(
        self,
        c: F64,
        a: int,
        b: int,
        ratio: F64,
        state: npt.NDArray[np.int8],
        changed: npt.NDArray[np.bool_],
    ) -> None:
        np.multiply(c, self._inv_debt_bps[a:b], out=ratio)
        np.putmask(ratio, self._no_debt[a:b], np.inf)
        liq_thr = self._liq_thr[a:b]
        below_warn = c < self._warn_thr[a:b]
        below_liq = c < liq_thr
        reserve = self._reserve_f[a:b]
        topup = np.add(c, reserve) >= liq_thr
        topup &= below_warn
        topup &= reserve > 0
        np.add(below_warn.view(np.int8), topup.view(np.int8), out=state)
        below_liq &= ~topup
        state += below_liq.view(np.int8) << 1
        np.putmask(state, self.liquidating[a:b], np.int8(AccountState.LIQUIDATING))
        prev = self._prev_state[a:b]
        np.not_equal(state, prev, out=changed)
        prev[:] = state

    def memory_bytes(self) -> int:
        """Bytes held by the arrays (not the Python id map)."""
        arrays = [
            self._q.data,
            self._q.indices,
            self._q.indptr,
            self.cash_fen,
            self.reserve_fen,
            self.debt_fen,
            self._cash_f,
            self._reserve_f,
            self._warn_thr,
            self._liq_thr,
            self._inv_debt_bps,
            self._no_debt,
            self.tier,
            self.liquidating,
            self._prev_state,
        ]
        return sum(int(a.nbytes) for a in arrays)


def loop_tick(
    positions: list[list[tuple[int, int]]],
    cash_fen: list[int],
    reserve_fen: list[int],
    debt_fen: list[int],
    tier: list[int],
    price_fen: list[float],
    haircut: list[float],
) -> list[int]:
    """The per-account Python loop the monitor replaces (the benchmark's baseline and the
    tests' reference): the same states, one account at a time."""
    warn_bps, liq_bps = _WARN.tolist(), _LIQ.tolist()
    out = []
    for a, pos in enumerate(positions):
        coll = float(cash_fen[a])
        for c, q in pos:
            coll += q * price_fen[c] * haircut[c]
        debt = debt_fen[a]
        warn = debt * warn_bps[tier[a]] / BPS
        liq = debt * liq_bps[tier[a]] / BPS
        if coll >= warn:
            s = AccountState.HEALTHY
        elif reserve_fen[a] > 0 and coll + reserve_fen[a] >= liq:
            s = AccountState.TOPUP_DUE
        elif coll < liq:
            s = AccountState.LIQUIDATION_DUE
        else:
            s = AccountState.WARNING
        out.append(int(s))
    return out
