"""Chain gateway benchmark: transactions per second for CashToken mint and transfer on the
embedded chain and on anvil, and the gas of every operation on both.

Baselines measured in the same run: the raw titanoboa call of the same function (no journal,
no event store, no ABI codec) for the embedded gateway, and the embedded gateway for anvil.

Gas: the embedded figure is what a node would charge — intrinsic gas (21000 + calldata
[+ creation]) + execution − refund (≤ 1/5), with py-evm's warm-access sets reset before every
transaction (titanoboa otherwise keeps them warm between calls and under-reports SLOAD/CALL
costs). The anvil figure is the receipt's gasUsed. Both are printed so they can be compared.

    .venv/bin/python bench/chain.py [--n 300]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from crowdleverage.chain.codes import code_to_chain, ref_to_bytes32  # noqa: E402
from crowdleverage.chain.deploy import deploy_system  # noqa: E402
from crowdleverage.chain.embedded import EmbeddedChain  # noqa: E402
from crowdleverage.chain.keys import ActorKeys  # noqa: E402
from crowdleverage.chain.port import ChainPort  # noqa: E402
from crowdleverage.chain.rpc import RpcChain  # noqa: E402
from crowdleverage.chain.scenario import SCENARIO_ACTORS, open_day, register_participants  # noqa: E402

PAB = code_to_chain("600000")
CMB = code_to_chain("600036")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_anvil() -> tuple[subprocess.Popen[bytes], str]:
    binary = os.environ.get("CROWDLEV_ANVIL_BIN", str(ROOT / "tools/node_modules/.bin/anvil"))
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--host", "127.0.0.1", "--port", str(port), "--silent", "--chain-id", "31337"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("anvil did not start")


def tps(n: int, op: Callable[[int], object]) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        op(i)
    return n / (time.perf_counter() - t0)


def throughput(chain: ChainPort, n: int, tag: str) -> tuple[float, float]:
    investor, pool = chain.address_of("investor"), chain.address_of("pool")

    def mint_one(i: int) -> object:
        ref = ref_to_bytes32(f"{tag}-m-{i}")
        return chain.send("CashToken", "mint", investor, 100 + i, ref, actor="custodian")

    mint = tps(n, mint_one)
    transfer = tps(n, lambda i: chain.send("CashToken", "transfer", pool, 1, actor="investor"))
    return mint, transfer


def raw_boa_baseline(chain: EmbeddedChain, n: int) -> tuple[float, float]:
    """The same calls straight through titanoboa's contract objects on the chain's EVM."""
    import boa

    from crowdleverage.chain.artifacts import deployer

    boa.set_env(chain._env)
    cash = deployer("CashToken").at(chain.contract_address("CashToken"))
    investor, pool = chain.address_of("investor"), chain.address_of("pool")
    custodian = chain.address_of("custodian")
    mint = tps(n, lambda i: cash.mint(investor, 100 + i, ref_to_bytes32(f"raw-{i}"),
                                      sender=custodian))  # fmt: skip
    transfer = tps(n, lambda i: cash.transfer(pool, 1, sender=investor))
    return mint, transfer


def gas_table(chain: ChainPort) -> dict[str, int]:
    """One transaction per operation in a realistic order; gas as the adapter reports it."""
    inv, bor, pool = (chain.address_of(a) for a in ("investor", "borrower", "pool"))
    out: dict[str, int] = {}

    def g(label: str, contract: str, fn: str, *args: object, actor: str) -> None:
        out[label] = chain.send(contract, fn, *args, actor=actor).gas_used

    expires = chain.block_time() + 10**7
    new = chain.address_of("keeper")
    g("IdentityRegistry.register (update)", "IdentityRegistry", "register", new, 64, 3, b"CN",
      expires, actor="compliance")  # fmt: skip
    g("IdentityRegistry.set_frozen", "IdentityRegistry", "set_frozen", new, True,
      actor="compliance")  # fmt: skip
    g("CashToken.mint (new holder)", "CashToken", "mint", bor, 500_000, ref_to_bytes32("g1"),
      actor="custodian")  # fmt: skip
    g("CashToken.mint (existing)", "CashToken", "mint", bor, 500_000, ref_to_bytes32("g2"),
      actor="custodian")  # fmt: skip
    g("CashToken.transfer", "CashToken", "transfer", pool, 1_000, actor="borrower")
    g("CashToken.approve", "CashToken", "approve", pool, 10_000, actor="borrower")
    g("CashToken.transferFrom", "CashToken", "transferFrom", bor, pool, 1_000, actor="pool")
    g("CashToken.burn", "CashToken", "burn", bor, 1_000, ref_to_bytes32("g3"), actor="custodian")
    g("PriceOracle.open_day", "PriceOracle", "open_day", 1_000, actor="operator")
    g("PriceOracle.set_day_params", "PriceOracle", "set_day_params", PAB, 1000, 900, 1100, False,
      actor="operator")  # fmt: skip
    batch = [(CMB + i, 2000, 1800, 2200, False) for i in range(10)]
    g("PriceOracle.set_day_params_many(10)", "PriceOracle", "set_day_params_many", batch,
      actor="operator")  # fmt: skip
    g("PriceOracle.report (first)", "PriceOracle", "report", PAB, 1001, actor="reporter1")
    g("PriceOracle.report (update)", "PriceOracle", "report", PAB, 1002, actor="reporter1")
    g("PriceOracle.report_many(10)", "PriceOracle", "report_many", [CMB + i for i in range(10)],
      [2001] * 10, actor="reporter2")  # fmt: skip
    g("ShareCertificates.mint", "ShareCertificates", "mint", bor, PAB, 1_000,
      ref_to_bytes32("f1"), actor="broker")  # fmt: skip
    g("ShareCertificates.forced_transfer (locked)", "ShareCertificates", "forced_transfer", bor,
      pool, PAB, 100, actor="operator")  # fmt: skip
    g("PriceOracle.open_day (next)", "PriceOracle", "open_day", 1_001, actor="operator")
    g("ShareCertificates.transfer", "ShareCertificates", "transfer", pool, PAB, 100,
      actor="borrower")  # fmt: skip
    g("ShareCertificates.burn", "ShareCertificates", "burn", bor, PAB, 100, ref_to_bytes32("f2"),
      actor="broker")  # fmt: skip
    del inv
    return out


def setup(chain: ChainPort, data_dir: Path) -> None:
    deploy_system(chain, data_dir)
    register_participants(chain)
    chain.send("CashToken", "mint", chain.address_of("investor"), 10**12, ref_to_bytes32("seed"),
               actor="custodian")  # fmt: skip
    open_day(chain, 1, 1_000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="transactions per measurement")
    n = ap.parse_args().n
    keys = ActorKeys.dev(1, SCENARIO_ACTORS)
    tmp = Path(tempfile.mkdtemp(prefix="bench-chain-"))

    emb = EmbeddedChain(tmp / "emb", keys, snapshot_every=10**9)
    setup(emb, tmp / "emb")
    emb_gas = gas_table(emb)
    emb_mint, emb_transfer = throughput(emb, n, "e")
    t0 = time.perf_counter()
    emb.snapshot()
    snap_s = time.perf_counter() - t0
    emb.close()
    t0 = time.perf_counter()
    reopened = EmbeddedChain(tmp / "emb", keys, read_only=True)
    reopen_s = time.perf_counter() - t0
    n_txs = len(reopened.transactions())
    root = reopened.state_root()
    reopened.close()
    (tmp / "emb" / "chain" / "state.snapshot").unlink()
    t0 = time.perf_counter()
    replayed = EmbeddedChain(tmp / "emb", keys, read_only=True)  # whole journal from genesis
    replay_s = time.perf_counter() - t0
    assert replayed.state_root() == root, "replay diverged"
    replayed.close()

    # the baseline mutates EVM state behind the gateway's back: give it its own chain
    scratch = EmbeddedChain(tmp / "raw", keys, snapshot_every=10**9)
    setup(scratch, tmp / "raw")
    raw_mint, raw_transfer = raw_boa_baseline(scratch, n)
    scratch.close()

    proc, url = start_anvil()
    try:
        rpc = RpcChain(url, keys, tmp / "rpc")
        rpc.fund(SCENARIO_ACTORS, 10**22)
        setup(rpc, tmp / "rpc")
        rpc_gas = gas_table(rpc)
        rpc_mint, rpc_transfer = throughput(rpc, n, "r")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    print(f"== chain throughput (n={n} per row; 1 tx = 1 block)")
    print(f"{'operation':<22}{'raw boa':>12}{'embedded':>12}{'anvil':>12}"
          f"{'emb/raw':>10}{'anvil/emb':>11}")  # fmt: skip
    rows = (
        ("CashToken.mint", raw_mint, emb_mint, rpc_mint),
        ("CashToken.transfer", raw_transfer, emb_transfer, rpc_transfer),
    )
    for label, raw, e, r in rows:
        print(f"{label:<22}{raw:>10.0f}/s{e:>10.0f}/s{r:>10.0f}/s{e / raw:>10.2f}{r / e:>11.2f}")
    print(f"embedded snapshot write {snap_s * 1000:.0f} ms; reopen (load snapshot, replay 0 txs)"
          f" {reopen_s * 1000:.0f} ms")  # fmt: skip
    print(f"embedded reopen without snapshot: replayed {n_txs} txs in {replay_s:.2f} s "
          f"({n_txs / replay_s:.0f} tx/s, same state root)")  # fmt: skip
    print()
    print("== gas per operation (embedded: intrinsic + execution − refund, cold access per tx;"
          " anvil: receipt gasUsed)")  # fmt: skip
    print(f"{'operation':<44}{'embedded':>10}{'anvil':>10}{'diff':>8}")
    for label, gas in emb_gas.items():
        r = rpc_gas[label]
        print(f"{label:<44}{gas:>10}{r:>10}{gas - r:>8}")


if __name__ == "__main__":
    main()
