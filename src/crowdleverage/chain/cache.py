"""`CachedReads`: a ChainPort whose view calls are memoised for the current block.

The dashboards and the API read the same views many times between two transactions (every
account's state, positions, the pool's figures); a block's state never changes, so a view's
answer is reused until the chain's block number moves. Everything else passes through;
`before_send`, when given, runs before every transaction (the platform makes its record
durable there: `custody.db.barrier`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class CachedReads:
    def __init__(
        self,
        chain: Any,
        max_entries: int = 50_000,
        *,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        self._chain = chain
        self._before_send = before_send
        self._block = -1
        self._max = max_entries
        self._memo: dict[tuple[Any, ...], Any] = {}
        self.hits = 0
        self.misses = 0

    def call(self, contract: str, fn: str, *args: Any, actor: str | None = None) -> Any:
        block = self._chain.block_number()
        if block != self._block or len(self._memo) >= self._max:
            self._memo.clear()
            self._block = block
        key = (contract, fn, args, actor)
        try:
            found = self._memo[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable argument (a list): not cached
            return self._chain.call(contract, fn, *args, actor=actor)
        else:
            self.hits += 1
            return found
        self.misses += 1
        value = self._chain.call(contract, fn, *args, actor=actor)
        self._memo[key] = value
        return value

    def send(self, contract: str, fn: str, *args: Any, actor: str) -> Any:
        if self._before_send is not None:
            self._before_send()
        return self._chain.send(contract, fn, *args, actor=actor)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chain, name)
