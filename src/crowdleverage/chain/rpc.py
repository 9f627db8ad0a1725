"""`RpcChain`: the ChainPort on any EVM JSON-RPC node through web3.py.

Transactions are signed locally with the configured actor keys (`SecretStr`, never logged) and
sent raw, so the node needs no unlocked accounts. Before sending, the transaction is estimated:
a revert there is decoded into the same `ContractRevert(reason)` the embedded adapter raises, and
nothing is sent. Event logs come from the node (`eth_getLogs`) and are decoded by the shared
ABI codec; `seq` is `block * 100_000 + log_index`.

On dev nodes (anvil) `controlled_clock=True` makes blocks follow the embedded chain's rules:
each transaction one second after the previous block, `set_block_time` mines an empty block at
the new time. Production nodes keep their own clock (`controlled_clock=False`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import to_checksum_address

from crowdleverage.chain.abi import ContractAbi, decode_revert
from crowdleverage.chain.artifacts import artifact
from crowdleverage.chain.deploy import check_manifest, manifest_path, read_manifest
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.port import EventLog, TxResult
from crowdleverage.domain.errors import (
    Conflict,
    ContractRevert,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)

SEQ_PER_BLOCK = 100_000
LOG_WINDOW_BLOCKS = 5_000
GAS_HEADROOM_NUM, GAS_HEADROOM_DEN = 12, 10  # send with 20% over the estimate


class RpcChain:
    """ChainPort over JSON-RPC."""

    kind = "rpc"

    def __init__(
        self,
        url: str,
        keys: ActorKeys,
        data_dir: Path | None = None,
        *,
        controlled_clock: bool = False,
        timeout_s: float = 30.0,
    ) -> None:
        from web3 import HTTPProvider, Web3

        self.url = url
        self.keys = keys
        self._controlled = controlled_clock
        self._timeout_s = timeout_s
        self._w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout_s}))
        # We sign locally for the chain id read below and use no ENS names: the validation
        # middleware would ask the node for its chain id before every call (two extra
        # round trips per transaction).
        for name in ("validation", "ens_name_to_address"):
            self._w3.middleware_onion.remove(name)
        try:
            self.chain_id = int(self._w3.eth.chain_id)
        except Exception as exc:  # connection refused, DNS, HTTP errors
            raise ServiceUnavailable(f"JSON-RPC node at {url} unreachable: {exc}") from exc
        self._nonces: dict[str, int] = {}
        self._contracts: dict[str, tuple[str, ContractAbi]] = {}
        self._names_by_address: dict[str, str] = {}
        self._sources: dict[str, str] = {}
        self._aliases: dict[str, str] = {}
        if data_dir is not None and manifest_path(data_dir).exists():
            manifest = read_manifest(data_dir)
            check_manifest(self, manifest)
            for label, entry in manifest["contracts"].items():
                self._register(label, entry["address"], entry.get("source", label))
            # keyless actors (platform contracts acting as parties: pool, engine, …)
            for actor, address in manifest.get("actors", {}).items():
                if actor not in self.keys.keys:
                    self._aliases[actor] = to_checksum_address(address)

    # ------------------------------------------------------------ plumbing
    def _rpc(self, method: str, params: list[Any]) -> Any:
        resp = self._w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in resp:
            raise ServiceUnavailable(f"{method} failed on {self.url}: {resp['error']}")
        return resp.get("result")

    def _register(self, label: str, address: str, source: str) -> None:
        address = to_checksum_address(address)
        self._contracts[label] = (address, ContractAbi(artifact(source).abi))
        self._names_by_address[address.lower()] = label
        self._sources[label] = source

    def _contract(self, name: str) -> tuple[str, ContractAbi]:
        try:
            return self._contracts[name]
        except KeyError:
            raise NotFound(f"contract {name} is not deployed on this chain") from None

    def address_of(self, actor: str) -> str:
        return self._aliases.get(actor) or self.keys.address(actor)

    def alias(self, actor: str, address: str) -> None:
        """Name an address that has no key (a platform contract acting as a party)."""
        if actor in self._aliases or actor in self.keys.keys:
            raise Conflict(f"actor {actor} already has an address")
        self._aliases[actor] = to_checksum_address(address)

    def contract_address(self, name: str) -> str:
        return self._contract(name)[0]

    def nonce(self, actor: str) -> int:
        sender = self.address_of(actor)
        if sender in self._nonces:
            return self._nonces[sender]
        return int(self._w3.eth.get_transaction_count(sender, "pending"))  # type: ignore[arg-type]

    def deployed(self) -> dict[str, str]:
        return {n: a for n, (a, _) in self._contracts.items()}

    def sources(self) -> dict[str, str]:
        """label → contract source name of every known contract (for the manifest)."""
        return dict(self._sources)

    def fund(self, actors: Sequence[str], wei: int) -> None:
        """Dev nodes only (anvil_setBalance): give actors gas money."""
        for actor in actors:
            self._rpc("anvil_setBalance", [self.address_of(actor), hex(wei)])

    # ------------------------------------------------------------ revert decoding
    @staticmethod
    def _revert_data(exc: Exception) -> bytes | None:
        data = getattr(exc, "data", None)
        if isinstance(data, dict):
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        return None

    def _raise_revert(self, exc: Exception, contract: str, fn: str) -> None:
        from web3.exceptions import ContractLogicError, Web3RPCError

        if isinstance(exc, ContractLogicError | Web3RPCError):
            data = self._revert_data(exc)
            if data is not None:
                raise ContractRevert(decode_revert(data), contract=contract, fn=fn) from exc
            msg = str(getattr(exc, "message", None) or exc)
            if "revert" in msg:
                reason = msg.split("execution reverted:", 1)[-1].strip() or "reverted"
                raise ContractRevert(reason, contract=contract, fn=fn) from exc
        raise ServiceUnavailable(f"{contract}.{fn} failed on {self.url}: {exc}") from exc

    # ------------------------------------------------------------ transactions
    def _transact(self, actor: str, to: str | None, data: bytes, contract: str, fn: str) -> Any:
        sender = self.address_of(actor)
        tx: dict[str, Any] = {"from": sender, "data": data, "chainId": self.chain_id}
        if to is not None:
            tx["to"] = to
        if self._controlled:
            latest = self._w3.eth.get_block("latest")
            self._rpc("evm_setNextBlockTimestamp", [int(latest["timestamp"]) + 1])
        try:
            gas = int(self._w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
        except Exception as exc:
            self._raise_revert(exc, contract, fn)
            raise  # pragma: no cover - _raise_revert always raises
        if sender not in self._nonces:
            self._nonces[sender] = int(self._w3.eth.get_transaction_count(sender, "pending"))  # type: ignore[arg-type]
        tx.update(
            gas=gas * GAS_HEADROOM_NUM // GAS_HEADROOM_DEN,
            gasPrice=int(self._w3.eth.gas_price),
            nonce=self._nonces[sender],
        )
        del tx["from"]
        signed = Account.sign_transaction(tx, self.keys.key(actor).get_secret_value())
        try:
            tx_hash = self._w3.eth.send_raw_transaction(signed.raw_transaction)
        except Exception as exc:
            self._nonces.pop(sender, None)  # resync the nonce from the node next time
            self._raise_revert(exc, contract, fn)
        self._nonces[sender] += 1
        receipt = self._w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self._timeout_s)
        if receipt["status"] != 1:
            # lost a race after a good estimate: replay the call at the parent block for the reason
            try:
                call = {"from": sender, "to": to, "data": data}
                self._w3.eth.call(call, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
            except Exception as exc:
                self._raise_revert(exc, contract, fn)
            raise ContractRevert("reverted", contract=contract, fn=fn)
        return receipt

    def deploy(
        self, name: str, args: Sequence[Any], *, actor: str, label: str | None = None
    ) -> str:
        """Deploy contracts/<name>.vy; it is called `label` (default: `name`) from then on."""
        label = label or name
        if label in self._contracts:
            raise Conflict(f"{label} is already deployed at {self._contracts[label][0]}")
        art = artifact(name)
        initcode = art.bytecode + ContractAbi(art.abi).encode_constructor(args)
        receipt = self._transact(actor, None, initcode, label, "constructor")
        self._register(label, receipt["contractAddress"], name)
        return self._contracts[label][0]

    def deploy_blueprint(self, name: str, *, actor: str) -> str:
        """Deploy contracts/<name>.vy as an ERC-5202 blueprint (for create_from_blueprint)."""
        receipt = self._transact(
            actor, None, artifact(name).blueprint_bytecode, f"{name}#blueprint", "constructor"
        )
        return str(to_checksum_address(receipt["contractAddress"]))

    def register_at(self, name: str, address: str, source: str) -> None:
        """Know a contract created by another contract (e.g. from a blueprint) as `name`."""
        if name in self._contracts:
            raise Conflict(f"{name} is already known at {self._contracts[name][0]}")
        if not self._w3.eth.get_code(to_checksum_address(address)):
            raise NotFound(f"no contract code at {address}")
        self._register(name, address, source)

    def send(self, contract: str, fn: str, *args: Any, actor: str) -> TxResult:
        address, abi = self._contract(contract)
        receipt = self._transact(actor, address, abi.function(fn).encode(args), contract, fn)
        events = tuple(self._decode(log) for log in receipt["logs"])
        return TxResult(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            block=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            events=tuple(e for e in events if e is not None),
        )

    # ------------------------------------------------------------ reads
    def call(self, contract: str, fn: str, *args: Any, actor: str | None = None) -> Any:
        address, abi = self._contract(contract)
        func = abi.function(fn)
        tx: dict[str, Any] = {"to": address, "data": func.encode(args)}
        if actor is not None:
            tx["from"] = self.address_of(actor)
        try:
            out = self._w3.eth.call(tx)  # type: ignore[arg-type]
        except Exception as exc:
            self._raise_revert(exc, contract, fn)
            raise  # pragma: no cover
        return func.decode(bytes(out))

    def _decode(self, log: Any) -> EventLog | None:
        address = to_checksum_address(log["address"])
        name = self._names_by_address.get(address.lower())
        if name is None or not log["topics"]:
            return None
        topics = [bytes(t) for t in log["topics"]]
        ev = self._contracts[name][1].events.get(topics[0])
        if ev is None:
            return None
        block = int(log["blockNumber"])
        return EventLog(
            seq=block * SEQ_PER_BLOCK + int(log["logIndex"]),
            block=block,
            tx_hash="0x" + bytes(log["transactionHash"]).hex(),
            contract=name,
            address=address,
            event=ev.name,
            args=ev.decode(topics, bytes(log["data"])),
        )

    def events(
        self, contract: str | None = None, event: str | None = None, since: int = 0
    ) -> list[EventLog]:
        if contract is not None:
            addresses = [self._contract(contract)[0]]
        else:
            addresses = [a for a, _ in self._contracts.values()]
        if not addresses:
            return []
        topics = None
        if event is not None and contract is not None:
            topics = ["0x" + self._contracts[contract][1].event_by_name(event).topic0.hex()]
        logs: list[Any] = []
        start, latest = since // SEQ_PER_BLOCK, self.block_number()
        while start <= latest:  # nodes cap eth_getLogs ranges: ask in windows
            end = min(latest, start + LOG_WINDOW_BLOCKS - 1)
            flt: dict[str, Any] = {"address": addresses, "fromBlock": start, "toBlock": end}
            if topics is not None:
                flt["topics"] = topics
            logs.extend(self._get_logs(flt))
            start = end + 1
        out = [e for e in (self._decode(log) for log in logs) if e is not None]
        out = [e for e in out if e.seq > since and (event is None or e.event == event)]
        return sorted(out, key=lambda e: e.seq)

    def _get_logs(self, flt: dict[str, Any]) -> list[Any]:
        """`eth_getLogs` for one window (`fromBlock`/`toBlock` as ints)."""
        return list(self._w3.eth.get_logs(flt))  # type: ignore[arg-type]

    def block_number(self) -> int:
        return int(self._w3.eth.block_number)

    def block_time(self) -> int:
        return int(self._w3.eth.get_block("latest")["timestamp"])

    def set_block_time(self, timestamp_s: int) -> None:
        latest = self.block_time()
        if timestamp_s <= latest:
            raise InvalidInput(f"block time must move forward ({timestamp_s} <= {latest})")
        self._rpc("evm_setNextBlockTimestamp", [timestamp_s])
        self._rpc("evm_mine", [])

    def advance_time(self, seconds: int) -> None:
        if seconds <= 0:
            raise InvalidInput("time can only advance by a positive number of seconds")
        self.set_block_time(self.block_time() + seconds)

    def state_root(self) -> str:
        return "0x" + bytes(self._w3.eth.get_block("latest")["stateRoot"]).hex()

    def code_at(self, address: str) -> bytes:
        return bytes(self._w3.eth.get_code(to_checksum_address(address)))

    def snapshot(self) -> None:
        """The node persists its own state; nothing to do."""

    def close(self) -> None:
        self._nonces.clear()
