"""`DevNodeChain`: `RpcChain` on a local development node (anvil), lean enough for replays.

The same contracts, calls, ABI codec, revert decoding and node rules as `RpcChain` with
`controlled_clock=True` (each transaction one second after the previous block, estimated
first: a revert is decoded and nothing is mined), with what a dev node allows and a remote
node does not:

- transactions are sent unsigned (`eth_sendTransaction` from the actor's address, which the
  node impersonates: `anvil_autoImpersonateAccount`); the addresses are the same development
  keys' addresses, so the deployment and every state are the same as with signed sends;
- one keep-alive HTTP connection and plain JSON, not web3.py's per-request middleware;
- the latest block's number and time are tracked here (this process is the node's only
  writer), not asked for before every transaction.

DEV ONLY: a node that impersonates any address must never hold anything of value."""

from __future__ import annotations

import http.client
import itertools
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from eth_utils import to_checksum_address

from crowdleverage.chain.abi import decode_revert
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.port import EventLog, TxResult
from crowdleverage.chain.rpc import SEQ_PER_BLOCK, RpcChain
from crowdleverage.domain.errors import ContractRevert, InvalidInput, ServiceUnavailable


class NodeError(Exception):
    """A JSON-RPC error answer: its message and revert data (if any)."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        super().__init__(f"{method}: {error.get('message')}")
        self.message = str(error.get("message", ""))
        data = error.get("data")
        if isinstance(data, dict):
            data = data.get("data")
        self.data = bytes.fromhex(data[2:]) if isinstance(data, str) and data[:2] == "0x" else None


class DevNodeChain(RpcChain):
    """ChainPort on a local dev node (see the module doc)."""

    def __init__(
        self, url: str, keys: ActorKeys, data_dir: Path | None = None, *, timeout_s: float = 30.0
    ) -> None:
        super().__init__(url, keys, data_dir, controlled_clock=True, timeout_s=timeout_s)
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._path = parts.path or "/"
        self._conn: http.client.HTTPConnection | None = None
        self._ids = itertools.count(1)
        self._post("anvil_autoImpersonateAccount", [True])
        self._sync_head()

    # ------------------------------------------------------------ transport
    def _post(self, method: str, params: list[Any]) -> Any:
        body = json.dumps(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        ).encode()
        for attempt in (0, 1):  # a keep-alive connection the node closed: reconnect once
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout_s
                )
            try:
                self._conn.request("POST", self._path, body, {"Content-Type": "application/json"})
                raw = self._conn.getresponse().read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self._conn.close()
                self._conn = None
                if attempt:
                    raise ServiceUnavailable(f"{method} failed on {self.url}: {exc}") from exc
        resp = json.loads(raw)
        if "error" in resp:
            raise NodeError(method, resp["error"])
        return resp.get("result")

    def _rpc(self, method: str, params: list[Any]) -> Any:
        try:
            return self._post(method, params)
        except NodeError as err:
            raise ServiceUnavailable(f"{method} failed on {self.url}: {err.message}") from err

    def _revert(self, err: NodeError, contract: str, fn: str) -> ContractRevert | None:
        if err.data is not None:
            return ContractRevert(decode_revert(err.data), contract=contract, fn=fn)
        if "revert" in err.message:
            reason = err.message.split("execution reverted:", 1)[-1].strip() or "reverted"
            return ContractRevert(reason, contract=contract, fn=fn)
        return None

    def _sync_head(self) -> None:
        head = self._post("eth_getBlockByNumber", ["latest", False])
        self._block, self._ts = int(head["number"], 16), int(head["timestamp"], 16)
        self._gas_limit = int(head["gasLimit"], 16)

    # ------------------------------------------------------------ transactions
    def _transact(self, actor: str, to: str | None, data: bytes, contract: str, fn: str) -> Any:
        """Run the transaction as a call in the block it will be mined in (the next second,
        the next number): a revert is decoded and nothing is mined, as `RpcChain`'s estimate
        does, in one execution instead of the estimate's search; then send it with the
        block's gas limit and take the receipt from the same answer."""
        sender = self.address_of(actor)
        tx: dict[str, Any] = {"from": sender, "data": "0x" + data.hex()}
        if to is not None:
            tx["to"] = to
        ts = self._ts + 1
        try:
            self._post(
                "eth_call", [tx, "latest", {}, {"time": hex(ts), "number": hex(self._block + 1)}]
            )
            self._post("evm_setNextBlockTimestamp", [ts])
            tx["gas"] = hex(self._gas_limit)
            receipt = dict(self._post("eth_sendTransactionSync", [tx]))
        except NodeError as err:
            revert = self._revert(err, contract, fn)
            if revert is not None:
                raise revert from err
            raise ServiceUnavailable(f"{contract}.{fn} failed on {self.url}: {err}") from err
        self._block, self._ts = int(receipt["blockNumber"], 16), ts
        if int(receipt["status"], 16) != 1:
            raise ContractRevert("reverted", contract=contract, fn=fn)
        return receipt

    def send(self, contract: str, fn: str, *args: Any, actor: str) -> TxResult:
        address, abi = self._contract(contract)
        receipt = self._transact(actor, address, abi.function(fn).encode(args), contract, fn)
        events = (self._decode(log) for log in receipt["logs"])
        return TxResult(
            tx_hash=str(receipt["transactionHash"]),
            block=int(receipt["blockNumber"], 16),
            gas_used=int(receipt["gasUsed"], 16),
            events=tuple(e for e in events if e is not None),
        )

    # ------------------------------------------------------------ reads
    def call(self, contract: str, fn: str, *args: Any, actor: str | None = None) -> Any:
        address, abi = self._contract(contract)
        func = abi.function(fn)
        tx: dict[str, Any] = {"to": address, "data": "0x" + func.encode(args).hex()}
        if actor is not None:
            tx["from"] = self.address_of(actor)
        try:
            out = self._post("eth_call", [tx, "latest"])
        except NodeError as err:
            revert = self._revert(err, contract, fn)
            if revert is not None:
                raise revert from err
            raise ServiceUnavailable(f"{contract}.{fn} failed on {self.url}: {err}") from err
        return func.decode(bytes.fromhex(out[2:]))

    def _decode(self, log: Any) -> EventLog | None:
        address = to_checksum_address(log["address"])
        name = self._names_by_address.get(address.lower())
        if name is None or not log["topics"]:
            return None
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        ev = self._contracts[name][1].events.get(topics[0])
        if ev is None:
            return None
        block = int(log["blockNumber"], 16)
        return EventLog(
            seq=block * SEQ_PER_BLOCK + int(log["logIndex"], 16),
            block=block,
            tx_hash=str(log["transactionHash"]),
            contract=name,
            address=address,
            event=ev.name,
            args=ev.decode(topics, bytes.fromhex(log["data"][2:])),
        )

    def _get_logs(self, flt: dict[str, Any]) -> list[Any]:
        """`eth_getLogs` as plain JSON (hex block numbers); `RpcChain.events` windows it."""
        hexed = {**flt, "fromBlock": hex(flt["fromBlock"]), "toBlock": hex(flt["toBlock"])}
        return list(self._post("eth_getLogs", [hexed]))

    def block_number(self) -> int:
        return self._block

    def block_time(self) -> int:
        return self._ts

    def set_block_time(self, timestamp_s: int) -> None:
        if timestamp_s <= self._ts:
            raise InvalidInput(f"block time must move forward ({timestamp_s} <= {self._ts})")
        self._rpc("evm_setNextBlockTimestamp", [timestamp_s])
        self._rpc("evm_mine", [])
        self._block, self._ts = self._block + 1, timestamp_s

    def close(self) -> None:
        super().close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
