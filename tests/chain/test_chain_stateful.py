"""Hypothesis stateful test of EmbeddedChain persistence: a chain that is restarted and read by
other (read-only) instances at random points stays identical to a twin that never restarts —
same state root, block, clock, balances, events and revert outcomes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from crowdleverage.chain.codes import ref_to_bytes32
from crowdleverage.chain.deploy import deploy_system
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.scenario import SCENARIO_ACTORS, register_participants
from crowdleverage.domain.errors import ContractRevert

LONG = os.environ.get("CROWDLEV_LONG") == "1"
KEYS = ActorKeys.dev(7, SCENARIO_ACTORS)
PARTIES = ("investor", "borrower", "pool")


class PersistenceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="chain-sm-"))
        self.durable = EmbeddedChain(self.tmp / "durable", KEYS, snapshot_every=3)
        self.twin = EmbeddedChain(self.tmp / "twin", KEYS, snapshot_every=10**9)
        for chain, sub in ((self.durable, "durable"), (self.twin, "twin")):
            deploy_system(chain, self.tmp / sub)
            register_participants(chain)
        self.n_refs = 0

    def teardown(self) -> None:
        self.durable.close()
        self.twin.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _both(self, contract: str, fn: str, *args: object, actor: str) -> None:
        outcomes = []
        for chain in (self.durable, self.twin):
            try:
                chain.send(contract, fn, *args, actor=actor)
                outcomes.append("ok")
            except ContractRevert as err:
                outcomes.append(err.reason)
        assert outcomes[0] == outcomes[1]

    @rule(to=st.sampled_from(PARTIES), amount_fen=st.integers(0, 10**6), reuse=st.booleans())
    def mint(self, to: str, amount_fen: int, reuse: bool) -> None:
        if not reuse:
            self.n_refs += 1
        ref = ref_to_bytes32(f"r{self.n_refs}")
        self._both("CashToken", "mint", self.durable.address_of(to), amount_fen, ref,
                   actor="custodian")  # fmt: skip

    @rule(frm=st.sampled_from(PARTIES), to=st.sampled_from(PARTIES), amount=st.integers(0, 10**6))
    def transfer(self, frm: str, to: str, amount: int) -> None:
        self._both("CashToken", "transfer", self.durable.address_of(to), amount, actor=frm)

    @rule(seconds=st.integers(1, 10 * 86_400))
    def advance_time(self, seconds: int) -> None:
        self.durable.advance_time(seconds)
        self.twin.advance_time(seconds)

    @rule()
    def restart(self) -> None:
        self.durable.close()
        self.durable = EmbeddedChain(self.tmp / "durable", KEYS, snapshot_every=3)

    @rule()
    def reader_agrees(self) -> None:
        # a read-only instance loads the last snapshot and replays the journal tail
        reader = EmbeddedChain(self.tmp / "durable", KEYS, read_only=True)
        try:
            assert reader.state_root() == self.durable.state_root()
            assert reader.events() == self.durable.events()
        finally:
            reader.close()

    @invariant()
    def same_as_twin(self) -> None:
        a, b = self.durable, self.twin
        assert a.state_root() == b.state_root()
        assert (a.block_number(), a.block_time()) == (b.block_number(), b.block_time())
        assert [e.key() for e in a.events()] == [e.key() for e in b.events()]
        for p in PARTIES:
            who = a.address_of(p)
            assert a.call("CashToken", "balanceOf", who) == b.call("CashToken", "balanceOf", who)


def test_embedded_chain_persistence_stateful() -> None:
    run_state_machine_as_test(
        PersistenceMachine,
        settings=settings(
            max_examples=60 if LONG else 10, stateful_step_count=40 if LONG else 15, deadline=None
        ),
    )
