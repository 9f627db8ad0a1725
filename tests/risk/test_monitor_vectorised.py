"""The vectorised risk monitor against a per-account reference loop, plus its edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from crowdleverage.domain.errors import Conflict, InvalidInput, NotFound
from crowdleverage.risk.monitor import AccountState, RiskMonitor, loop_tick

CODES = ["000001", "600000", "300750", "000002"]
HAIRCUTS = [10_000, 10_000, 8_000, 10_000]
PRICES = [1_000, 2_000, 5_000, 800]


def monitor() -> RiskMonitor:
    m = RiskMonitor(CODES, HAIRCUTS)
    m.update_prices(np.arange(len(CODES)), PRICES)
    return m


def test_states_at_the_tier_lines():
    m = monitor()
    # tier 3: warning 125%, liquidation 115%. Debt 100万 = 100_000_000 fen.
    debt = 100_000_000
    m.add_account("healthy", 3, cash_fen=0, debt_fen=debt)
    m.set_position("healthy", "000001", 125_000)  # 125% exactly: on the line is healthy
    m.add_account("warning", 3, debt_fen=debt)
    m.set_position("warning", "000001", 124_900)
    m.add_account("liq", 3, debt_fen=debt)
    m.set_position("liq", "000001", 114_900)
    m.add_account("topup", 3, debt_fen=debt, reserve_fen=200_000)
    m.set_position("topup", "000001", 114_900)  # 114.9% + 0.2% reserve ≥ 115%
    m.add_account("short-reserve", 3, debt_fen=debt, reserve_fen=50_000)
    m.set_position("short-reserve", "000001", 114_900)
    m.add_account("no-debt", 1, cash_fen=5)
    m.add_account("locked", 3, debt_fen=debt)
    m.set_position("locked", "000001", 200_000)
    m.set_liquidating("locked")
    res = m.tick()
    states = {m.account_id(r): AccountState(s) for r, s in enumerate(res.state)}
    assert states == {
        "healthy": AccountState.HEALTHY,
        "warning": AccountState.WARNING,
        "liq": AccountState.LIQUIDATION_DUE,
        "topup": AccountState.TOPUP_DUE,
        "short-reserve": AccountState.LIQUIDATION_DUE,
        "no-debt": AccountState.HEALTHY,
        "locked": AccountState.LIQUIDATING,
    }
    assert res.ratio_bps[m.row("healthy")] == pytest.approx(12_500)
    assert res.ratio_bps[m.row("warning")] == pytest.approx(12_490)
    assert np.isinf(res.ratio_bps[m.row("no-debt")])


def test_haircuts_and_halts_enter_the_ratio():
    m = monitor()
    m.add_account("a", 1, debt_fen=1_000_000)
    m.set_position("a", "300750", 400)  # ChiNext 80%: 400 × 5000 × 0.8 = 1.6M → 160%
    assert m.tick().ratio_bps[0] == pytest.approx(16_000)
    m.set_halted("300750")  # halted: 50%
    res = m.tick()
    assert res.ratio_bps[0] == pytest.approx(10_000)
    assert AccountState(res.state[0]) is AccountState.LIQUIDATION_DUE
    m.set_halted("300750", False)
    assert m.tick().ratio_bps[0] == pytest.approx(16_000)


def test_changed_reports_only_transitions():
    m = monitor()
    m.add_account("a", 2, debt_fen=1_000_000)
    m.set_position("a", "000001", 2_000)  # 200%
    m.add_account("b", 2, debt_fen=1_000_000)
    m.set_position("b", "600000", 1_000)  # 200%
    assert list(m.tick().changed) == []
    m.update_price("000001", 650)  # a → 130%: warning
    assert [m.account_id(r) for r in m.tick().changed] == ["a"]
    assert list(m.tick().changed) == []  # same prices, same states
    m.update_price("000001", 1_000)
    assert [m.account_id(r) for r in m.tick().changed] == ["a"]


def random_book(rng: np.random.Generator, n: int, n_sec: int):
    rows, cols, vals = [], [], []
    for a in range(n):
        k = int(rng.integers(0, 6))
        for c in rng.choice(n_sec, size=k, replace=False):
            rows.append(a)
            cols.append(int(c))
            vals.append(int(rng.integers(1, 50)) * 100)
    q = sp.csr_matrix((vals, (rows, cols)), shape=(n, n_sec), dtype=np.float64)
    cash = rng.integers(0, 200_000, n)
    reserve = rng.integers(0, 2, n) * rng.integers(0, 300_000, n)
    debt = rng.integers(0, 3_000_000, n) * rng.integers(0, 2, n)
    tier = rng.integers(1, 4, n)
    return q, cash, reserve, debt, tier


def reference_states(m: RiskMonitor, q, cash, reserve, debt, tier, prices, haircut):
    positions = [
        [
            (int(c), int(v))
            for c, v in zip(
                q.indices[q.indptr[a] : q.indptr[a + 1]],
                q.data[q.indptr[a] : q.indptr[a + 1]],
                strict=True,
            )
        ]
        for a in range(q.shape[0])
    ]
    return loop_tick(
        positions,
        cash.tolist(),
        reserve.tolist(),
        debt.tolist(),
        tier.tolist(),
        list(prices),
        list(haircut),
    )


def test_bulk_loaded_book_matches_the_reference_loop_over_price_moves():
    rng = np.random.default_rng(7)
    n_sec = 50
    codes = [f"{600000 + i}" for i in range(n_sec)]
    haircut_bps = rng.choice([10_000, 8_000], n_sec)
    q, cash, reserve, debt, tier = random_book(rng, 3_000, n_sec)
    m = RiskMonitor.from_arrays(codes, haircut_bps, q, cash, reserve, debt, tier)
    prices = rng.integers(300, 5_000, n_sec).astype(np.float64)
    seen = set()
    for _ in range(5):
        m.update_prices(np.arange(n_sec), prices)
        res = m.tick()
        ref = reference_states(m, q, cash, reserve, debt, tier, prices, haircut_bps / 10_000)
        assert res.state.tolist() == ref
        seen |= set(ref)
        prices = prices * rng.uniform(0.85, 1.1, n_sec)
    assert seen >= {0, 1, 2, 3}  # the data exercised every computed state


def test_incremental_updates_equal_a_rebuild():
    rng = np.random.default_rng(11)
    n_sec = 30
    codes = [f"{600000 + i}" for i in range(n_sec)]
    hc = np.full(n_sec, 10_000)
    q, cash, reserve, debt, tier = random_book(rng, 500, n_sec)
    m = RiskMonitor.from_arrays(codes, hc, q, cash, reserve, debt, tier)
    dense = q.toarray()
    for _ in range(3_000):  # enough new entries to force at least one compaction
        a, c = int(rng.integers(0, 500)), int(rng.integers(0, n_sec))
        v = int(rng.integers(0, 30)) * 100
        m.set_position(str(a), codes[c], v)
        dense[a, c] = v
    new_debt = rng.integers(0, 3_000_000, 500)
    for a in range(0, 500, 7):
        m.set_balances(str(a), debt_fen=int(new_debt[a]))
        debt[a] = new_debt[a]
    prices = rng.integers(300, 5_000, n_sec)
    m.update_prices(np.arange(n_sec), prices)
    rebuilt = RiskMonitor.from_arrays(codes, hc, sp.csr_matrix(dense), cash, reserve, debt, tier)
    rebuilt.update_prices(np.arange(n_sec), prices)
    np.testing.assert_allclose(m.collateral(), rebuilt.collateral())
    assert m.tick().state.tolist() == rebuilt.tick().state.tolist()
    m.compact()
    np.testing.assert_allclose(m.collateral(), rebuilt.collateral())
    assert m.nnz == int(np.count_nonzero(dense))
    assert m.position("3", codes[5]) == dense[3, 5]


def test_accounts_grow_past_the_initial_capacity():
    m = monitor()
    for i in range(3_000):
        m.add_account(f"acct-{i}", 1 + i % 3, cash_fen=1_000, debt_fen=i)
        m.set_position(f"acct-{i}", CODES[i % 4], 100)
    res = m.tick()
    assert len(res.state) == 3_000 and m.n_accounts == 3_000
    assert res.ratio_bps[m.row("acct-2999")] == pytest.approx(
        (1_000 + 100 * PRICES[2999 % 4] * HAIRCUTS[2999 % 4] / 10_000) * 10_000 / 2_999
    )


def test_bad_updates_are_refused():
    m = monitor()
    m.add_account("a", 1)
    with pytest.raises(Conflict):
        m.add_account("a", 1)
    with pytest.raises(InvalidInput):
        m.add_account("b", 9)
    with pytest.raises(NotFound):
        m.set_position("a", "999999", 100)
    with pytest.raises(NotFound):
        m.set_position("nobody", "000001", 100)
    with pytest.raises(InvalidInput):
        m.set_position("a", "000001", -100)
    with pytest.raises(InvalidInput):
        m.set_balances("a", cash_fen=-1)
    with pytest.raises(InvalidInput):
        RiskMonitor(["000001", "000001"], [10_000, 10_000])


def test_threads_and_chunks_give_the_same_answer(monkeypatch):
    import crowdleverage.risk.monitor as mon

    rng = np.random.default_rng(5)
    n_sec = 40
    codes = [f"{600000 + i}" for i in range(n_sec)]
    hc = rng.choice([10_000, 8_000], n_sec)
    q, cash, reserve, debt, tier = random_book(rng, 2_000, n_sec)
    prices = rng.integers(300, 5_000, n_sec)
    single = RiskMonitor.from_arrays(codes, hc, q, cash, reserve, debt, tier, threads=1)
    monkeypatch.setattr(mon, "_MIN_ROWS_PER_THREAD", 10)
    monkeypatch.setattr(mon, "_CHUNK_ROWS", 97)  # chunk edges fall inside thread ranges
    multi = RiskMonitor.from_arrays(codes, hc, q, cash, reserve, debt, tier, threads=2)
    assert len(multi._bounds()) == 2
    for m in (single, multi):
        for a in range(0, 2_000, 3):  # new positions: the overlay, spread over every chunk
            m.set_position(str(a), codes[a % n_sec], 700)
        m.update_prices(np.arange(n_sec), prices)
    r1, r2 = single.tick(), multi.tick()
    assert r1.state.tolist() == r2.state.tolist()
    np.testing.assert_allclose(r1.ratio_bps, r2.ratio_bps)
    assert r1.changed.tolist() == r2.changed.tolist()
