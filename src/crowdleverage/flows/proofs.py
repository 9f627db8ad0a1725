"""Proof of liabilities: a Merkle-sum tree over what the platform owes each user.

A leaf commits to (user id, balance, salt); an inner node to its children's hashes and the sum
of their balances. The root (hash, total) is published; a user receives the path from their
leaf and checks that it leads to the root and that every sum on the way is non-negative and
adds up — so the platform cannot show a user a smaller total than the one it published.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def _h(*parts: bytes) -> str:
    return hashlib.sha256(b"|".join(parts)).hexdigest()


def leaf_hash(user_id: int, balance_fen: int, salt: str) -> str:
    return _h(b"leaf", str(user_id).encode(), str(balance_fen).encode(), salt.encode())


def node_hash(left: str, left_sum: int, right: str, right_sum: int) -> str:
    return _h(
        b"node", left.encode(), str(left_sum).encode(), right.encode(), str(right_sum).encode()
    )


@dataclass(frozen=True, slots=True)
class Step:
    sibling_hash: str
    sibling_sum_fen: int
    sibling_is_left: bool


@dataclass(frozen=True, slots=True)
class SumTree:
    root_hash: str
    total_fen: int
    leaves: int
    levels: list[list[tuple[str, int]]]
    index_of: dict[int, int]

    def proof(self, user_id: int) -> list[Step]:
        i = self.index_of[user_id]
        out: list[Step] = []
        for level in self.levels[:-1]:
            sib = i ^ 1
            h, s = level[sib] if sib < len(level) else ("0" * 64, 0)
            out.append(Step(h, s, sib < i))
            i //= 2
        return out


def build(balances: dict[int, int], salt_of: dict[int, str]) -> SumTree:
    assert all(v >= 0 for v in balances.values()), "dev: liabilities are non-negative"
    ids = sorted(balances)
    level = [(leaf_hash(u, balances[u], salt_of[u]), balances[u]) for u in ids]
    if not level:
        level = [("0" * 64, 0)]
    levels = [level]
    while len(level) > 1:
        nxt = []
        for j in range(0, len(level), 2):
            lh, ls = level[j]
            rh, rs = level[j + 1] if j + 1 < len(level) else ("0" * 64, 0)
            nxt.append((node_hash(lh, ls, rh, rs), ls + rs))
        levels.append(nxt)
        level = nxt
    return SumTree(level[0][0], level[0][1], len(ids), levels, {u: k for k, u in enumerate(ids)})


def verify(
    user_id: int, balance_fen: int, salt: str, steps: list[Step], root_hash: str, total_fen: int
) -> bool:
    h, s = leaf_hash(user_id, balance_fen, salt), balance_fen
    for st in steps:
        if st.sibling_sum_fen < 0:
            return False
        if st.sibling_is_left:
            h = node_hash(st.sibling_hash, st.sibling_sum_fen, h, s)
        else:
            h = node_hash(h, s, st.sibling_hash, st.sibling_sum_fen)
        s += st.sibling_sum_fen
    return h == root_hash and s == total_fen
