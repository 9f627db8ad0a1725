"""TranchePool, TrancheShare and InsuranceFund: epochs, priorities, pro-rata fills, interest
waterfall, loss absorption, inflation-attack resistance, and every revert path."""

from __future__ import annotations

import boa
import pytest
from fin_system import YUAN, Platform, compiled

from crowdleverage.chain.roles import Role

YEAR_S = 365 * 86_400


@pytest.fixture
def investors(platform: Platform) -> tuple[str, str]:
    return (
        platform.new_actor("senior_investor", Role.INVESTOR),
        platform.new_actor("junior_investor", Role.INVESTOR),
    )


def test_subscriptions_wait_for_epoch_then_mint_at_virtual_price(
    platform: Platform, investors: tuple[str, str]
) -> None:
    p, (_, junior) = platform, investors
    p.invest(junior, False, 200_000 * YUAN)
    assert p.pool.escrow_fen() == 200_000 * YUAN
    assert p.junior.balanceOf(junior) == 0
    with boa.reverts("pool: epoch not over"):
        p.pool.close_epoch(sender=p.keeper)
    p.close_epoch()
    # 1 fen buys 1,000 share units in a fresh tranche (virtual offset)
    assert p.junior.balanceOf(junior) == 200_000 * YUAN * 1_000
    assert p.pool.junior_claim_fen() == p.pool.idle_fen() == 200_000 * YUAN
    assert p.pool.escrow_fen() == 0


def test_senior_subscription_capped_by_min_junior_ratio_pro_rata(
    platform: Platform, investors: tuple[str, str]
) -> None:
    p, (senior, junior) = platform, investors
    other = p.new_actor("other_senior", Role.INVESTOR)
    p.invest(junior, False, 100_000 * YUAN)
    p.invest(senior, True, 600_000 * YUAN)
    p.invest(other, True, 200_000 * YUAN)
    p.close_epoch()
    # junior 100k allows senior up to 400k (20% junior): 800k queued -> half each
    assert p.pool.senior_claim_fen() == 400_000 * YUAN
    assert p.pool.queued(3, senior) == 300_000 * YUAN
    assert p.pool.queued(3, other) == 100_000 * YUAN
    j, s = p.pool.junior_claim_fen(), p.pool.senior_claim_fen()
    assert j * 10_000 >= 2_000 * (j + s)
    # the rest executes once more junior arrives
    p.invest(junior, False, 100_000 * YUAN)
    p.close_epoch()
    assert p.pool.senior_claim_fen() == 800_000 * YUAN
    assert p.pool.queue_total(3) == 0


def test_redemption_priority_and_liquidity_buffer(
    platform: Platform, investors: tuple[str, str]
) -> None:
    p, (senior, junior) = platform, investors
    p.invest(senior, True, 800_000 * YUAN)
    p.invest(junior, False, 200_000 * YUAN)
    p.close_epoch()
    p.params.set_limits((10_000, 10_000, 100, 10_500, 30, 30_000), sender=p.operator)
    b = p.open_borrower("borrower", 1, 500_000 * YUAN)
    p.buy(b, 600000, 90_000)  # 900k yuan: 400k+ financed
    out = p.pool.principal_out_fen()
    assert out > 400_000 * YUAN
    p.pool.redeem(True, p.senior.balanceOf(senior), sender=senior)
    p.pool.redeem(False, p.junior.balanceOf(junior) // 2, sender=junior)
    p.close_epoch()
    # senior first, limited by the 90% buffer: principal_out <= 90% of what stays
    assets = p.pool.total_assets_fen()
    assert out * 10_000 <= 9_000 * assets
    paid_senior = p.pool.claimable_fen(senior)
    assert 0 < paid_senior < 800_000 * YUAN
    assert p.pool.claimable_fen(junior) == 0  # nothing left for junior this epoch
    assert p.pool.queue_total(0) > 0 and p.pool.queue_total(1) > 0
    p.pool.withdraw(sender=senior)
    assert p.cash.balanceOf(senior) == paid_senior
    with boa.reverts("pool: nothing to withdraw"):
        p.pool.withdraw(sender=senior)


def test_junior_redemption_keeps_min_junior_ratio(
    platform: Platform, investors: tuple[str, str]
) -> None:
    p, (senior, junior) = platform, investors
    p.invest(senior, True, 700_000 * YUAN)
    p.invest(junior, False, 300_000 * YUAN)
    p.close_epoch()
    p.pool.redeem(False, p.junior.balanceOf(junior), sender=junior)
    p.close_epoch()
    j, s = p.pool.junior_claim_fen(), p.pool.senior_claim_fen()
    assert j * 10_000 >= 2_000 * (j + s)
    assert j <= 175_000 * YUAN + 1  # 20% of 875k: ~125k paid out
    assert p.pool.claimable_fen(junior) == 300_000 * YUAN - j


def test_interest_waterfall_senior_first_then_premium_fee_junior(
    platform: Platform, investors: tuple[str, str]
) -> None:
    p, (senior, junior) = platform, investors
    p.invest(senior, True, 8_000_000 * YUAN)
    p.invest(junior, False, 2_000_000 * YUAN)
    p.close_epoch()
    p.params.set_limits((10_000, 10_000, 100, 10_500, 30, 30_000), sender=p.operator)
    b = p.open_borrower("borrower", 1, 400_000 * YUAN)
    p.buy(b, 600000, 79_000)
    boa.env.time_travel(seconds=YEAR_S // 12)
    debt = p.engine.debt_of(b)
    p.mint(b, debt)
    p.cash.approve(p.engine.address, debt, sender=b)
    p.engine.repay(debt, True, sender=b)
    interest = p.pool.interest_pending_fen()
    assert interest > 0
    s0, j0, ins0 = p.pool.senior_claim_fen(), p.pool.junior_claim_fen(), p.insurance.balance_fen()
    started = p.pool.epoch_started_at()
    p.pool.close_epoch(sender=p.keeper)
    elapsed = boa.env.timestamp - started
    senior_due = 8_000_000 * YUAN * 500 * elapsed // (10_000 * YEAR_S)
    to_senior = min(interest, senior_due)
    assert p.pool.senior_claim_fen() - s0 == to_senior
    premium = min(interest - to_senior, interest // 10)
    fee = min(interest - to_senior - premium, interest // 10)
    assert p.insurance.balance_fen() - ins0 == premium
    assert p.cash.balanceOf(p.fee_recipient) == fee
    assert p.pool.junior_claim_fen() - j0 == interest - to_senior - premium - fee
    assert p.pool.rates() == (500, 1_000, 1_000, 2_000, 9_000, 86_400)


def test_first_depositor_donation_cannot_inflate_price(
    platform: Platform, investors: tuple[str, str]
) -> None:
    p, (attacker, victim) = platform, investors
    p.invest(attacker, False, 1)  # 1 fen
    p.close_epoch()
    # a donation to the pool's address changes no accounting
    p.mint(attacker, 1_000_000 * YUAN)
    p.cash.transfer(p.pool.address, 1_000_000 * YUAN, sender=attacker)
    p.invest(victim, False, 10_000 * YUAN)
    p.close_epoch()
    assert p.pool.junior_claim_fen() == 10_000 * YUAN + 1
    p.pool.redeem(False, p.junior.balanceOf(victim), sender=victim)
    p.close_epoch()
    assert p.pool.claimable_fen(victim) >= 10_000 * YUAN - 1


def test_cancel_returns_cash_and_shares(platform: Platform, investors: tuple[str, str]) -> None:
    p, (_, junior) = platform, investors
    p.invest(junior, False, 5_000 * YUAN)
    p.pool.cancel(2, sender=junior)
    assert p.cash.balanceOf(junior) == 5_000 * YUAN
    assert p.pool.queue_total(2) == 0
    with boa.reverts("pool: nothing queued"):
        p.pool.cancel(2, sender=junior)
    with boa.reverts("pool: unknown queue"):
        p.pool.cancel(4, sender=junior)
    p.cash.approve(p.pool.address, 5_000 * YUAN, sender=junior)
    p.pool.subscribe(False, 5_000 * YUAN, sender=junior)
    p.close_epoch()
    shares = p.junior.balanceOf(junior)
    p.pool.redeem(False, shares, sender=junior)
    assert p.junior.balanceOf(junior) == 0
    p.pool.cancel(1, sender=junior)
    assert p.junior.balanceOf(junior) == shares


def test_pool_rejections(platform: Platform, investors: tuple[str, str]) -> None:
    p, (senior, _) = platform, investors
    with boa.reverts("pool: caller is not investor"):
        p.pool.subscribe(True, 1, sender=p.outsider)
    with boa.reverts("pool: zero amount"):
        p.pool.subscribe(True, 0, sender=senior)
    with boa.reverts("pool: caller is not investor"):
        p.pool.redeem(True, 1, sender=p.outsider)
    with boa.reverts("pool: zero amount"):
        p.pool.redeem(True, 0, sender=senior)
    with boa.reverts("pool: insufficient shares"):
        p.pool.redeem(True, 1, sender=senior)
    for fn, args in (
        ("draw", (1,)), ("repay", (1, 0)), ("absorb_shortfall", (1, 0)),
        ("settle", (p.broker, 1, 0, 0, 0)),
    ):  # fmt: skip
        with boa.reverts("pool: caller is not engine"):
            getattr(p.pool, fn)(*args, sender=p.operator)
    # the engine spends only the financing its open buy orders drew (none yet)
    assert p.pool.undisbursed_fen() == 0
    with boa.reverts("pool: above undisbursed financing"):
        p.pool.settle(p.broker, 1, 0, 0, 0, sender=p.engine.address)
    with boa.reverts("pool: already connected"):
        p.pool.connect(p.engine.address, p.insurance.address, sender=p.operator)
    with boa.reverts("pool: caller is not operator"):
        p.pool.set_params(2_000, 9_000, 500, 1_000, 1_000, 86_400, sender=p.outsider)
    bad = [
        ((0, 9_000, 500, 1_000, 1_000, 1), "pool: min junior not in 1..9999 bps"),
        ((2_000, 0, 500, 1_000, 1_000, 1), "pool: max utilisation not in 1..10000 bps"),
        ((2_000, 9_000, 10_001, 1_000, 1_000, 1), "pool: senior apr above 100%"),
        ((2_000, 9_000, 500, 6_000, 5_000, 1), "pool: premium + fee above 100%"),
        ((2_000, 9_000, 500, 1_000, 1_000, 0), "pool: zero epoch"),
    ]
    for args, reason in bad:
        with boa.reverts(reason):
            p.pool.set_params(*args, sender=p.operator)
    p.engine.pause(sender=p.operator)
    with boa.reverts("pool: paused"):
        p.pool.subscribe(True, 1, sender=senior)
    boa.env.time_travel(seconds=86_400)
    with boa.reverts("pool: paused"):
        p.pool.close_epoch(sender=p.keeper)


def test_queue_is_bounded(platform: Platform) -> None:
    p = platform
    for i in range(32):
        p.invest(p.new_actor(f"inv{i}", Role.INVESTOR), False, 100)
    late = p.new_actor("late", Role.INVESTOR)
    p.mint(late, 100)
    p.cash.approve(p.pool.address, 100, sender=late)
    with boa.reverts("pool: queue full"):
        p.pool.subscribe(False, 100, sender=late)


def test_tranche_share_transfers_only_between_verified(
    platform: Platform, investors: tuple[str, str]
) -> None:
    p, (senior, junior) = platform, investors
    p.invest(senior, True, 100 * YUAN)
    p.invest(junior, False, 100 * YUAN)
    p.close_epoch()
    with boa.reverts("share: receiver not verified"):
        p.senior.transfer(p.outsider, 1, sender=senior)
    p.senior.transfer(junior, 5, sender=senior)
    assert p.senior.balanceOf(junior) == 5
    p.senior.approve(p.keeper, 7, sender=senior)
    p.senior.transferFrom(senior, junior, 7, sender=p.keeper)
    assert p.senior.balanceOf(junior) == 12
    for fn, args in (("mint", (senior, 1)), ("burn", (senior, 1)), ("escrow", (senior, junior, 1))):
        with boa.reverts("share: caller is not pool"):
            getattr(p.senior, fn)(*args, sender=senior)
    with boa.reverts("share: zero address"):
        p.senior.transfer("0x" + "00" * 20, 1, sender=senior)


def test_insurance_credit_cover_and_rejections(platform: Platform) -> None:
    p = platform
    with boa.reverts("insurance: cash not received"):
        p.insurance.credit(100, 0, sender=p.operator)
    p.mint(p.operator, 100)
    p.cash.transfer(p.insurance.address, 100, sender=p.operator)
    p.insurance.credit(100, 0, sender=p.operator)
    assert p.insurance.balance_fen() == 100
    with boa.reverts("insurance: caller is not operator"):
        p.insurance.credit(1, 0, sender=p.outsider)
    with boa.reverts("insurance: caller is not pool"):
        p.insurance.credit(1, 1, sender=p.operator)
    with boa.reverts("insurance: caller is not engine"):
        p.insurance.credit(1, 2, sender=p.operator)
    with boa.reverts("insurance: unknown kind"):
        p.insurance.credit(1, 3, sender=p.operator)
    with boa.reverts("insurance: zero amount"):
        p.insurance.credit(0, 0, sender=p.operator)
    with boa.reverts("insurance: caller is not pool"):
        p.insurance.cover(1, 0, sender=p.operator)
    with boa.reverts("insurance: engine already set"):
        p.insurance.set_engine(p.engine.address, sender=p.operator)
    with boa.reverts("insurance: caller is not operator"):
        p.insurance.set_engine(p.engine.address, sender=p.outsider)
    # the pool draws at most the balance
    with boa.env.prank(p.pool.address):
        assert p.insurance.cover(250, 30) == 100
    assert p.insurance.balance_fen() == 0
    assert p.cash.balanceOf(p.pool.address) == 100


def test_unconnected_pool_and_fund_refuse_work(platform: Platform) -> None:
    p = platform
    blueprint = compiled("TrancheShare").deploy_as_blueprint()
    zero = "0x" + "00" * 20
    with boa.reverts("pool: zero address"):  # the engine it will serve is fixed at deployment
        compiled("TranchePool").deploy(
            p.cash.address, p.registry.address, blueprint.address, p.fee_recipient, zero
        )
    pool = compiled("TranchePool").deploy(
        p.cash.address, p.registry.address, blueprint.address, p.fee_recipient, p.outsider
    )
    fund = compiled("InsuranceFund").deploy(p.cash.address, p.registry.address, pool.address)
    investor = p.new_actor("early_investor", Role.INVESTOR)
    with boa.reverts("pool: not connected"):
        pool.subscribe(True, 1, sender=investor)
    with boa.reverts("pool: zero address"):
        pool.connect(zero, fund.address, sender=p.operator)
    with boa.reverts("pool: not the deployed engine"):
        pool.connect(p.engine.address, fund.address, sender=p.operator)
    with boa.reverts("pool: caller is not engine"):  # only the engine it was deployed for
        pool.draw(1, sender=p.engine.address)
    with boa.reverts("insurance: zero address"):
        fund.set_engine(zero, sender=p.operator)


def test_revoked_holder_cannot_move_tranche_shares(
    platform: Platform, investors: tuple[str, str]
) -> None:
    p, (senior, junior) = platform, investors
    p.invest(senior, True, 100 * YUAN)
    p.close_epoch()
    p.registry.revoke(senior, sender=p.compliance)
    with boa.reverts("share: sender not verified"):
        p.senior.transfer(junior, 1, sender=senior)
