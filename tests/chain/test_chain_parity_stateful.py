"""Hypothesis stateful parity: random user, compliance and oracle actions on the embedded
chain and on anvil side by side give the same outcome (ok or the same revert reason), the same
gas, events and balances after every step."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from crowdleverage.chain.codes import ref_to_bytes32
from crowdleverage.chain.deploy import deploy_system
from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.rpc import RpcChain
from crowdleverage.chain.scenario import PAB, SCENARIO_ACTORS, open_day, register_participants
from crowdleverage.domain.errors import ContractRevert

pytestmark = pytest.mark.anvil

LONG = os.environ.get("CROWDLEV_LONG") == "1"
PARTIES = ("investor", "borrower", "pool")


class ParityMachine(RuleBasedStateMachine):
    url: str
    keys: ActorKeys

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="parity-sm-"))
        self.rpc = RpcChain(self.url, self.keys, None, controlled_clock=True)
        self.rpc._rpc("anvil_reset", [])
        self.rpc.fund(SCENARIO_ACTORS, 10**21)
        self.emb = EmbeddedChain(self.tmp / "emb", self.keys)
        start = max(self.rpc.block_time(), self.emb.block_time()) + 1_000
        self.chains = (self.emb, self.rpc)
        for chain, sub in zip(self.chains, ("emb", "rpc"), strict=True):
            chain.set_block_time(start)
            deploy_system(chain, self.tmp / sub)
            register_participants(chain)
            open_day(chain, 1, 1_000)
        self.day = 1
        self.n_refs = 0

    def teardown(self) -> None:
        self.emb.close()
        self.rpc.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _both(self, contract: str, fn: str, *args: object, actor: str) -> None:
        outcomes = []
        for chain in self.chains:
            try:
                res = chain.send(contract, fn, *args, actor=actor)
                outcomes.append(("ok", res.gas_used, [e.key() for e in res.events]))
            except ContractRevert as err:
                outcomes.append(("revert", err.reason, []))
        assert outcomes[0] == outcomes[1]

    def _ref(self, reuse: bool) -> bytes:
        if not reuse:
            self.n_refs += 1
        return ref_to_bytes32(f"p{self.n_refs}")

    @rule(to=st.sampled_from(PARTIES), amount=st.integers(0, 10**6), reuse=st.booleans())
    def mint_cash(self, to: str, amount: int, reuse: bool) -> None:
        who = self.emb.address_of(to)
        self._both("CashToken", "mint", who, amount, self._ref(reuse), actor="custodian")

    @rule(frm=st.sampled_from(PARTIES), to=st.sampled_from(PARTIES), amount=st.integers(0, 10**6))
    def transfer_cash(self, frm: str, to: str, amount: int) -> None:
        self._both("CashToken", "transfer", self.emb.address_of(to), amount, actor=frm)

    @rule(who=st.sampled_from(PARTIES), frozen=st.booleans())
    def freeze(self, who: str, frozen: bool) -> None:
        self._both("IdentityRegistry", "set_frozen", self.emb.address_of(who), frozen,
                   actor="compliance")  # fmt: skip

    @rule(to=st.sampled_from(PARTIES), qty=st.integers(0, 5_000), reuse=st.booleans())
    def buy_fill(self, to: str, qty: int, reuse: bool) -> None:
        who = self.emb.address_of(to)
        self._both("ShareCertificates", "mint", who, PAB, qty, self._ref(reuse), actor="broker")

    @rule(frm=st.sampled_from(PARTIES), to=st.sampled_from(PARTIES), qty=st.integers(1, 5_000))
    def transfer_shares(self, frm: str, to: str, qty: int) -> None:
        self._both("ShareCertificates", "transfer", self.emb.address_of(to), PAB, qty, actor=frm)

    @rule(reporter=st.integers(1, 3), price=st.integers(850, 1_150))
    def report(self, reporter: int, price: int) -> None:
        self._both("PriceOracle", "report", PAB, price, actor=f"reporter{reporter}")

    @rule(seconds=st.integers(1, 2_000))
    def wait(self, seconds: int) -> None:
        for chain in self.chains:
            chain.advance_time(seconds)

    @rule()
    def next_day(self) -> None:
        self.day += 1
        for chain in self.chains:
            open_day(chain, self.day, 1_000)

    @invariant()
    def same_state(self) -> None:
        emb, rpc = self.chains
        assert (emb.block_number(), emb.block_time()) == (rpc.block_number(), rpc.block_time())
        for p in PARTIES:
            who = emb.address_of(p)
            assert emb.call("CashToken", "balanceOf", who) == rpc.call(
                "CashToken", "balanceOf", who
            )
            assert emb.call("ShareCertificates", "unlocked_balance_of", who, PAB) == rpc.call(
                "ShareCertificates", "unlocked_balance_of", who, PAB
            )
        assert emb.call("PriceOracle", "latest", PAB) == rpc.call("PriceOracle", "latest", PAB)


def test_embedded_and_anvil_stateful_parity(anvil_url: str, dev_keys: ActorKeys) -> None:
    ParityMachine.url = anvil_url
    ParityMachine.keys = dev_keys
    run_state_machine_as_test(
        ParityMachine,
        settings=settings(
            max_examples=40 if LONG else 4, stateful_step_count=30 if LONG else 12, deadline=None
        ),
    )
