"""Where the gas of bench/gas.py's operations goes: SLOAD / SSTORE / LOG / call counts and
their cost per contract, from anvil's step traces (`--steps-tracing`, `debug_traceTransaction`).

    .venv/bin/python bench/gas_profile.py [--slots] [LABEL-SUBSTRING ...]

Runs the same scenario as bench/gas.py and prints, for each labelled transaction (or those
whose label contains one of the arguments), its `gasUsed` and per contract the count and the
summed cost of each storage and log opcode, and the number of calls to each contract (each
call's first to a contract in the transaction pays 2,600 for the cold account), then the call
tree with the gas each frame used (anvil's `callTracer`; a frame's figure includes its
sub-calls, not the caller's 2,600 for a cold account). With `--slots`, every SLOAD and SSTORE
in order: the contract, the slot key's last 12 hex digits, its cost (2,100 / 20,000 / 2,900:
a cold read, a new slot, a cold rewrite) and the program counter.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "financing"))
sys.path.insert(0, str(ROOT / "tests"))

import gas as G  # noqa: E402
from anvil_node import anvil  # noqa: E402
from fin_anvil import ACTORS, RpcPlatform, deploy_rpc_platform  # noqa: E402

COUNTED = ("SLOAD", "SSTORE", "TLOAD", "TSTORE", "LOG0", "LOG1", "LOG2", "LOG3", "LOG4")
CALLS = ("CALL", "STATICCALL", "DELEGATECALL")


def profile(p: RpcPlatform, label: str, tx_hash: Any, slots: bool = False) -> None:
    names = {c.address.lower(): n for n, c in p.c.items()}
    opts = {"disableMemory": True, "disableStorage": True}
    reply = p.w3.provider.make_request("debug_traceTransaction", [tx_hash.to_0x_hex(), opts])
    trace = reply["result"]["structLogs"]
    to = str(p.w3.eth.get_transaction(tx_hash)["to"]).lower()
    frames = [names.get(to, to)]
    count: Counter[tuple[str, str]] = Counter()
    cost: Counter[tuple[str, str]] = Counter()
    accesses: list[str] = []
    for i, step in enumerate(trace):
        depth, op = step["depth"], step["op"]
        del frames[depth:]
        who = frames[depth - 1]
        if op in CALLS:
            target = "0x" + step["stack"][-2][2:].rjust(40, "0")[-40:]
            name = names.get(target.lower(), target[:10])
            key = (who, f"{op} -> {name}")
            nxt = trace[i + 1] if i + 1 < len(trace) else None
            if nxt is not None and nxt["depth"] == depth + 1:
                frames.append(name)
            count[key] += 1
        elif op in COUNTED:
            count[(who, op)] += 1
            cost[(who, op)] += step["gasCost"]
            if slots and op in ("SLOAD", "SSTORE"):
                key = step["stack"][-1][-12:]
                accesses.append(
                    f"      {who:<18} {op:<6} {key:>14} {step['gasCost']:>6,}  pc={step['pc']}"
                )
    used = p.w3.eth.get_transaction_receipt(tx_hash)["gasUsed"]
    print(f"{label}: gasUsed {used:,}")
    for (who, op), n in sorted(count.items()):
        print(f"    {who:<18} {op:<32} x{n:<4} {cost[(who, op)]:>9,}")
    if accesses:
        print("  storage accesses in order:")
        print("\n".join(accesses))
    calls = p.w3.provider.make_request(
        "debug_traceTransaction", [tx_hash.to_0x_hex(), {"tracer": "callTracer"}]
    )
    print("  calls (gas used by each frame, its sub-calls included):")
    _tree(names, _selectors(p), calls["result"], 2)


def _selectors(p: RpcPlatform) -> dict[tuple[str, str], str]:
    out = {}
    for name, c in p.c.items():
        for f in c.abi:
            if f.get("type") == "function":
                out[(name, c.encode_abi(f["name"], _zeros(f["inputs"]))[:10])] = f["name"]
    return out


def _zeros(inputs: list[dict[str, Any]]) -> list[Any]:
    def zero(i: dict[str, Any]) -> Any:
        t = i["type"]
        if t.endswith("]"):
            return (
                []
                if t.endswith("[]")
                else [zero({**i, "type": t[: t.rindex("[")]})] * int(t[t.rindex("[") + 1 : -1])
            )
        if t == "tuple":
            return tuple(zero(c) for c in i["components"])
        if t == "address":
            return "0x" + "00" * 20
        if t == "bool":
            return False
        if t.startswith("bytes"):
            return b"" if t == "bytes" else b"\0" * int(t[5:])
        return "" if t == "string" else 0

    return [zero(i) for i in inputs]


def _tree(names: dict[str, str], sel: dict[tuple[str, str], str], node: Any, depth: int) -> None:
    to = names.get(node["to"].lower(), node["to"][:10])
    fn = sel.get((to, node.get("input", "0x")[:10]), node.get("input", "0x")[:10])
    print(f"{'  ' * depth}{to}.{fn} {int(node['gasUsed'], 16):,}")
    for sub in node.get("calls", []):
        _tree(names, sel, sub, depth + 1)


def main(args: list[str]) -> int:
    slots = "--slots" in args
    wanted = [a for a in args if a != "--slots"]
    hashes: dict[str, Any] = {}
    send = RpcPlatform.send

    def recording_send(self: RpcPlatform, contract: str, fn: str, *args: Any, by: str,
                       label: str | None = None) -> Any:  # fmt: skip
        receipt = send(self, contract, fn, *args, by=by, label=label)
        if label:
            hashes[label] = receipt["transactionHash"]
        return receipt

    RpcPlatform.send = recording_send  # type: ignore[method-assign]
    anvil_bin = os.environ.get(
        "CROWDLEV_ANVIL_BIN", str(ROOT / "tools" / "node_modules" / ".bin" / "anvil")
    )
    with anvil(anvil_bin, "--accounts", str(len(ACTORS)), "--steps-tracing") as url:
        p = deploy_rpc_platform(url)
        G.run(p)
        for label, tx_hash in hashes.items():
            if not wanted or any(w in label for w in wanted):
                profile(p, label, tx_hash, slots)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
