"""`SimChain`: a `ChainPort` over a private in-memory titanoboa EVM that can deploy *every*
contract in `contracts/`, including the financing contracts (TranchePool with its TrancheShare
blueprint, InsuranceFund, MarginEngine) that the chain gateway does not deploy yet.

It exists so that the execution and risk parts (oracle feeder, broker, keeper, replay) run
against the real Vyper contracts through the same port the platform uses. It is not
persisted: a process restart loses the chain (the broker's and keeper's restart safety is
tested by restarting *them* against a chain that lives on). When `chain.EmbeddedChain` can
deploy the financing contracts, `deploy_financing` runs on it unchanged.

Reverts raise `ContractRevert` with the contract's reason and change nothing (the EVM undoes
the call). Events of every known contract are decoded into `EventLog`s with a global `seq`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crowdleverage.chain.abi import decode_revert
from crowdleverage.chain.artifacts import CONTRACTS_DIR
from crowdleverage.chain.port import EventLog, TxResult
from crowdleverage.chain.roles import Role
from crowdleverage.domain.errors import Conflict, ContractRevert, InvalidInput, NotFound

GENESIS_TIME_S = 1_451_871_000  # 2016-01-04 09:30 Asia/Shanghai, as EmbeddedChain
YEAR_S = 365 * 86_400


@functools.cache
def _partial(name: str) -> Any:
    import boa

    path = CONTRACTS_DIR / f"{name}.vy"
    if not path.is_file():
        raise NotFound(f"no contract source {name}.vy")
    return boa.load_partial(str(path))


def _plain(v: Any) -> Any:
    from boa.util.abi import Address

    if isinstance(v, Address):
        return str(v)
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v


class SimChain:
    """ChainPort on a private titanoboa `Env`; actors are named addresses."""

    kind = "sim"
    chain_id = 31337

    def __init__(self, genesis_time_s: int = GENESIS_TIME_S) -> None:
        from boa.environment import Env

        self._env = Env()
        self._env.evm.patch.timestamp = genesis_time_s
        self._actors: dict[str, str] = {}
        self._contracts: dict[str, Any] = {}
        self._names: dict[str, str] = {}  # address (lower) → name
        self._events: list[EventLog] = []
        self._tx = itertools.count(1)

    # ── actors and contracts ────────────────────────────────────────────────────────────

    def address_of(self, actor: str) -> str:
        if actor not in self._actors:
            self._actors[actor] = str(self._env.generate_address(actor))
        return self._actors[actor]

    def contract_address(self, name: str) -> str:
        return str(self._contract(name).address)

    def deployed(self) -> dict[str, str]:
        return {n: str(c.address) for n, c in self._contracts.items()}

    def _contract(self, name: str) -> Any:
        try:
            return self._contracts[name]
        except KeyError:
            raise NotFound(f"contract {name} is not deployed on this chain") from None

    def deploy(self, name: str, args: Sequence[Any], *, actor: str) -> str:
        import boa

        if name in self._contracts:
            raise Conflict(f"{name} is already deployed")
        with boa.swap_env(self._env):
            try:
                c = _partial(name).deploy(*args, sender=self.address_of(actor))
            except boa.BoaError as err:
                raise ContractRevert(str(err), contract=name, fn="constructor") from err
        self._contracts[name] = c
        self._names[str(c.address).lower()] = name
        return str(c.address)

    def deploy_blueprint(self, name: str, *, actor: str) -> str:
        import boa

        with boa.swap_env(self._env), self._env.prank(self.address_of(actor)):
            bp = _partial(name).deploy_as_blueprint()
        return str(bp.address)

    def register_at(self, name: str, address: str, source: str) -> None:
        """Know a contract created by another (e.g. a tranche share made from a blueprint)."""
        import boa

        with boa.swap_env(self._env):
            c = _partial(source).at(address)
        self._contracts[name] = c
        self._names[address.lower()] = name

    # ── transactions and views ──────────────────────────────────────────────────────────

    def send(self, contract: str, fn: str, *args: Any, actor: str) -> TxResult:
        import boa

        c = self._contract(contract)
        n = next(self._tx)
        with boa.swap_env(self._env):
            try:
                getattr(c, fn)(*args, sender=self.address_of(actor))
            except boa.BoaError as err:
                comp = c._computation
                reason = decode_revert(bytes(comp.output)) if comp is not None else str(err)
                raise ContractRevert(reason, contract=contract, fn=fn) from None
            logs = c.get_logs(strict=False)
        block = self._env.evm.patch.block_number
        tx_hash = f"sim-{n}"
        new: list[EventLog] = []
        for log in logs:
            fields = getattr(log, "_fields", None)
            if fields is None:
                continue  # a log of a contract this chain does not know
            address = str(log.address)
            args_d = {k: _plain(getattr(log, k)) for k in fields if k != "address"}
            name = self._names.get(address.lower(), "?")
            seq = len(self._events) + 1
            ev = EventLog(seq, block, tx_hash, name, address, type(log).__name__, args_d)
            self._events.append(ev)
            new.append(ev)
        return TxResult(tx_hash, block, 0, tuple(new))

    def call(self, contract: str, fn: str, *args: Any, actor: str | None = None) -> Any:
        import boa

        c = self._contract(contract)
        with boa.swap_env(self._env):
            try:
                out = getattr(c, fn)(*args)
            except boa.BoaError as err:
                comp = c._computation
                reason = decode_revert(bytes(comp.output)) if comp is not None else str(err)
                raise ContractRevert(reason, contract=contract, fn=fn) from None
        return _plain(out)

    def events(
        self, contract: str | None = None, event: str | None = None, since: int = 0
    ) -> list[EventLog]:
        return [
            e
            for e in self._events[since:]
            if (contract is None or e.contract == contract) and (event is None or e.event == event)
        ]

    # ── clock ───────────────────────────────────────────────────────────────────────────

    def block_number(self) -> int:
        return int(self._env.evm.patch.block_number)

    def block_time(self) -> int:
        return int(self._env.evm.patch.timestamp)

    def set_block_time(self, timestamp_s: int) -> None:
        if timestamp_s <= self.block_time():
            raise InvalidInput(f"block time must move forward ({timestamp_s})")
        self._env.time_travel(seconds=timestamp_s - self.block_time())

    def advance_time(self, seconds: int) -> None:
        if seconds <= 0:
            raise InvalidInput("time can only advance by a positive number of seconds")
        self._env.time_travel(seconds=seconds)

    def state_root(self) -> str:
        return "0x" + bytes(self._env.evm.vm.state.make_state_root()).hex()

    def snapshot(self) -> None:
        """Nothing to make durable: the chain lives in memory."""

    def close(self) -> None:
        """Nothing to release."""


# ── the financing system ────────────────────────────────────────────────────────────────

CN = b"CN"
SYSTEM: dict[str, Role] = {
    "compliance": Role.COMPLIANCE,
    "operator": Role.OPERATOR,
    "custodian": Role.CUSTODIAN,
    "broker": Role.BROKER,
    "reporter1": Role.REPORTER,
    "reporter2": Role.REPORTER,
    "reporter3": Role.REPORTER,
    "keeper": Role.KEEPER,
    "fee": Role.INVESTOR,
}


@dataclass(frozen=True, slots=True)
class FinancingOptions:
    oracle_max_age_s: int = 6 * 3_600  # a report stays fresh for the rest of the session
    oracle_quorum: int = 2


def register(chain: Any, actor: str, roles: Role, suitability: int = 4) -> None:
    chain.send(
        "IdentityRegistry", "register", chain.address_of(actor), int(roles), suitability, CN,
        chain.block_time() + 5 * YEAR_S, actor="compliance",
    )  # fmt: skip


def deploy_financing(chain: SimChain, options: FinancingOptions | None = None) -> None:
    """Deploy identity, oracle, cash, certificates, the tranche pool, the insurance fund and
    the margin engine; register the system actors and wire the contracts (as an operator
    would). Securities are registered by the caller (`set_security`)."""
    opts = options or FinancingOptions()
    reg = chain.deploy("IdentityRegistry", [], actor="admin")
    oracle = chain.deploy(
        "PriceOracle", [reg, opts.oracle_max_age_s, opts.oracle_quorum], actor="admin"
    )
    cash = chain.deploy("CashToken", [reg], actor="admin")
    shares = chain.deploy("ShareCertificates", [reg, oracle], actor="admin")
    blueprint = chain.deploy_blueprint("TrancheShare", actor="admin")
    pool = chain.deploy(
        "TranchePool", [cash, reg, blueprint, chain.address_of("fee")], actor="admin"
    )
    insurance = chain.deploy("InsuranceFund", [cash, reg, pool], actor="admin")
    engine = chain.deploy(
        "MarginEngine", [cash, reg, oracle, shares, pool, insurance], actor="admin"
    )
    chain.send(
        "IdentityRegistry", "register", chain.address_of("compliance"), int(Role.COMPLIANCE), 5,
        CN, chain.block_time() + 10 * YEAR_S, actor="admin",
    )  # fmt: skip
    for actor, role in SYSTEM.items():
        if role is not Role.COMPLIANCE:
            register(chain, actor, role, 5)
    for name, address in (("pool", pool), ("insurance", insurance)):
        chain._actors[name] = address
        register(chain, name, Role.PLATFORM)
    chain._actors["engine"] = engine
    register(chain, "engine", Role.PLATFORM | Role.BROKER)
    chain.send("TranchePool", "connect", engine, insurance, actor="operator")
    chain.send("InsuranceFund", "set_engine", engine, actor="operator")
    chain.register_at("SeniorShare", chain.call("TranchePool", "SENIOR"), "TrancheShare")
    chain.register_at("JuniorShare", chain.call("TranchePool", "JUNIOR"), "TrancheShare")
