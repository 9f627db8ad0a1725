"""Proof of liabilities: a Merkle-sum tree over investor balances per epoch.

Each leaf commits to (investor id, balance in fen, a random per-epoch salt); each node to its
children's hashes *and* the sum of their balances. The root commits to the total the platform
owes investors. An investor given an inclusion proof checks that their balance is counted in
the published total; because every node carries its sum and sums must be non-negative, the
platform cannot hide a balance by pairing it with a negative one. Salts keep neighbours'
ids unguessable from the sibling hashes.

    leaf  = sha256(0x00 ‖ salt(32) ‖ u128(balance) ‖ utf8(investor_id))
    node  = sha256(0x01 ‖ left.hash ‖ u128(left.sum) ‖ right.hash ‖ u128(right.sum))
    pad   = sha256(0x02), sum 0    (odd levels are padded)

The root of each epoch is stored in `audit_pol_epochs` and published on chain through a
`RootPublisher` (the chain side implements it).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crowdleverage.audit.log import metadata
from crowdleverage.custody.db import write_transaction
from crowdleverage.domain.errors import (
    Conflict,
    DataFileError,
    IntegrityFailure,
    InvalidInput,
    NotFound,
)

PAD = hashlib.sha256(b"\x02").digest()
MAX_SUM = (1 << 128) - 1

epochs = sa.Table(
    "audit_pol_epochs",
    metadata,
    sa.Column("epoch", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root_hash", sa.String(64), nullable=False),
    sa.Column("total_fen", sa.BigInteger, nullable=False),
    sa.Column("n_leaves", sa.Integer, nullable=False),
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("published_ref", sa.String(128), nullable=True),  # e.g. the chain tx hash
)

leaves = sa.Table(
    "audit_pol_leaves",
    metadata,
    sa.Column("epoch", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("investor_id", sa.String(64), nullable=False),
    sa.Column("balance_fen", sa.BigInteger, nullable=False),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.UniqueConstraint("epoch", "investor_id", name="uq_audit_pol_leaf_investor"),
)


def _u128(v: int) -> bytes:
    return v.to_bytes(16, "big")


def leaf_hash(investor_id: str, balance_fen: int, salt: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + salt + _u128(balance_fen) + investor_id.encode()).digest()


def node_hash(lh: bytes, ls: int, rh: bytes, rs: int) -> bytes:
    return hashlib.sha256(b"\x01" + lh + _u128(ls) + rh + _u128(rs)).digest()


@dataclass(frozen=True, slots=True)
class Leaf:
    investor_id: str
    balance_fen: int
    salt: bytes


class MerkleSumTree:
    def __init__(self, items: list[Leaf]) -> None:
        if not items:
            raise InvalidInput("a proof of liabilities needs at least one investor")
        for it in items:
            if it.balance_fen < 0:
                raise InvalidInput(f"investor {it.investor_id} has a negative balance")
            if len(it.salt) != 32:
                raise InvalidInput("salts are 32 bytes")
        self.items = items
        level = [(leaf_hash(i.investor_id, i.balance_fen, i.salt), i.balance_fen) for i in items]
        self.levels: list[list[tuple[bytes, int]]] = [level]
        while len(level) > 1:
            if len(level) % 2:
                level = [*level, (PAD, 0)]
                self.levels[-1] = level
            level = [
                (node_hash(lh, ls, rh, rs), ls + rs)
                for (lh, ls), (rh, rs) in zip(level[::2], level[1::2], strict=True)
            ]
            self.levels.append(level)

    @property
    def root(self) -> tuple[bytes, int]:
        return self.levels[-1][0]

    def proof(self, index: int) -> list[dict[str, Any]]:
        path = []
        for level in self.levels[:-1]:
            sib = index ^ 1
            h, total = level[sib]
            path.append(
                {"side": "left" if sib < index else "right", "hash": h.hex(), "sum_fen": total}
            )
            index //= 2
        return path


def verify_proof(proof: dict[str, Any]) -> tuple[str, int]:
    """Recompute the root from a proof; return (root hex, total fen). Raises InvalidInput when
    the proof is malformed, IntegrityFailure when it does not lead to the root and total it
    claims."""
    try:
        leaf = proof["leaf"]
        balance = int(leaf["balance_fen"])
        salt = bytes.fromhex(leaf["salt"])
        h = leaf_hash(str(leaf["investor_id"]), balance, salt)
        total = balance
        if balance < 0 or len(salt) != 32:
            raise InvalidInput("proof leaf has a negative balance or a bad salt")
        for step in proof["path"]:
            sib_h, sib_sum = bytes.fromhex(step["hash"]), int(step["sum_fen"])
            if sib_sum < 0 or len(sib_h) != 32:
                raise InvalidInput("proof has a negative sum or a bad hash")
            if step["side"] == "left":
                h = node_hash(sib_h, sib_sum, h, total)
            elif step["side"] == "right":
                h = node_hash(h, total, sib_h, sib_sum)
            else:
                raise InvalidInput(f"proof step side {step['side']!r} is neither left nor right")
            total += sib_sum
            if total > MAX_SUM:
                raise InvalidInput("proof sums overflow")
        root, claimed_total = str(proof["root_hash"]), int(proof["total_fen"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"proof is malformed: {exc}") from exc
    if h.hex() != root or total != claimed_total:
        raise IntegrityFailure(
            f"proof does not verify: computes root {h.hex()[:16]}… total {total} fen, claims"
            f" {root[:16]}… total {claimed_total} fen"
        )
    return root, total


class RootPublisher(Protocol):
    """The chain side: records (epoch, root, total) on chain and returns a reference (tx hash)."""

    def publish_liabilities_root(self, epoch: int, root: bytes, total_fen: int) -> str: ...


class Liabilities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def snapshot(self, epoch: int, balances: dict[str, int]) -> tuple[str, int]:
        """Freeze the epoch's balances into a tree; returns (root hex, total fen). An epoch is
        written once; repeating it with the same balances returns the stored root."""
        existing = self.root(epoch, missing_ok=True)
        items = [Leaf(i, b, os.urandom(32)) for i, b in sorted(balances.items())]
        if existing is not None:
            stored = {r.investor_id: r.balance_fen for r in self._leaves(epoch)}
            if stored != dict(balances):
                raise Conflict(f"epoch {epoch} was already snapshot with other balances")
            return existing
        tree = MerkleSumTree(items)
        root, total = tree.root
        with write_transaction(self.engine) as conn:
            conn.execute(
                epochs.insert(),
                {"epoch": epoch, "root_hash": root.hex(), "total_fen": total,
                 "n_leaves": len(items), "created_ns": time.time_ns(), "published_ref": None},
            )  # fmt: skip
            conn.execute(
                leaves.insert(),
                [{"epoch": epoch, "idx": i, "investor_id": it.investor_id,
                  "balance_fen": it.balance_fen, "salt": it.salt.hex()}
                 for i, it in enumerate(items)],
            )  # fmt: skip
        return root.hex(), total

    def root(self, epoch: int, *, missing_ok: bool = False) -> tuple[str, int] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(epochs).where(epochs.c.epoch == epoch)).first()
        if row is None:
            if missing_ok:
                return None
            raise NotFound(f"no proof-of-liabilities epoch {epoch}")
        return row.root_hash, row.total_fen

    def latest_epoch(self) -> int:
        with self.engine.connect() as conn:
            v = conn.execute(sa.select(sa.func.max(epochs.c.epoch))).scalar()
        if v is None:
            raise NotFound("no proof-of-liabilities epoch has been snapshot yet")
        return int(v)

    def _leaves(self, epoch: int) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(leaves).where(leaves.c.epoch == epoch).order_by(leaves.c.idx)
                )
            )

    def prove(self, epoch: int, investor_id: str) -> dict[str, Any]:
        root = self.root(epoch)
        rows = self._leaves(epoch)
        items = [Leaf(r.investor_id, r.balance_fen, bytes.fromhex(r.salt)) for r in rows]
        idx = next((i for i, it in enumerate(items) if it.investor_id == investor_id), None)
        if idx is None:
            raise NotFound(f"investor {investor_id} is not in epoch {epoch}")
        tree = MerkleSumTree(items)
        assert root is not None and tree.root[0].hex() == root[0], "dev: stored leaves match root"
        it = items[idx]
        return {
            "kind": "crowdleverage-proof-of-liabilities",
            "epoch": epoch,
            "root_hash": root[0],
            "total_fen": root[1],
            "leaf_index": idx,
            "tree_size": len(items),
            "leaf": {
                "investor_id": it.investor_id,
                "balance_fen": it.balance_fen,
                "salt": it.salt.hex(),
            },
            "path": tree.proof(idx),
        }

    def check_against_published(self, proof: dict[str, Any]) -> None:
        """The proof must verify *and* name the root this platform recorded for its epoch."""
        root, total = verify_proof(proof)
        stored = self.root(int(proof["epoch"]))
        assert stored is not None
        if (root, total) != stored:
            raise IntegrityFailure(
                f"proof root differs from the recorded root of epoch {proof['epoch']}"
            )

    def publish(self, epoch: int, publisher: RootPublisher) -> str:
        """Publish an epoch's root on chain (idempotent: a published epoch keeps its ref)."""
        root = self.root(epoch)
        assert root is not None
        with self.engine.connect() as conn:
            ref = conn.execute(
                sa.select(epochs.c.published_ref).where(epochs.c.epoch == epoch)
            ).scalar()
        if ref:
            return str(ref)
        ref = publisher.publish_liabilities_root(epoch, bytes.fromhex(root[0]), root[1])
        with write_transaction(self.engine) as conn:
            conn.execute(
                epochs.update()
                .where(epochs.c.epoch == epoch, epochs.c.published_ref.is_(None))
                .values(published_ref=ref)
            )
        return str(ref)


def load_proof_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise DataFileError(path, None, f"cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise DataFileError(path, exc.lineno, f"not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise DataFileError(path, None, "a proof is a JSON object")
    return data
