"""`EmbeddedChain`: titanoboa/py-evm in process, persisted under `<data_dir>/chain/`.

Persistence (DESIGN.md §3): a **snapshot** of py-evm's state database (every trie node, as a
flat binary key/value file, written atomically) plus a **journal** of the transactions since
it (SQLite, one row per committed transaction with its sender, calldata, block and timestamp).
On start the snapshot is loaded and the journal tail replayed with the recorded block numbers
and timestamps, so the state root is exactly the one the last writer had. Event logs, which
py-evm does not keep, are stored by the gateway in the same SQLite file in the same database
transaction as the journal row. One writer at a time: an exclusive `flock` on
`chain/writer.lock`; other processes may open read-only.

Block time comes from a controllable clock, so replays can run days in seconds. Blocks follow a
node's rules, the same ones `RpcChain` imposes on a dev node: every transaction is mined in its
own block one second after the previous block; `set_block_time`/`advance_time` mine an empty
block at the new time (strictly later). Views run against the latest block. Two chains given
the same calls therefore see the same timestamps and block numbers."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import sqlite3
import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from eth_utils import keccak, to_checksum_address

from crowdleverage.chain.abi import ContractAbi, checksummed, decode_revert, intrinsic_gas
from crowdleverage.chain.artifacts import EIP170_LIMIT_BYTES, artifact
from crowdleverage.chain.keys import ActorKeys
from crowdleverage.chain.port import EventLog, TxResult
from crowdleverage.domain.errors import (
    ConfigError,
    Conflict,
    ContractRevert,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)

# 2016-01-04 09:30 Asia/Shanghai: the first session of the shipped market data.
DEFAULT_GENESIS_TIME_S = 1_451_871_000
DEFAULT_CHAIN_ID = 31337
SNAPSHOT_MAGIC = b"CLEVSNAP1\n"
# `prepare_snapshot` folds an account's storage ahead of the snapshot from this many changed slots
PREPARE_MIN_SLOTS = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    seq INTEGER PRIMARY KEY,            -- 1, 2, ... in execution order
    kind TEXT NOT NULL,                 -- 'deploy' | 'send'
    contract TEXT NOT NULL,             -- deployed name
    fn TEXT NOT NULL,                   -- function name ('' for deploy)
    sender TEXT NOT NULL,
    to_addr TEXT NOT NULL,              -- target, or the created address for a deploy
    data BLOB NOT NULL,                 -- calldata or init code + constructor args
    block INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    gas_used INTEGER NOT NULL,
    tx_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    tx_seq INTEGER NOT NULL REFERENCES txs(seq),
    block INTEGER NOT NULL,
    tx_hash TEXT NOT NULL,
    contract TEXT NOT NULL,
    address TEXT NOT NULL,
    event TEXT NOT NULL,
    args_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_name ON events(contract, event, seq);
CREATE TABLE IF NOT EXISTS contracts (
    label TEXT PRIMARY KEY,             -- name used in calls ("CashToken", "SeniorShare")
    source TEXT NOT NULL,               -- contracts/<source>.vy
    address TEXT NOT NULL,
    kind TEXT NOT NULL                  -- 'deployed' | 'blueprint' | 'attached'
);
"""


F = TypeVar("F", bound=Callable[..., Any])


def _serialised(fn: F) -> F:
    """py-evm and the SQLite connection are not thread-safe: one call at a time per chain
    (the API serves requests from a thread pool)."""

    @functools.wraps(fn)
    def wrapper(self: EmbeddedChain, *args: Any, **kwargs: Any) -> Any:
        with self._mutex:
            return fn(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class EmbeddedChain:
    """ChainPort on an in-process EVM whose state survives restarts. Thread-safe (calls are
    serialised); one writing process per data directory. A state snapshot is written every
    `snapshot_every` transactions (None: only when `snapshot()` is called, and at `close()`)."""

    kind = "embedded"

    def __init__(
        self,
        data_dir: Path,
        keys: ActorKeys,
        *,
        chain_id: int = DEFAULT_CHAIN_ID,
        genesis_time_s: int = DEFAULT_GENESIS_TIME_S,
        read_only: bool = False,
        snapshot_every: int | None = 500,
    ) -> None:
        from boa.environment import Env

        self._mutex = threading.RLock()
        self.dir = Path(data_dir) / "chain"
        if not read_only:  # a reader creates nothing
            self.dir.mkdir(parents=True, exist_ok=True)
        self.keys = keys
        self.read_only = read_only
        self._snapshot_every = snapshot_every
        self._lock_fd: int | None = None if read_only else self._acquire_lock()
        self._db = self._open_journal()
        self._env = Env()
        self._env.evm.patch.code_size_limit = EIP170_LIMIT_BYTES
        _lean_computations(self._env.evm.vm.state)
        self._contracts: dict[str, tuple[str, ContractAbi]] = {}
        self._names_by_address: dict[str, str] = {}
        self._aliases: dict[str, str] = {}
        self._since_snapshot = 0
        self._snapshot_idle_every: int | None = None  # `defer_snapshots`
        meta = self._meta()
        if "chain_id" not in meta:
            if read_only:
                raise NotFound(f"no embedded chain in {self.dir}")
            meta = {"chain_id": str(chain_id), "ts": str(genesis_time_s), "block": "0"}
            self._set_meta(meta)
        self.chain_id = int(meta["chain_id"])
        self._env.evm.patch.chain_id = self.chain_id
        self._restore()
        meta = self._meta()
        self._ts, self._block = int(meta["ts"]), int(meta["block"])
        self._seq = self._last_seq()  # the journal's last transaction (the writer appends)

    # ------------------------------------------------------------ lifecycle
    def _acquire_lock(self) -> int:
        fd = os.open(self.dir / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ServiceUnavailable(
                f"another process is writing the chain in {self.dir}; open it read-only"
            ) from None
        return fd

    def _open_journal(self) -> sqlite3.Connection:
        path = self.dir / "journal.sqlite"
        if self.read_only:
            if not path.exists():
                raise NotFound(f"no embedded chain in {self.dir}")
            # immutable when no writer has it open (no -wal file): creates no -shm/-wal here
            live = Path(f"{path}-wal").exists()
            uri = f"file:{path}?mode=ro" + ("" if live else "&immutable=1")
            db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            db = sqlite3.connect(path, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        return db

    @_serialised
    def close(self, *, snapshot: bool = True) -> None:
        """Snapshot the state (unless `snapshot=False`: the journal alone still restores it
        exactly, replayed from the last snapshot — for a directory about to be removed) and
        release the journal and the writer lock; idempotent."""
        if getattr(self, "_db", None) is None:
            return
        if snapshot and not self.read_only and self._since_snapshot:
            self.snapshot()
        self._db.close()
        self._db = None  # type: ignore[assignment]
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> EmbeddedChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ meta
    def _meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def _set_meta(self, values: dict[str, str]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

    # ------------------------------------------------------------ snapshot + replay
    @property
    def _snapshot_path(self) -> Path:
        return self.dir / "state.snapshot"

    def _state(self) -> Any:
        return self._env.evm.vm.state

    @_serialised
    def snapshot(self) -> None:
        """Persist py-evm's state trie and write it with the last journal seq it covers."""
        self._check_writable()
        state = self._state()
        state.persist()
        root = bytes(state.state_root)
        kv = self._env.evm.chain.chaindb.db.wrapped_db.kv_store
        seq = self._seq
        header = json.dumps(
            {"seq": seq, "state_root": root.hex(), "block": self.block_number(), "nodes": len(kv)}
        ).encode()
        body = bytearray()
        for k, v in kv.items():
            body += struct.pack(">II", len(k), len(v)) + k + v
        tmp = self._snapshot_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(SNAPSHOT_MAGIC + struct.pack(">I", len(header)) + header)
            f.write(zlib.compress(bytes(body), 1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._snapshot_path)
        self._since_snapshot = 0

    @_serialised
    def prepare_snapshot(self, min_slots: int = PREPARE_MIN_SLOTS) -> bool:
        """One step of the next snapshot, False when none is left: the storage changes of
        one account with at least `min_slots` changed slots folded into its storage trie
        (py-evm's `make_storage_root`; the snapshot's persist does it for every changed
        account at once otherwise). That pure-Python trie and RLP work is most of a
        snapshot's cost (~1 ms of CPU per changed slot on a 2-core machine: 100-250 ms for
        the demo's hundred transactions), so a caller that must not stall for long takes it
        an account at a time (`defer_snapshots`). Accounts with fewer changes are left to the
        snapshot: transactions arriving between the steps (each a few slots) would otherwise
        keep some account dirty and the snapshot would never come. The state and its root
        are the same either way."""
        self._check_writable()
        for _address, store in self._state()._account_db._dirty_account_stores():
            pending = len(store._journal_storage.diff()) + len(store._locked_changes.diff())
            if pending and pending >= min_slots:
                store.make_storage_root()
                return True
        return False

    def defer_snapshots(self, idle_every: int = 100) -> None:
        """Let the caller take the snapshots while it is idle (`snapshot_due`, `snapshot`):
        one is due after `idle_every` transactions, so each persists little of py-evm's state
        (the demo's 500 transactions: ~120 ms of CPU at once, inside whichever transaction
        reached the count). A caller never idle still gets one inside the transaction that
        reaches `snapshot_every`, as without this call."""
        every = self._snapshot_every
        self._snapshot_idle_every = max(1, idle_every if every is None else min(idle_every, every))

    @property
    def snapshot_due(self) -> bool:
        """`defer_snapshots`' `idle_every` transactions since the last snapshot."""
        idle_every = self._snapshot_idle_every
        return idle_every is not None and not self.read_only and self._since_snapshot >= idle_every

    def _load_snapshot(self) -> int:
        """Load the state snapshot if any; returns the journal seq it covers (0 if none)."""
        path = self._snapshot_path
        if not path.exists():
            return 0
        raw = path.read_bytes()
        if not raw.startswith(SNAPSHOT_MAGIC):
            raise ConfigError(f"{path} is not a chain snapshot")
        pos = len(SNAPSHOT_MAGIC)
        (hlen,) = struct.unpack_from(">I", raw, pos)
        header = json.loads(raw[pos + 4 : pos + 4 + hlen])
        body = zlib.decompress(raw[pos + 4 + hlen :])
        db = self._env.evm.chain.chaindb.db
        off = 0
        while off < len(body):
            klen, vlen = struct.unpack_from(">II", body, off)
            off += 8
            db[body[off : off + klen]] = body[off + klen : off + klen + vlen]
            off += klen + vlen
        state = self._state()
        state._account_db = type(state._account_db)(db, bytes.fromhex(header["state_root"]))
        return int(header["seq"])

    def _restore(self) -> None:
        covered = self._load_snapshot()
        account_db = self._state()._account_db  # the snapshot's, or the genesis one
        _live_access_log(account_db)
        _lean_touch(account_db)
        _lasting_slot_caches(account_db)
        for label, source, address, kind in self._db.execute(
            "SELECT label, source, address, kind FROM contracts"
        ).fetchall():
            if kind == "alias":
                self._aliases[label] = address
            elif kind != "blueprint":
                self._register(label, address, source)
        rows = self._db.execute(
            "SELECT seq, kind, sender, to_addr, data, block, ts, gas_used FROM txs"
            " WHERE seq > ? ORDER BY seq",
            (covered,),
        ).fetchall()
        for seq, kind, sender, to_addr, data, block, ts, gas_used in rows:
            self._env.evm.patch.timestamp = ts
            self._env.evm.patch.block_number = block
            if kind == "deploy":
                address, comp = self._exec_deploy(sender, bytes(data))
                ok = not comp.is_error and address.lower() == to_addr.lower()
            else:
                comp = self._exec_send(sender, to_addr, bytes(data))
                ok = not comp.is_error
            # the same transaction on the same state uses the same gas: a cheap divergence check
            ok = ok and self._tx_gas(comp, bytes(data), kind == "deploy") == gas_used
            if not ok:
                raise ConfigError(f"journal replay diverged at transaction {seq} in {self.dir}")
            self._since_snapshot += 1

    # ------------------------------------------------------------ execution primitives
    def _begin_tx(self) -> None:
        """Start a transaction as a node would: cold access sets (EIP-2929) and the storage
        "original values" of EIP-2200/3529 taken now. titanoboa keeps both across calls, which
        under-charges SLOAD/CALL and every SSTORE to a slot written by an earlier call."""
        self._state().lock_changes()
        self._env.evm.reset_access_counters()

    def _exec_deploy(self, sender: str, initcode: bytes) -> tuple[str, Any]:
        from boa.util.abi import Address

        self._begin_tx()
        state = self._state()
        snap = state.snapshot()
        address, comp = self._env.deploy(sender=Address(sender), bytecode=initcode)
        if comp.is_error:
            state.revert(snap)  # undo the nonce bump as well: nothing happened
        else:
            state.commit(snap)
        return to_checksum_address(str(address)), comp

    def _exec_send(self, sender: str, to: str, data: bytes) -> Any:
        from boa.util.abi import Address

        self._begin_tx()
        comp = self._env.execute_code(to_address=Address(to), sender=Address(sender), data=data)
        if not comp.is_error:
            # a real transaction bumps the sender's nonce; keep CREATE addresses like a node's
            self._state().increment_nonce(Address(sender).canonical_address)
        return comp

    @staticmethod
    def _tx_gas(comp: Any, data: bytes, is_create: bool) -> int:
        """Gas a node would charge: intrinsic + execution − refund (≤ 1/5), EIP-7623 floor."""
        gross = intrinsic_gas(data, is_create) + comp.get_gas_used()
        refund = min(comp.get_gas_refund(), gross // 5)
        zeros = data.count(0)
        floor = 21_000 + 10 * (zeros + 4 * (len(data) - zeros))
        return max(gross - refund, floor)

    # ------------------------------------------------------------ contracts and actors
    def _register(self, label: str, address: str, source: str | None = None) -> None:
        abi = ContractAbi(artifact(source or label).abi)
        self._contracts[label] = (to_checksum_address(address), abi)
        self._names_by_address[address.lower()] = label

    def address_of(self, actor: str) -> str:
        return self._aliases.get(actor) or self.keys.address(actor)

    @_serialised
    def alias(self, actor: str, address: str) -> None:
        """Name an address that has no key (a platform contract acting as a party, e.g. the
        pool) so `address_of(actor)` finds it. Sending as it is impossible (no key)."""
        self._check_writable()
        if actor in self._aliases or actor in self.keys.keys:
            raise Conflict(f"actor {actor} already has an address")
        address = to_checksum_address(address)
        with self._db:
            self._db.execute(
                "INSERT INTO contracts(label, source, address, kind) VALUES (?, '', ?, 'alias')",
                (actor, address),
            )
        self._aliases[actor] = address

    def _sender(self, actor: str) -> str:
        return self.keys.address(actor)

    def contract_address(self, name: str) -> str:
        return self._contract(name)[0]

    def nonce(self, actor: str) -> int:
        from boa.util.abi import Address

        return int(self._state().get_nonce(Address(self._sender(actor)).canonical_address))

    def deployed(self) -> dict[str, str]:
        return {n: a for n, (a, _) in self._contracts.items()}

    @_serialised
    def sources(self) -> dict[str, str]:
        """label → contract source name of every known contract (for the manifest)."""
        rows = self._db.execute(
            "SELECT label, source FROM contracts WHERE kind NOT IN ('blueprint', 'alias')"
        )
        return dict(rows.fetchall())

    def _contract(self, name: str) -> tuple[str, ContractAbi]:
        try:
            return self._contracts[name]
        except KeyError:
            raise NotFound(f"contract {name} is not deployed on this chain") from None

    def _check_writable(self) -> None:
        if self.read_only:
            raise Conflict(f"the chain in {self.dir} is open read-only")

    # ------------------------------------------------------------ ChainPort: writes
    @_serialised
    def deploy(
        self, name: str, args: Sequence[Any], *, actor: str, label: str | None = None
    ) -> str:
        """Deploy contracts/<name>.vy; it is called `label` (default: `name`) from then on."""
        label = label or name
        art = artifact(name)
        initcode = art.bytecode + ContractAbi(art.abi).encode_constructor(args)
        return self._deploy(label, name, initcode, actor, "deployed")

    @_serialised
    def deploy_blueprint(self, name: str, *, actor: str) -> str:
        """Deploy contracts/<name>.vy as an ERC-5202 blueprint (for create_from_blueprint)."""
        label = f"{name}#blueprint"
        return self._deploy(label, name, artifact(name).blueprint_bytecode, actor, "blueprint")

    @_serialised
    def register_at(self, name: str, address: str, source: str) -> None:
        """Know a contract created by another contract (e.g. from a blueprint) as `name`."""
        self._check_writable()
        from boa.util.abi import Address

        if name in self._contracts:
            raise Conflict(f"{name} is already known at {self._contracts[name][0]}")
        if not self._env.get_code(Address(address)):
            raise NotFound(f"no contract code at {address}")
        address = to_checksum_address(address)
        self._register(name, address, source)
        with self._db:
            self._db.execute(
                "INSERT INTO contracts(label, source, address, kind) VALUES (?, ?, ?, 'attached')",
                (name, source, address),
            )

    def _deploy(self, label: str, source: str, initcode: bytes, actor: str, kind: str) -> str:
        self._check_writable()
        if label in self._contracts:
            raise Conflict(f"{label} is already deployed at {self._contracts[label][0]}")
        sender = self._sender(actor)
        block, ts = self._next_block()
        address, comp = self._exec_deploy(sender, initcode)
        if comp.is_error:
            raise ContractRevert(
                decode_revert(bytes(comp.output)), contract=label, fn="constructor"
            )
        if kind != "blueprint":
            self._register(label, address, source)
        gas = self._tx_gas(comp, initcode, True)
        self._commit("deploy", label, "", sender, address, initcode, block, ts, gas, comp,
                     register=(source, kind))  # fmt: skip
        return address

    @_serialised
    def send(self, contract: str, fn: str, *args: Any, actor: str) -> TxResult:
        self._check_writable()
        address, abi = self._contract(contract)
        data = abi.function(fn).encode(args)
        sender = self._sender(actor)
        block, ts = self._next_block()
        comp = self._exec_send(sender, address, data)
        if comp.is_error:
            raise ContractRevert(decode_revert(bytes(comp.output)), contract=contract, fn=fn)
        gas = self._tx_gas(comp, data, False)
        return self._commit("send", contract, fn, sender, address, data, block, ts, gas, comp)

    def _commit(
        self, kind: str, contract: str, fn: str, sender: str, to: str, data: bytes,
        block: int, ts: int, gas: int, comp: Any, register: tuple[str, str] | None = None,
    ) -> TxResult:  # fmt: skip
        seq = self._seq + 1
        tx_hash = "0x" + keccak(seq.to_bytes(8, "big") + bytes.fromhex(sender[2:]) + data).hex()
        logs = self._decode_logs(comp, block, tx_hash)
        with self._db:
            self._db.execute(
                "INSERT INTO txs(seq, kind, contract, fn, sender, to_addr, data, block, ts,"
                " gas_used, tx_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (seq, kind, contract, fn, sender, to, data, block, ts, gas, tx_hash),
            )
            stored = []
            for log in logs:
                cur = self._db.execute(
                    "INSERT INTO events(tx_seq, block, tx_hash, contract, address, event,"
                    " args_json) VALUES (?,?,?,?,?,?,?)",
                    (seq, block, tx_hash, log.contract, log.address, log.event,
                     json.dumps(log.args, sort_keys=True)),
                )  # fmt: skip
                stored.append(_with_seq(log, int(cur.lastrowid or 0)))
            if register is not None:
                self._db.execute(
                    "INSERT INTO contracts(label, source, address, kind) VALUES (?, ?, ?, ?)",
                    (contract, register[0], to, register[1]),
                )
            self._db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [("block", str(block)), ("ts", str(ts))],
            )
        self._seq, self._block, self._ts = seq, block, ts
        self._since_snapshot += 1
        if self._snapshot_every is not None and self._since_snapshot >= self._snapshot_every:
            self.snapshot()
        return TxResult(tx_hash=tx_hash, block=block, gas_used=gas, events=tuple(stored))

    def _decode_logs(self, comp: Any, block: int, tx_hash: str) -> list[EventLog]:
        out: list[EventLog] = []
        for _, raw_addr, topics, data in comp.get_raw_log_entries():
            address = checksummed(bytes(raw_addr))
            name = self._names_by_address.get(address.lower())
            if name is None:
                continue  # a contract the gateway does not know: not ours to index
            abi = self._contracts[name][1]
            topic_bytes = [t.to_bytes(32, "big") for t in topics]
            ev = abi.events.get(topic_bytes[0]) if topic_bytes else None
            if ev is None:
                continue
            args = ev.decode(topic_bytes, bytes(data))
            out.append(EventLog(0, block, tx_hash, name, address, ev.name, args))
        return out

    # ------------------------------------------------------------ ChainPort: reads
    @_serialised
    def call(self, contract: str, fn: str, *args: Any, actor: str | None = None) -> Any:
        from boa.util.abi import Address

        address, abi = self._contract(contract)
        func = abi.function(fn)
        data = func.encode(args)
        sender = self._sender(actor) if actor else "0x" + "00" * 20
        self._env.evm.patch.timestamp = self._ts
        self._env.evm.patch.block_number = self._block
        comp = self._env.execute_code(
            to_address=Address(address), sender=Address(sender), data=data, is_modifying=False
        )
        if comp.is_error:
            raise ContractRevert(decode_revert(bytes(comp.output)), contract=contract, fn=fn)
        return func.decode(bytes(comp.output))

    @_serialised
    def events(
        self, contract: str | None = None, event: str | None = None, since: int = 0
    ) -> list[EventLog]:
        sql = "SELECT seq, block, tx_hash, contract, address, event, args_json FROM events"
        sql += " WHERE seq > ?"
        params: list[Any] = [since]
        if contract is not None:
            sql += " AND contract = ?"
            params.append(contract)
        if event is not None:
            sql += " AND event = ?"
            params.append(event)
        rows = self._db.execute(sql + " ORDER BY seq", params).fetchall()
        return [EventLog(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in rows]

    @_serialised
    def transactions(self) -> list[tuple[int, str, str, str, int]]:
        """(seq, contract, fn, sender, gas_used) of every committed transaction."""
        rows = self._db.execute("SELECT seq, contract, fn, sender, gas_used FROM txs ORDER BY seq")
        return list(rows.fetchall())

    def _last_seq(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM txs").fetchone()
        return int(row[0])

    def _next_block(self) -> tuple[int, int]:
        """Number and timestamp of the block a transaction is mined in (one second later)."""
        block, ts = self._block + 1, self._ts + 1
        self._env.evm.patch.timestamp = ts
        self._env.evm.patch.block_number = block
        return block, ts

    def block_number(self) -> int:
        return self._block

    def block_time(self) -> int:
        """Timestamp of the latest block (what views see)."""
        return self._ts

    @_serialised
    def set_block_time(self, timestamp_s: int) -> None:
        """Mine an empty block at `timestamp_s` (strictly after the latest block)."""
        self._check_writable()
        if timestamp_s <= self._ts:
            raise InvalidInput(f"block time must move forward ({timestamp_s} <= {self._ts})")
        self._block, self._ts = self._block + 1, timestamp_s
        self._set_meta({"ts": str(timestamp_s), "block": str(self._block)})

    def advance_time(self, seconds: int) -> None:
        if seconds <= 0:
            raise InvalidInput("time can only advance by a positive number of seconds")
        self.set_block_time(self._ts + seconds)

    @_serialised
    def state_root(self) -> str:
        return "0x" + bytes(self._state().make_state_root()).hex()

    @_serialised
    def code_at(self, address: str) -> bytes:
        from boa.util.abi import Address

        return bytes(self._env.get_code(Address(address)))

    @_serialised
    def balance_wei(self, address: str) -> int:
        from boa.util.abi import Address

        return int(self._env.get_balance(Address(address)))


def _live_access_log(account_db: Any) -> None:
    """py-evm's `AccountDB.get_code` (run for every message call) asks whether the code hash is
    among the keys read so far, through a property that copies the whole read log into a new
    frozenset; titanoboa never persists, so that log holds every trie node ever read and each
    call costs O(state size). Answer the same membership question from the live set instead
    (read-only use: the witness bookkeeping it feeds is unchanged)."""
    raw = account_db._raw_store_db
    account_db._get_accessed_node_hashes = lambda: raw._keys_read


def _lean_touch(account_db: Any) -> None:
    """py-evm touches the target of every message call: it reads the account and writes it
    back unchanged, RLP-encoding it into the account journal. For an account that exists and
    is not empty (a nonce, a balance, code or storage: it is in the journal or the trie with
    exactly that value) the write changes nothing, so it is skipped; an empty or absent
    account is touched as py-evm does it (the state root is the same either way)."""
    from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3

    get_account, touch = account_db._get_account, account_db.touch_account

    def touch_account(address: bytes) -> None:
        a = get_account(address)
        if a.nonce or a.balance or a.code_hash != EMPTY_SHA3 or a.storage_root != BLANK_ROOT_HASH:
            account_db._accessed_accounts.add(address)  # as the read in `touch` does
            return
        touch(address)

    account_db.touch_account = touch_account


def _lasting_slot_caches(account_db: Any) -> None:
    """Storage reads that survive a snapshot. py-evm drops every account's storage view when
    the state is persisted (`snapshot()`), read caches included, so after each snapshot every
    slot is read again from the trie (a node lookup and an RLP decode per level); its read
    cache is also an LRU of 2048 slots per account, fewer than a contract with hundreds of
    accounts' positions holds. Here each account's storage view caches in one unbounded dict
    per account that outlives the view: it holds slot values as the trie below the view has
    them (reads, and the writes `make_storage_root` applies to that trie), which a persist
    leaves as they are — the new view starts from the root those writes made. The dict is
    emptied where py-evm resets its cache and the trie below changes (a storage wipe, or a
    revert past one). Slot values are also RLP-decoded and encoded without the generic codec
    (a big-endian integer is its length byte and its bytes). Same values, same gas, same
    state root (tests/chain)."""
    import rlp
    from eth.db.storage import AccountStorageDB
    from eth.vm.interrupt import MissingStorageTrieNode
    from eth_utils import int_to_big_endian

    decode, encode, sedes = rlp.decode, rlp.encode, rlp.sedes.big_endian_int
    caches: dict[bytes, dict[bytes, bytes]] = {}

    class LastingStorageDB(AccountStorageDB):  # type: ignore[misc]
        def __init__(self, db: Any, root: Any, address: Any) -> None:
            super().__init__(db, root, address)
            self._slots = caches.setdefault(address, {})
            self._storage_cache._cached_values = self._slots  # type: ignore[assignment]

        def _keep_cache(self, wiped: bool) -> None:
            if wiped:
                self._slots.clear()
            self._storage_cache._cached_values = self._slots  # type: ignore[assignment]  # py-evm put a new LRU there

        def get(self, slot: int, from_journal: bool = True) -> int:
            self._accessed_slots.add(slot)
            lookup = self._journal_storage if from_journal else self._locked_changes
            try:
                v = lookup[int_to_big_endian(slot)]
            except MissingStorageTrieNode:
                raise
            except KeyError:
                return 0
            n = len(v)
            if n == 1 and v[0] < 0x80:
                return v[0]
            if 1 < n <= 33 and v[0] == 0x7F + n and v[1]:
                return int.from_bytes(v[1:], "big")
            return 0 if v == b"" else int(decode(v, sedes=sedes))

        def set(self, slot: int, value: int) -> None:
            if value <= 0 or value.__class__ is not int:
                super().set(slot, value)  # a delete (or an odd value): py-evm's way
                return
            if value < 0x80:
                raw = bytes((value,))
            else:
                raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
                raw = bytes((0x80 + len(raw),)) + raw if len(raw) <= 32 else encode(value)
            self._journal_storage[int_to_big_endian(slot)] = raw

        def delete(self) -> None:
            super().delete()
            self._keep_cache(True)

        def discard(self, checkpoint: Any) -> None:
            before = len(self._storage_lookup._historical_write_tries)
            super().discard(checkpoint)
            self._keep_cache(len(self._storage_lookup._historical_write_tries) != before)

    def _get_address_store(address: bytes) -> Any:
        stores = account_db._account_stores
        store = stores.get(address)
        if store is None:
            root = account_db._get_storage_root(address)
            store = stores[address] = LastingStorageDB(account_db._raw_store_db, root, address)
        return store

    account_db._get_address_store = _get_address_store


_JUMPDESTS: dict[bytes, tuple[set[int], set[int]]] = {}
_OPCODE_TABLES: list[tuple[dict[int, Any], dict[int, Any]]] = []  # (source, lean table)


def _lean_opcode(op: Any) -> Any:
    """A py-evm `_FastOpcode` (fixed gas, then its logic) as one function: the gas meter's
    `consume_gas` inlined (same check, same OutOfGas, same arithmetic), two Python calls per
    executed opcode fewer."""
    from eth.exceptions import OutOfGas

    cost, logic, mnemonic = op.gas_cost, op.logic_fn, op.mnemonic
    if cost == 0:
        return logic
    if mnemonic.startswith("PUSH") and mnemonic != "PUSH0":
        return _lean_push(int(mnemonic[4:]), cost, mnemonic)

    def run(computation: Any) -> Any:
        meter = computation._gas_meter
        if cost > meter.gas_remaining:
            raise OutOfGas(
                f"Out of gas: Needed {cost} - Remaining {meter.gas_remaining} - Reason: {mnemonic}"
            )
        meter.gas_remaining -= cost
        return logic(computation)

    return run


def _lean_push(size: int, cost: int, mnemonic: str) -> Any:
    """PUSH1..PUSH32 as py-evm's `push_XX` does it (the next `size` code bytes, zero-padded
    past the end of the code, pushed as bytes), in one function."""
    from eth.exceptions import FullStack, OutOfGas

    def run(computation: Any) -> None:
        meter = computation._gas_meter
        if cost > meter.gas_remaining:
            raise OutOfGas(
                f"Out of gas: Needed {cost} - Remaining {meter.gas_remaining} - Reason: {mnemonic}"
            )
        meter.gas_remaining -= cost
        code = computation.code
        pc = code.program_counter
        raw = code._raw_code_bytes[pc : pc + size]
        code.program_counter = pc + size
        if len(raw) != size:
            raw = raw.ljust(size, b"\x00")
        values = computation._stack.values
        if len(values) > 1023:
            raise FullStack("Stack limit reached")
        values.append(raw)

    run.push = (size, cost)  # type: ignore[attr-defined]  # the loop may inline it
    return run


def _lean_opcodes(opcodes: dict[int, Any]) -> dict[int, Any]:
    """The lean table of `opcodes`: the most executed ones as single functions
    (chain/leanops.py), every other fixed-gas one with its gas charge inlined
    (`_lean_opcode`), titanoboa's SSTORE tracer replaced by the py-evm opcode it wraps (the
    slots it records feed titanoboa's storage introspection only)."""
    last = _OPCODE_TABLES[0] if _OPCODE_TABLES else None
    if last is not None and last[0] == opcodes:  # the same opcode objects (identity)
        return last[1]
    from boa.vm.py_evm import SstoreTracer
    from eth.vm.opcode import _FastOpcode

    from crowdleverage.chain.leanops import lean_op, unwrap

    table = {}
    for k, v in opcodes.items():
        lean = lean_op(k, v)
        if type(v) is SstoreTracer:
            v = unwrap(v)
        if lean is not None:
            table[k] = lean
        elif type(v) is _FastOpcode:
            table[k] = _lean_opcode(v)
        else:
            table[k] = v
    _OPCODE_TABLES[:] = [(dict(opcodes), table)]  # one environment's table at a time
    return table


def _lean_computations(state: Any) -> None:
    """Per-message and per-opcode costs of titanoboa's computations that buy this chain
    nothing, cut for this environment only (its state's computation class; other boa
    environments unchanged):

    - the code stream records every executed program counter (`_trace`, for boa's coverage
      and source-mapped tracebacks; this chain decodes reverts from the output only);
    - which JUMP targets are valid (not inside PUSH data) is worked out again per message
      call; it depends on the code bytes only, so streams of the same code share the sets;
    - every fixed-gas opcode goes through three calls (opcode, computation, gas meter) to
      charge its gas: one function does the same (`_lean_opcode`), when the gas meter is
      py-evm's own;
    - the stack re-validates every pushed value (a uint256, ≤ 32 bytes), which py-evm's
      opcodes produce in range by construction (results are masked to 256 bits, pushed
      bytes are PUSH data, words or hashes); memory expansion within the memory already
      paid for is worked out in full for every MLOAD/MSTORE (`extend_memory`), though it
      neither costs gas nor grows anything; popping ints goes through a generator and two
      calls per value; a memory write re-checks what `extend_memory` just ensured;
    - the most executed opcodes (arithmetic, comparisons, DUP/SWAP, MLOAD/MSTORE, JUMP/JUMPI,
      SHA3, ...) pop, compute and push through the computation's stack and memory proxies:
      each is one function (chain/leanops.py);
    - the opcode loop iterates a generator and calls each opcode with a keyword argument:
      `apply_computation` reads the code bytes itself and dispatches through a list.
    Execution, gas and results are unchanged (tests/chain: the same gas per transaction
    as anvil)."""
    from boa.vm.py_evm import TracingCodeStream
    from eth.exceptions import FullStack, Halt, OutOfGas
    from eth.vm.computation import NO_RESULT as _NO_RESULT
    from eth.vm.gas_meter import GasMeter
    from eth.vm.memory import Memory
    from eth.vm.stack import Stack

    class LeanCodeStream(TracingCodeStream):  # type: ignore[misc]
        __slots__ = ()

        def __iter__(self) -> Iterator[int]:
            code, n = self._raw_code_bytes, self._length_cache
            while self.program_counter < n:
                opcode = code[self.program_counter]
                self.program_counter += 1
                yield opcode
            yield 0x00  # STOP

    class LeanStack(Stack):  # type: ignore[misc]
        __slots__ = ()

        def push_int(self, value: int) -> None:
            if len(self.values) > 1023:
                from eth.exceptions import FullStack

                raise FullStack("Stack limit reached")
            self._append(value)

        push_bytes = push_int  # type: ignore[assignment]

        def pop1_int(self) -> int:
            try:
                x = self._pop()
            except IndexError:
                from eth.exceptions import InsufficientStack

                raise InsufficientStack("Wanted 1 stack item, had none") from None
            return x if isinstance(x, int) else int.from_bytes(x, "big")

        def pop_ints(self, num_items: int) -> tuple[int, ...]:
            values = self.values
            if num_items > len(values):
                from eth.exceptions import InsufficientStack

                raise InsufficientStack(f"Wanted {num_items} stack items, only had {len(values)}")
            ret = values[-num_items:]
            del values[-num_items:]
            ret.reverse()
            return tuple([x if isinstance(x, int) else int.from_bytes(x, "big") for x in ret])

    class LeanMemory(Memory):  # type: ignore[misc]
        __slots__ = ()

        def write(self, start_position: int, size: int, value: bytes) -> None:
            # callers extended the memory first and pass `size` bytes (py-evm's checks)
            if size:
                self._bytes[start_position : start_position + len(value)] = value

    base = state.computation_class
    base_extend = base.extend_memory

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, *args, **kwargs)
        stream = self.code
        stream.__class__ = LeanCodeStream
        raw = stream._raw_code_bytes
        found = _JUMPDESTS.get(raw)
        if found is None:
            if len(_JUMPDESTS) >= 512:
                _JUMPDESTS.clear()
            found = _JUMPDESTS[raw] = (stream.invalid_positions, stream.valid_positions)
        stream.invalid_positions, stream.valid_positions = found
        self._stack.__class__ = LeanStack
        self._memory.__class__ = LeanMemory
        if type(self._gas_meter) is GasMeter:
            self.opcodes = _lean_opcodes(self.opcodes)

    def extend_memory(self: Any, start_position: int, size: int) -> None:
        # nothing to pay or grow: no bytes, or all within the (32-byte aligned) memory
        if size == 0 or start_position + size <= len(self._memory._bytes):
            return
        base_extend(self, start_position, size)

    def apply_computation(
        cls: Any, state: Any, message: Any, tx_ctx: Any, parent_computation: Any = None
    ) -> Any:
        # py-evm's `BaseComputation.apply_computation` under titanoboa's (fast mode off: no
        # IR executor), with the opcode loop reading the code bytes itself and dispatching
        # through a 256-entry list instead of a generator and a keyword call per opcode
        if cls.env.evm._fast_mode_enabled:
            return base.apply_computation.__func__(cls, state, message, tx_ctx,
                                                   parent_computation)  # fmt: skip
        with cls(state, message, tx_ctx) as computation:
            if computation.is_origin_computation:
                computation.contracts_created = []
                if message.is_create:
                    cls.consume_initcode_gas_cost(computation)
            if parent_computation is not None:
                computation.contracts_created = parent_computation.contracts_created
            if message.is_create:
                computation.contracts_created.append(message.storage_address)
            precompile = computation.precompiles.get(message.code_address, _NO_RESULT)
            if precompile is not _NO_RESULT:
                if not message.is_delegation:
                    precompile(computation)
                return _finalize(cls, message, computation)
            ops, inline_push = _dispatch_list(computation.opcodes)
            code = computation.code
            raw, n = code._raw_code_bytes, code._length_cache
            try:
                if not inline_push:
                    while True:
                        pc = code.program_counter
                        if pc < n:
                            code.program_counter = pc + 1
                            ops[raw[pc]](computation)
                        else:
                            ops[0](computation)  # STOP past the end of the code
                # PUSH1..PUSH32 (a third of what runs) in the loop itself, as `_lean_push`
                meter, values = computation._gas_meter, computation._stack.values
                while True:
                    pc = code.program_counter
                    if pc >= n:
                        ops[0](computation)  # STOP past the end of the code
                    op = raw[pc]
                    if 0x60 <= op <= 0x7F:
                        if meter.gas_remaining < 3:
                            raise OutOfGas(
                                f"Out of gas: Needed 3 - Remaining {meter.gas_remaining}"
                                f" - Reason: PUSH{op - 0x5F}"
                            )
                        meter.gas_remaining -= 3
                        end = pc + op - 0x5E
                        data = raw[pc + 1 : end]
                        code.program_counter = end
                        if len(data) != op - 0x5F:
                            data = data.ljust(op - 0x5F, b"\x00")
                        if len(values) > 1023:
                            raise FullStack("Stack limit reached")
                        values.append(data)
                        continue
                    code.program_counter = pc + 1
                    ops[op](computation)
            except Halt:
                pass
        return _finalize(cls, message, computation)

    state.computation_class = type(
        "LeanComputation",
        (base,),
        {
            "__init__": __init__,
            "extend_memory": extend_memory,
            "apply_computation": classmethod(apply_computation),
        },
    )


def _finalize(cls: Any, message: Any, computation: Any) -> Any:
    """titanoboa's: a failed computation keeps the repr of the contract it ran (for its error
    messages)."""
    if computation.is_error:
        addr = message.code_address
        contract = cls.env._lookup_contract_fast(addr) if addr else None
        computation._contract_repr_before_revert = repr(contract)
    return computation


_DISPATCH: dict[int, tuple[dict[int, Any], list[Any], bool]] = {}


def _dispatch_list(opcodes: dict[int, Any]) -> tuple[list[Any], bool]:
    """`opcodes` as a list indexed by opcode (an opcode the table lacks is py-evm's
    `InvalidOpcode`, as its loop does it), and whether PUSH1..PUSH32 are `_lean_push`'s (3
    gas each), which the loop may then run itself."""
    from eth.vm.logic.invalid import InvalidOpcode

    found = _DISPATCH.get(id(opcodes))
    if found is not None and found[0] is opcodes:
        return found[1], found[2]
    ops = [opcodes.get(i) or InvalidOpcode(i) for i in range(256)]
    inline_push = all(getattr(ops[op], "push", None) == (op - 0x5F, 3) for op in range(0x60, 0x80))
    if len(_DISPATCH) >= 64:
        _DISPATCH.clear()
    _DISPATCH[id(opcodes)] = (opcodes, ops, inline_push)
    return ops, inline_push


def _with_seq(log: EventLog, seq: int) -> EventLog:
    return EventLog(seq, log.block, log.tx_hash, log.contract, log.address, log.event, log.args)


@contextlib.contextmanager
def open_embedded(data_dir: Path, keys: ActorKeys, **kw: Any) -> Iterator[EmbeddedChain]:
    chain = EmbeddedChain(data_dir, keys, **kw)
    try:
        yield chain
    finally:
        chain.close()
