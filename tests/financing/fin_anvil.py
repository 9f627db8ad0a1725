"""The financing system on a real JSON-RPC node (anvil): deployment through web3 with the
compiled artifacts, actors as anvil's unlocked dev accounts, and gas from real receipts
(intrinsic cost and cold storage access included). Used by test_deploy_anvil.py and
bench/gas.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from anvil_node import anvil as anvil_node
from fin_system import CMB, DAY_S, MAIN, PAB, PINGAN, compiled, limit_down, limit_up
from vyper.compiler.output import build_abi_output
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from crowdleverage.chain.deploy import create_address
from crowdleverage.chain.roles import Role
from crowdleverage.domain import params as P

ACTORS = (
    "admin", "compliance", "operator", "custodian", "broker", "keeper", "reporter1",
    "reporter2", "fee", "senior", "junior", "borrower", "borrower2", "outsider",
)  # fmt: skip


@contextlib.contextmanager
def anvil(anvil_bin: str) -> Iterator[str]:
    """An anvil node with one unlocked dev account per actor."""
    with anvil_node(anvil_bin, "--accounts", str(len(ACTORS))) as url:
        yield url


@dataclass
class RpcPlatform:
    w3: Web3
    actor: dict[str, str]
    c: dict[str, Contract] = field(default_factory=dict)
    gas: dict[str, int] = field(default_factory=dict)
    refs: int = 0

    def send(self, contract: str, fn: str, *args: Any, by: str, label: str | None = None) -> Any:
        call = getattr(self.c[contract].functions, fn)(*args)
        tx = call.transact({"from": self.actor[by], "gas": 3_000_000})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        if receipt.status != 1:
            try:  # the reason: the same call again, as a call at the block before
                call.call({"from": self.actor[by]}, block_identifier=receipt.blockNumber - 1)
            except Exception as err:  # any error decoding it carries the reason too
                raise RuntimeError(f"{contract}.{fn} reverted: {err}") from err
            raise RuntimeError(f"{contract}.{fn} reverted")
        if label:
            self.gas[label] = int(receipt.gasUsed)
        return receipt

    def call(self, contract: str, fn: str, *args: Any) -> Any:
        return getattr(self.c[contract].functions, fn)(*args).call()

    def order_ids(self, receipt: Any) -> list[int]:
        """The order ids a transaction placed (its `OrderRequested` / `LiquidationOrder`
        events: ids are an account's reused slots, not a counter)."""
        book = self.c["OrderBook"].events
        return [
            int(e["args"]["order_id"])
            for ev in (book.OrderRequested(), book.LiquidationOrder())
            for e in ev.process_receipt(receipt, errors=DISCARD)
        ]

    def ref(self) -> bytes:
        self.refs += 1
        return self.refs.to_bytes(32, "big")

    def deploy(self, name: str, *args: Any, blueprint: bool = False) -> str:
        data = compiled(name).compiler_data
        abi = build_abi_output(data)
        code = data.blueprint_bytecode if blueprint else data.bytecode
        factory = self.w3.eth.contract(abi=abi, bytecode=code)
        tx = (
            self.w3.eth.send_transaction({"from": self.actor["admin"], "data": code})
            if blueprint
            else factory.constructor(*args).transact({"from": self.actor["admin"]})
        )
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        if receipt.status != 1 or not receipt.contractAddress:
            raise RuntimeError(f"deploying {name} failed")
        addr = receipt.contractAddress
        if not blueprint:
            self.c[name] = self.w3.eth.contract(address=addr, abi=abi)
        return str(addr)

    def code_size(self, name: str) -> int:
        return len(self.w3.eth.get_code(self.c[name].address))

    def time_travel(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.w3.provider.make_request("evm_mine", [])

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


# the one-time listing of the securities at ShareCertificates (bench/gas.py prints its gas)
LISTING = "ShareCertificates.list_securities (once per security, at listing)"


def deploy_rpc_platform(url: str) -> RpcPlatform:
    w3 = Web3(Web3.HTTPProvider(url))
    accounts = w3.eth.accounts
    p = RpcPlatform(w3, dict(zip(ACTORS, accounts, strict=False)))
    a = p.actor
    reg = p.deploy("IdentityRegistry")
    oracle = p.deploy("PriceOracle", reg, 10 * DAY_S, 2)
    cash = p.deploy("CashToken", reg)
    shares = p.deploy("ShareCertificates", reg, oracle)
    blueprint = p.deploy("TrancheShare", blueprint=True)
    # the pool and the engine are given the engine's and the order book's addresses (CREATE
    # addresses of admin's next nonces: pool, insurance, params, engine, liquidator, book)
    nonce = int(w3.eth.get_transaction_count(a["admin"]))
    will = [create_address(a["admin"], nonce + i) for i in range(6)]
    pool = p.deploy("TranchePool", cash, reg, blueprint, a["fee"], will[3])
    ins = p.deploy("InsuranceFund", cash, reg, pool)
    params = p.deploy("RiskParams", reg)
    engine = p.deploy("MarginEngine", cash, reg, oracle, pool, ins, params, will[5])
    liquidator = p.deploy("Liquidator", engine, reg, oracle)
    orderbook = p.deploy("OrderBook", engine, reg, oracle, shares)
    assert [pool, ins, params, engine, liquidator, orderbook] == will
    expires = p.now() + 5 * 365 * DAY_S
    p.send("IdentityRegistry", "register", a["compliance"], int(Role.COMPLIANCE), 5, b"CN",
           expires, by="admin")  # fmt: skip
    roles = {
        "operator": Role.OPERATOR, "custodian": Role.CUSTODIAN, "broker": Role.BROKER,
        "keeper": Role.KEEPER, "reporter1": Role.REPORTER, "reporter2": Role.REPORTER,
        "fee": Role.INVESTOR, "senior": Role.INVESTOR, "junior": Role.INVESTOR,
        "borrower": Role.BORROWER, "borrower2": Role.BORROWER,
    }  # fmt: skip
    targets = {**{a[k]: v for k, v in roles.items()}, pool: Role.PLATFORM, ins: Role.PLATFORM}
    targets[engine] = Role.PLATFORM | Role.BROKER
    targets[orderbook] = Role.BROKER
    for who, role in targets.items():
        p.send("IdentityRegistry", "register", who, int(role), 4, b"CN", expires, by="compliance")
    for who in (pool, ins, engine):  # their side of a cash transfer skips the registry call
        p.send("CashToken", "set_platform", who, True, by="compliance")
    p.send("ShareCertificates", "set_custody", engine, by="operator")  # one slot a fill
    p.send("PriceOracle", "set_day_sink", shares, by="operator")  # a fill's day
    p.send("TranchePool", "connect", engine, ins, by="operator")
    p.send("InsuranceFund", "set_engine", engine, by="operator")
    p.send("MarginEngine", "connect", liquidator, orderbook, by="operator")
    for t in P.TIERS.values():
        p.send("RiskParams", "set_tier", t.tier, P.engine_tier(t), by="operator")
    p.send("RiskParams", "set_limits", P.engine_limits(), by="operator")
    p.send("RiskParams", "connect", engine, by="operator")
    for code in MAIN:
        p.send("RiskParams", "set_security", code, 10_000, False, 0, by="operator")
    # listed for custody too: the certificates' slot of each exists before its first buy
    p.send("ShareCertificates", "list_securities", list(MAIN), by="operator", label=LISTING)
    p.send("PriceOracle", "open_day", 1, by="operator")
    for code in MAIN:
        p.send("PriceOracle", "set_day_params", code, 1_000, limit_down(1_000), limit_up(1_000),
               False, by="operator")  # fmt: skip
        for r in ("reporter1", "reporter2"):
            p.send("PriceOracle", "report", code, 1_000, by=r)
    return p


def fund(p: RpcPlatform, who: str, amount_fen: int, spender: str) -> None:
    p.send("CashToken", "mint", p.actor[who], amount_fen, p.ref(), by="custodian")
    p.send("CashToken", "approve", p.c[spender].address, amount_fen, by=who)


__all__ = [
    "CMB", "LISTING", "MAIN", "PAB", "PINGAN", "RpcPlatform", "anvil", "deploy_rpc_platform",
    "fund",
]  # fmt: skip
