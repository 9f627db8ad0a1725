"""EmbeddedChain: ChainPort behaviour, persistence across processes, one writer at a time."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from crowdleverage.chain.codes import ref_to_bytes32
from crowdleverage.chain.deploy import deploy_system, read_manifest
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.scenario import register_participants
from crowdleverage.domain.errors import (
    ConfigError,
    Conflict,
    ContractRevert,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)

PROJECT = Path(__file__).resolve().parents[2]


def test_embedded_is_a_chain_port(embedded: EmbeddedChain) -> None:
    assert isinstance(embedded, ChainPort)


def test_deploy_writes_manifest(embedded: EmbeddedChain, tmp_path: Path) -> None:
    manifest = deploy_system(embedded, tmp_path)
    on_disk = read_manifest(tmp_path)
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["chain_id"] == 31337
    assert on_disk["contracts"]["CashToken"]["address"] == embedded.contract_address("CashToken")
    assert (
        embedded.call("CashToken", "REGISTRY")
        == on_disk["contracts"]["IdentityRegistry"]["address"]
    )
    assert embedded.call("IdentityRegistry", "has_role", embedded.address_of("custodian"), 8)


def test_deploy_twice_is_a_conflict(embedded: EmbeddedChain, tmp_path: Path) -> None:
    deploy_system(embedded, tmp_path)
    with pytest.raises(Conflict):
        deploy_system(embedded, tmp_path)


def test_send_revert_is_typed_and_changes_nothing(embedded: EmbeddedChain, tmp_path: Path) -> None:
    deploy_system(embedded, tmp_path)
    register_participants(embedded)
    investor = embedded.address_of("investor")
    embedded.send("CashToken", "mint", investor, 100, ref_to_bytes32("a"), actor="custodian")
    root = embedded.state_root()
    n_events = len(embedded.events())
    with pytest.raises(ContractRevert) as err:
        embedded.send("CashToken", "mint", investor, 100, ref_to_bytes32("a"), actor="custodian")
    assert err.value.reason == "cash: reference already used"
    assert err.value.exit_code == 6
    assert embedded.state_root() == root
    assert len(embedded.events()) == n_events


def test_view_revert_is_typed(embedded: EmbeddedChain, tmp_path: Path) -> None:
    deploy_system(embedded, tmp_path)
    with pytest.raises(ContractRevert, match="oracle: price unreliable"):
        embedded.call("PriceOracle", "price", 600000)


def test_events_filter_and_cursor(embedded: EmbeddedChain, tmp_path: Path) -> None:
    deploy_system(embedded, tmp_path)
    register_participants(embedded)
    all_events = embedded.events()
    sets = embedded.events("IdentityRegistry", "IdentitySet")
    assert len(sets) == 8 + 3  # system actors, then the scenario participants
    assert [e.seq for e in all_events] == sorted(e.seq for e in all_events)
    cursor = sets[-2].seq
    assert embedded.events("IdentityRegistry", "IdentitySet", since=cursor) == sets[-1:]
    assert embedded.events(since=all_events[-1].seq) == []


def test_unknown_contract_and_bad_args(embedded: EmbeddedChain) -> None:
    with pytest.raises(NotFound):
        embedded.call("CashToken", "totalSupply")
    deploy_system(embedded, embedded.dir.parent)
    with pytest.raises(InvalidInput):
        embedded.call("CashToken", "balanceOf")
    with pytest.raises(InvalidInput):
        embedded.call("CashToken", "no_such_function")


def test_clock_is_controllable(embedded: EmbeddedChain, tmp_path: Path) -> None:
    deploy_system(embedded, tmp_path)
    t0 = embedded.block_time()
    embedded.advance_time(86_400 * 30)
    assert embedded.block_time() == t0 + 86_400 * 30
    with pytest.raises(InvalidInput):
        embedded.set_block_time(t0)
    # the registry sees the clock: an identity expiring in 10 s lapses after 11 s
    who = embedded.address_of("investor")
    embedded.send("IdentityRegistry", "register", who, 1, 3, b"CN", embedded.block_time() + 10,
                  actor="compliance")  # fmt: skip
    assert embedded.call("IdentityRegistry", "is_verified", who)
    embedded.advance_time(11)
    assert not embedded.call("IdentityRegistry", "is_verified", who)


def test_one_writer_at_a_time(embedded: EmbeddedChain, tmp_path: Path, dev_keys: ActorKeys) -> None:
    with pytest.raises(ServiceUnavailable):
        EmbeddedChain(tmp_path, dev_keys)
    deploy_system(embedded, tmp_path)
    reader = EmbeddedChain(tmp_path, dev_keys, read_only=True)
    try:
        assert reader.state_root() == embedded.state_root()
        with pytest.raises(Conflict):
            reader.send("PriceOracle", "open_day", 1, actor="operator")
    finally:
        reader.close()


def test_concurrent_threads_are_serialised(embedded: EmbeddedChain, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    deploy_system(embedded, tmp_path)
    register_participants(embedded)
    investor, pool = embedded.address_of("investor"), embedded.address_of("pool")
    embedded.send("CashToken", "mint", investor, 1_000, ref_to_bytes32("t"), actor="custodian")
    before = len(embedded.transactions())

    def pay(_: int) -> int:
        return embedded.send("CashToken", "transfer", pool, 3, actor="investor").block

    with ThreadPoolExecutor(max_workers=4) as ex:
        blocks = list(ex.map(pay, range(40)))
    assert len(set(blocks)) == 40
    assert embedded.call("CashToken", "balanceOf", pool) == 120
    assert [t[0] for t in embedded.transactions()] == list(range(1, before + 41))


def test_read_only_on_empty_dir_is_not_found(tmp_path: Path, dev_keys: ActorKeys) -> None:
    with pytest.raises(NotFound):
        EmbeddedChain(tmp_path / "nothing", dev_keys, read_only=True)


_CHILD = """
import json, os, sys
from pathlib import Path
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.scenario import SCENARIO_ACTORS, basic_scenario, summary
from crowdleverage.chain.deploy import deploy_system
data_dir, mode = Path(sys.argv[1]), sys.argv[2]
keys = ActorKeys.dev(20160104, SCENARIO_ACTORS)

def observe(chain):
    out = summary(chain)
    out.update(state_root=chain.state_root(), block=chain.block_number(), time=chain.block_time())
    return out

if mode == "write":
    chain = EmbeddedChain(data_dir, keys, snapshot_every=7)
    deploy_system(chain, data_dir)
    basic_scenario(chain)
    print(json.dumps([observe(chain)]), flush=True)
    os._exit(0)  # die without close(): the journal tail after the last snapshot must replay
outs = []
for read_only in (True, False):  # a reader, then the next writer
    chain = EmbeddedChain(data_dir, keys, read_only=read_only)
    outs.append(observe(chain))
    chain.close()
print(json.dumps(outs))
"""


def _run_child(data_dir: Path, mode: str) -> list[dict[str, object]]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(data_dir), mode],
        capture_output=True, text=True, cwd=PROJECT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result: list[dict[str, object]] = json.loads(proc.stdout)
    return result


def test_second_process_sees_same_state(tmp_path: Path) -> None:
    # Arrange: process 1 deploys, runs the scenario (a snapshot every 7 txs) and exits without
    # closing, so the last transactions exist only in the journal
    [first] = _run_child(tmp_path, "write")
    assert (tmp_path / "chain" / "state.snapshot").exists()
    # Act: process 2 opens read-only, then as the next writer
    second, third = _run_child(tmp_path, "read")
    # Assert
    assert second == first
    assert third == first
    assert first["cash"] == {"investor": 500_000, "borrower": 2_600_000, "pool": 8_400_000}
    assert first["shares"] == {"investor": 0, "borrower": 500, "pool": 500}


def _journal_after_mint(tmp_path: Path, dev_keys: ActorKeys) -> sqlite3.Connection:
    chain = EmbeddedChain(tmp_path, dev_keys)
    deploy_system(chain, tmp_path)
    register_participants(chain)
    investor = chain.address_of("investor")
    chain.send("CashToken", "mint", investor, 100, ref_to_bytes32("a"), actor="custodian")
    chain.close()
    (tmp_path / "chain" / "state.snapshot").unlink()  # force a replay from genesis
    return sqlite3.connect(tmp_path / "chain" / "journal.sqlite")


def test_replay_that_reverts_is_refused(tmp_path: Path, dev_keys: ActorKeys) -> None:
    db = _journal_after_mint(tmp_path, dev_keys)
    with db:  # the mint's reference (third argument) becomes empty: it reverts on replay
        seq, data = db.execute("SELECT seq, data FROM txs ORDER BY seq DESC LIMIT 1").fetchone()
        forged = bytes(data[:68]) + bytes(32) + bytes(data[100:])
        db.execute("UPDATE txs SET data = ? WHERE seq = ?", (forged, seq))
    db.close()
    with pytest.raises(ConfigError, match="journal replay diverged"):
        EmbeddedChain(tmp_path, dev_keys, read_only=True)


def test_replay_with_other_gas_is_refused(tmp_path: Path, dev_keys: ActorKeys) -> None:
    db = _journal_after_mint(tmp_path, dev_keys)
    with db:
        db.execute("UPDATE txs SET gas_used = gas_used + 1 WHERE seq = (SELECT MAX(seq) FROM txs)")
    db.close()
    with pytest.raises(ConfigError, match="journal replay diverged"):
        EmbeddedChain(tmp_path, dev_keys, read_only=True)


def test_lean_execution_keeps_state_and_survives_reopen(
    embedded: EmbeddedChain, tmp_path: Path, dev_keys: ActorKeys
) -> None:
    """The embedded chain's cuts to titanoboa's per-message cost (chain/README.md) hold on a
    fresh chain and on one reopened from its snapshot, and leave the state root as a replay of
    the journal computes it."""
    deploy_system(embedded, tmp_path)
    register_participants(embedded)
    investor = embedded.address_of("investor")
    embedded.send("CashToken", "mint", investor, 100, ref_to_bytes32("a"), actor="custodian")
    adb = embedded._state()._account_db
    assert adb._get_accessed_node_hashes() is adb._raw_store_db._keys_read
    assert embedded._state().computation_class.__name__ == "LeanComputation"
    root = embedded.state_root()
    embedded.close()
    again = EmbeddedChain(tmp_path, dev_keys)
    try:
        adb = again._state()._account_db
        assert adb._get_accessed_node_hashes() is adb._raw_store_db._keys_read
        assert again.state_root() == root
        assert again.call("CashToken", "balanceOf", investor) == 100
    finally:
        again.close()


def test_storage_reads_outlive_a_snapshot_and_a_revert(
    embedded: EmbeddedChain, tmp_path: Path, dev_keys: ActorKeys
) -> None:
    """Each account's slot cache survives the persist a snapshot makes (py-evm drops its
    storage views, caches included) and a reverted transaction, and every read stays right:
    the state root is the one a replay of the journal from genesis computes."""
    deploy_system(embedded, tmp_path)
    register_participants(embedded)
    investor = embedded.address_of("investor")
    embedded.send("CashToken", "mint", investor, 100, ref_to_bytes32("a"), actor="custodian")
    assert embedded.call("CashToken", "balanceOf", investor) == 100
    token = bytes.fromhex(embedded.contract_address("CashToken")[2:])
    adb = embedded._state()._account_db
    view = adb._get_address_store(token)
    cache = view._storage_cache._cached_values
    embedded.snapshot()
    after = adb._get_address_store(token)
    assert after is not view  # a new storage view over the persisted trie ...
    assert after._storage_cache._cached_values is cache and len(cache) > 0  # ... same cache
    with pytest.raises(ContractRevert):  # an empty reference reverts
        embedded.send("CashToken", "mint", investor, 5, bytes(32), actor="custodian")
    assert adb._get_address_store(token)._storage_cache._cached_values is cache
    embedded.send("CashToken", "mint", investor, 7, ref_to_bytes32("b"), actor="custodian")
    embedded.snapshot()
    assert embedded.call("CashToken", "balanceOf", investor) == 107
    root = embedded.state_root()
    embedded.close()
    (tmp_path / "chain" / "state.snapshot").unlink()  # replay every transaction, no caches
    with EmbeddedChain(tmp_path, dev_keys, read_only=True) as replayed:
        assert replayed.state_root() == root
        assert replayed.call("CashToken", "balanceOf", investor) == 107


def test_close_without_a_snapshot_reopens_from_the_journal(
    tmp_path: Path, dev_keys: ActorKeys
) -> None:
    chain = EmbeddedChain(tmp_path, dev_keys)
    deploy_system(chain, tmp_path)
    register_participants(chain)
    investor = chain.address_of("investor")
    chain.send("CashToken", "mint", investor, 100, ref_to_bytes32("a"), actor="custodian")
    root = chain.state_root()
    chain.close(snapshot=False)
    assert not (tmp_path / "chain" / "state.snapshot").exists()  # < 500 transactions: none
    with EmbeddedChain(tmp_path, dev_keys) as again:
        assert again.state_root() == root
        assert again.call("CashToken", "balanceOf", investor) == 100


def test_no_snapshot_every_n_transactions_when_none(tmp_path: Path, dev_keys: ActorKeys) -> None:
    snap = tmp_path / "chain" / "state.snapshot"
    chain = EmbeddedChain(tmp_path, dev_keys, snapshot_every=None)
    deploy_system(chain, tmp_path)  # more than a handful of transactions
    assert chain.transactions() and not snap.exists()
    root = chain.state_root()
    chain.close()  # the close still writes one
    assert snap.exists()
    with EmbeddedChain(tmp_path, dev_keys, read_only=True) as again:
        assert again.state_root() == root
    every_two = EmbeddedChain(tmp_path / "b", dev_keys, snapshot_every=2)
    try:
        deploy_system(every_two, tmp_path / "b")
        assert (tmp_path / "b" / "chain" / "state.snapshot").exists()
    finally:
        every_two.close()


def test_a_snapshot_prepared_an_account_at_a_time_is_the_same(
    tmp_path: Path, dev_keys: ActorKeys
) -> None:
    """`prepare_snapshot` folds one changed account's storage at a time; the state root, the
    snapshot written after it and a reopen from that snapshot are what one `snapshot` gives."""
    chain = EmbeddedChain(tmp_path, dev_keys, snapshot_every=None)
    deploy_system(chain, tmp_path)
    register_participants(chain)
    investor = chain.address_of("investor")
    chain.send("CashToken", "mint", investor, 100, ref_to_bytes32("a"), actor="custodian")
    assert chain.prepare_snapshot()  # (a state root would fold them all: none before this)
    steps = 1
    while chain.prepare_snapshot(min_slots=1):
        steps += 1
    assert steps > 2  # the deployment changed several contracts' storage
    chain.send("CashToken", "mint", investor, 5, ref_to_bytes32("b"), actor="custodian")
    # a mint changes two of CashToken's slots: too few to fold ahead of the snapshot (which
    # would otherwise wait while every transaction dirties an account again), unless asked
    assert not chain.prepare_snapshot()
    assert chain.prepare_snapshot(min_slots=1) and not chain.prepare_snapshot(min_slots=1)
    chain.snapshot()
    root = chain.state_root()
    chain.close()
    with EmbeddedChain(tmp_path, dev_keys, read_only=True) as again:  # from the snapshot
        assert again._since_snapshot == 0
        assert again.state_root() == root
        assert again.call("CashToken", "balanceOf", investor) == 105
    (tmp_path / "chain" / "state.snapshot").unlink()
    with EmbeddedChain(tmp_path, dev_keys, read_only=True) as replayed:  # from the journal
        assert replayed.state_root() == root
        assert replayed.call("CashToken", "balanceOf", investor) == 105
