# pragma version ~=0.4.3
"""
@title Shared constants of the financing contracts
@notice Imported by MarginEngine and Liquidator (a module with constants only: no storage,
        no code). Units: bps of 1/10,000, fen, seconds.
"""

BPS: constant(uint256) = 10_000
RAY: constant(uint256) = 10**27
YEAR_S: constant(uint256) = 365 * 86_400
MAX_CODES: constant(uint256) = 10  # securities held or being bought per account
MAX_TIERS: constant(uint256) = 8
LOT: constant(uint256) = 100  # shares per board lot
NEW_LISTING_DAYS: constant(uint256) = 5  # a new listing is not financeable for 5 trading days
HALTED_HAIRCUT_BPS: constant(uint256) = 5_000  # a halted security counts at most 50%
MAX_RATIO: constant(uint256) = max_value(uint256)  # the ratio of an account without debt
