# pragma version ~=0.4.3
"""
@title LiabilityRoots
@custom:contract-name LiabilityRoots
@notice Public record of the proof-of-liabilities roots: one Merkle-sum root per epoch over
        every investor's balance (audit/proofs.py builds the tree). An investor checks an
        inclusion proof against the root published here, so the platform cannot show each
        investor a different book.
@custom:security Only an auditor or an operator (IdentityRegistry roles) publishes. An epoch
        is written once and epochs only increase: a published root can never be replaced.
@custom:kill Nothing to pause: the contract holds no assets; revoking the publishers' roles
        in the registry stops new publications.
"""

# ---------------------------------------------------------------- interfaces
from .interfaces import IIdentityRegistry

# ---------------------------------------------------------------- events
event RootPublished:
    epoch: indexed(uint256)
    root: bytes32
    total_fen: uint256
    publisher: indexed(address)


# ---------------------------------------------------------------- structs
struct Published:
    root: bytes32
    total_fen: uint256
    published_at: uint256


# ---------------------------------------------------------------- storage
# Who may publish (auditor or operator roles).
REGISTRY: public(immutable(IIdentityRegistry))

# Epoch → its root, total liabilities in fen and publication time; written once.
roots: public(HashMap[uint256, Published])

# Highest epoch published so far: epochs only increase, so history cannot be rewritten.
latest_epoch: public(uint256)

# Whether any root was published (epoch 0 is a valid first epoch).
has_root: public(bool)


@deploy
def __init__(registry: IIdentityRegistry):
    REGISTRY = registry


# ---------------------------------------------------------------- external
@external
def publish(epoch: uint256, root: bytes32, total_fen: uint256):
    """
    @notice Publish the liabilities root of `epoch` (auditor or operator).
    @param epoch Epoch number, greater than every epoch published before.
    @param root Merkle-sum root (sha256 over the tree, see audit/proofs.py).
    @param total_fen Sum of all investors' balances in the tree, in fen.
    """
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.AUDITOR) or (
        staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.OPERATOR)
    ), "roots: caller is not auditor or operator"
    assert root != empty(bytes32), "roots: empty root"
    assert not self.has_root or epoch > self.latest_epoch, "roots: epoch not after latest"
    self.roots[epoch] = Published(root=root, total_fen=total_fen, published_at=block.timestamp)
    self.latest_epoch = epoch
    self.has_root = True
    log RootPublished(epoch=epoch, root=root, total_fen=total_fen, publisher=msg.sender)
