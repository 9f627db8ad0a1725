"""Publishing proof-of-liabilities roots on chain (`LiabilityRoots`), and reading them back so
that an investor's proof is checked against the public record, not only the platform's DB."""

from __future__ import annotations

from crowdleverage.chain.port import ChainPort
from crowdleverage.domain.errors import IntegrityFailure

CONTRACT = "LiabilityRoots"


class ChainRootPublisher:
    """`RootPublisher` on any ChainPort where `LiabilityRoots` is deployed."""

    def __init__(self, port: ChainPort, actor: str = "operator") -> None:
        self.port = port
        self.actor = actor

    def publish_liabilities_root(self, epoch: int, root: bytes, total_fen: int) -> str:
        if len(root) != 32:
            raise IntegrityFailure(f"a liabilities root is 32 bytes, got {len(root)}")
        return self.port.send(CONTRACT, "publish", epoch, root, total_fen, actor=self.actor).tx_hash

    def published_root(self, epoch: int) -> tuple[str, int] | None:
        """(root hex, total fen) published for `epoch`, or None if nothing was."""
        root, total_fen, published_at = self.port.call(CONTRACT, "roots", epoch)
        if published_at == 0:
            return None
        # the port's codec gives bytes32 as "0x…" text
        root_hex = root.removeprefix("0x") if isinstance(root, str) else bytes(root).hex()
        return root_hex.lower(), int(total_fen)

    def check(self, epoch: int, root_hex: str, total_fen: int) -> None:
        """Raise IntegrityFailure unless (root, total) is what was published for `epoch`."""
        published = self.published_root(epoch)
        if published is None:
            raise IntegrityFailure(f"no liabilities root is published on chain for epoch {epoch}")
        if published != (root_hex, total_fen):
            raise IntegrityFailure(
                f"proof root differs from the root published on chain for epoch {epoch}"
            )
