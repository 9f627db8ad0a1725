"""Setting up a platform on a chain, as its actors would: investors fund the tranches, the
operator lists securities, compliance opens borrowers' margin accounts, borrowers deposit
margin and reserve, the custodian funds the broker's settlement account.

Every cash mint carries a unique custody reference (`dep-<n>`), as the custody bridge does.
Used by the replay and by the broker/keeper tests; `open_financing_chain` gives them an
embedded chain with the whole financing system deployed."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from crowdleverage.chain.codes import code_to_chain, ref_to_bytes32
from crowdleverage.chain.deploy import (
    FINANCING_ACTORS,
    DeployOptions,
    deploy_financing,
    deploy_system,
    manifest_path,
)
from crowdleverage.chain.embedded import DEFAULT_GENESIS_TIME_S, EmbeddedChain
from crowdleverage.chain.identity import register_identity
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.margin import ENGINE
from crowdleverage.chain.params import PARAMS
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.roles import Role
from crowdleverage.chain.structs import read_account
from crowdleverage.domain.params import HAIRCUT_BPS
from crowdleverage.domain.security import Security

DEV_SEED = 20160104  # development keys of the simulated actors
YEAR_S = 365 * 86_400
CN = b"CN"
SHARES = "ShareCertificates"
MAX_LIST = 64  # codes per `ShareCertificates.list_securities`
# A report stays fresh for the rest of the session (the replay reports every 30 minutes).
SESSION_ORACLE = DeployOptions(oracle_max_age_s=6 * 3_600, oracle_quorum=2)


def open_financing_chain(
    data_dir: Path,
    actors: Iterable[str],
    *,
    genesis_time_s: int = DEFAULT_GENESIS_TIME_S,
    seed: int = DEV_SEED,
    on_demand: bool = False,
    snapshot_every: int | None = 500,
) -> EmbeddedChain:
    """The embedded chain in `data_dir` with the financing system deployed (on first open;
    later opens reload it from disk). `actors` are the investors and borrowers that will
    send transactions (development keys from `seed`; with `on_demand` also every `user-<id>`
    actor that appears later). `snapshot_every`: transactions between state snapshots
    (None: none but an explicit one; the journal alone restores the state)."""
    keys = ActorKeys.dev(seed, dict.fromkeys([*FINANCING_ACTORS, *actors]), on_demand=on_demand)
    chain = EmbeddedChain(
        data_dir, keys, genesis_time_s=genesis_time_s, snapshot_every=snapshot_every
    )
    if not manifest_path(data_dir).exists():
        deploy_system(chain, data_dir, SESSION_ORACLE)
    if "MarginEngine" not in chain.deployed():
        deploy_financing(chain, data_dir)
    return chain


def register(chain: ChainPort, actor: str, roles: Role, suitability: int = 4) -> None:
    register_identity(
        chain, chain.address_of(actor), roles=roles, suitability=suitability,
        expiry_s=chain.block_time() + 5 * YEAR_S, jurisdiction=CN,
    )  # fmt: skip


def list_securities(chain: ChainPort, codes: list[str], st: Collection[str] = ()) -> None:
    """Operator: board haircuts (DESIGN.md §7) at `RiskParams`; the codes in `st` are ST / *ST
    (from the bar data's `st` column: valued at the ST haircut, never financed); all are
    long listed. The codes not yet listed for custody at `ShareCertificates` are listed there
    too (`list_securities`: each security's certificate slot is made once, here, instead of
    at the platform's first buy of it)."""
    for code in codes:
        haircut = HAIRCUT_BPS[Security.parse(code).board]
        chain.send(PARAMS, "set_security", code_to_chain(code), haircut, code in st, 0,
                   actor="operator")  # fmt: skip
    new = [c for c in map(code_to_chain, codes) if not chain.call(SHARES, "listed", c)]
    for i in range(0, len(new), MAX_LIST):
        chain.send(SHARES, "list_securities", new[i : i + MAX_LIST], actor="operator")


@dataclass
class World:
    chain: ChainPort  # with the financing contracts (`open_financing_chain`)
    _refs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def ref(self, prefix: str = "dep") -> bytes:
        return ref_to_bytes32(f"{prefix}-{next(self._refs)}")

    def mint(self, actor: str, amount_fen: int) -> None:
        self.chain.send(
            "CashToken", "mint", self.chain.address_of(actor), amount_fen, self.ref(),
            actor="custodian",
        )  # fmt: skip

    def list_securities(self, codes: list[str], st: Collection[str] = ()) -> None:
        list_securities(self.chain, codes, st)

    def invest(self, investor: str, senior: bool, amount_fen: int) -> None:
        register(self.chain, investor, Role.INVESTOR)
        self.mint(investor, amount_fen)
        pool = self.chain.address_of("pool")
        self.chain.send("CashToken", "approve", pool, amount_fen, actor=investor)
        self.chain.send("TranchePool", "subscribe", senior, amount_fen, actor=investor)

    def close_epoch(self) -> None:
        started = int(self.chain.call("TranchePool", "epoch_started_at"))
        wait = started + int(self.chain.call("TranchePool", "epoch_s")) - self.chain.block_time()
        if wait > 0:
            self.chain.advance_time(wait)
        self.chain.send("TranchePool", "close_epoch", actor="keeper")

    def open_borrower(self, name: str, tier: int, margin_fen: int, reserve_fen: int = 0) -> str:
        register(self.chain, name, Role.BORROWER)
        who = self.chain.address_of(name)
        self.chain.send(ENGINE, "open_account", who, tier, actor="compliance")
        total = margin_fen + reserve_fen
        if total:
            self.mint(name, total)
            self.chain.send("CashToken", "approve", self.chain.address_of("engine"), total,
                            actor=name)  # fmt: skip
        if margin_fen:
            self.chain.send(ENGINE, "deposit", margin_fen, False, actor=name)
        if reserve_fen:
            self.chain.send(ENGINE, "deposit", reserve_fen, True, actor=name)
        return who

    def fund_broker(self, amount_fen: int) -> None:
        """The broker's settlement float at the custodian (pays sell proceeds to the engine
        before the exchange's clearing pays the broker)."""
        self.mint("broker", amount_fen)

    def account(self, who: str) -> dict[str, int]:
        a = read_account(self.chain, who)
        assets, debt, ratio = self.chain.call(ENGINE, "account_state", who)
        return {
            "tier": a.tier,
            "cash_fen": a.cash_fen,
            "reserve_fen": a.reserve_fen,
            "pending_fen": a.pending_fen,
            "principal_fen": a.principal_fen,
            "locked": int(a.locked),
            "open_liq": a.open_liq,
            "assets_fen": int(assets),
            "debt_fen": int(debt),
            "ratio_bps": int(ratio),
        }
