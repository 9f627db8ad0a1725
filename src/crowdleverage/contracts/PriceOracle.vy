# pragma version ~=0.4.3
"""
@title PriceOracle
@custom:contract-name PriceOracle
@notice Prices of A-share securities in fen per share. At each day open the operator advances
        the trading-day counter (`open_day`) and sets, per security, the previous close, the
        board's limit band and the halted flag (`set_day_params`). Reporters (REPORTER role)
        submit prices; a report outside today's band is rejected. The price is the median of
        today's in-band reports fresher than `max_age_s` from at least `quorum` distinct
        reporters; otherwise the security is unreliable (borrowing stops) and
        `conservative_price` values it at the worst legal price of the day (the limit-down
        price), or at the previous close while it is halted.
        The trading-day counter is also the platform's T+1 clock (ShareCertificates reads it).
        Security codes are the six-digit code as an integer: "600000" -> 600000, "000001" -> 1.
@custom:security A minority of manipulated reporters cannot move the median outside the honest
        reporters' range, and nobody can land a price outside the legal band. A compromised
        operator can set a wrong band; watch `DayParamsSet`.
@custom:kill Halt a security with `set_day_params(..., halted=True)`: reports are refused and
        the security is unreliable; revoke a reporter in the IdentityRegistry (its reports
        age out after `max_age_s`).
"""

# ---------------------------------------------------------------- interfaces
from .interfaces import IIdentityRegistry
from .interfaces import IPriceOracle

implements: IPriceOracle

# ---------------------------------------------------------------- events
event DayOpened:
    day_before: uint256
    day_after: uint256
    by: indexed(address)


event DaySinkSet:
    sink: indexed(address)
    by: indexed(address)


event DayParamsSet:
    code: indexed(uint256)
    day: uint256
    prev_close_fen: uint256
    limit_down_fen: uint256
    limit_up_fen: uint256
    halted: bool


event PriceReported:
    code: indexed(uint256)
    reporter: indexed(address)
    day: uint256
    price_before_fen: uint256
    price_fen: uint256


event ParamsSet:
    max_age_before_s: uint256
    max_age_after_s: uint256
    quorum_before: uint256
    quorum_after: uint256


# ---------------------------------------------------------------- structs
struct DayParams:
    day: uint256  # trading day these parameters belong to; stale on any other day
    prev_close_fen: uint256
    limit_down_fen: uint256
    limit_up_fen: uint256
    halted: bool


struct DayInput:
    code: uint256
    prev_close_fen: uint256
    limit_down_fen: uint256
    limit_up_fen: uint256
    halted: bool

# ---------------------------------------------------------------- constants
MAX_REPORTERS: constant(uint256) = 16
MAX_BATCH: constant(uint256) = 64
MAX_CODES: constant(uint256) = 10  # securities of one margin account (`quotes`)
CODE_LIMIT: constant(uint256) = 1_000_000
# Reports are packed in one slot: price (bits 128..255), day (64..127), timestamp (0..63).
MASK64: constant(uint256) = 2**64 - 1
M32: constant(uint256) = 2**32 - 1
M40: constant(uint256) = 2**40 - 1
# The security word (see `bands`): the band part (bits 0..152) and where the median starts.
BAND_MASK: constant(uint256) = 2**153 - 1
STAMP_MASK: constant(uint256) = 2**18 - 1

# ---------------------------------------------------------------- storage
# Who holds the REPORTER and OPERATOR roles.
REGISTRY: public(immutable(IIdentityRegistry))

# One slot, read by every price read: the trading-day counter advanced by the operator at
# each day open, the platform's T+1 clock (64 bits) | the freshness window: a report older
# than this many seconds no longer counts towards the median (64 << 64) | the minimum number
# of distinct fresh reporters for a reliable price (8 << 128) | how many times the window
# was set (118 << 136: the stamp of a stored median, see `bands`). Getters `trading_day`,
# `max_age_s`, `quorum`.
cfg: uint256

# Per security, one slot read by every price read: the band of the day it was last set for,
# day (32 bits) | prev close (40 << 32) | limit-down (40 << 72) | limit-up (40 << 112) |
# halted (1 << 152) (read with `day_params`); then the median as of the last report,
# computed when the report lands so that a read is this one slot: median (40 << 153) |
# reports counted (5 << 193) | valid until (40 << 198: the first moment one of the counted
# reports ages out) | stamp (18 << 238: the low bits of the window count it was computed
# under). Setting the band clears the median; a read uses it while the stamp matches and no
# counted report has aged out, otherwise it computes the median from the reports (same
# result: only a cache).
bands: HashMap[uint256, uint256]

# The ShareCertificates that mirror the trading day (set once, `set_day_sink`): `open_day`
# tells it the new day, so that a buy fill (`ShareCertificates.mint_fill`, which gives the
# day to the OrderBook and the MarginEngine) reads no slot of this contract.
day_sink: public(address)


interface IDaySink:
    def oracle_day(day: uint256): nonpayable


# Per security: reporters that reported it (bounded; slots of earlier days are reused).
reporters: public(HashMap[uint256, DynArray[address, MAX_REPORTERS]])

# Per security and reporter: its latest report, packed (see MASK64).
reports: HashMap[uint256, HashMap[address, uint256]]


@deploy
def __init__(registry: IIdentityRegistry, max_age_s: uint256, quorum: uint256):
    assert registry.address != empty(address), "oracle: zero registry"
    assert max_age_s > 0, "oracle: zero max age"
    assert quorum >= 1 and quorum <= MAX_REPORTERS, "oracle: quorum not in 1..16"
    assert max_age_s < 2**64, "oracle: max age too large"
    REGISTRY = registry
    self.cfg = max_age_s << 64 | quorum << 128


# ---------------------------------------------------------------- internal logic: checks
@internal
@view
def _check_operator():
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.OPERATOR), (
        "oracle: caller is not operator"
    )


@internal
@view
def _check_reporter():
    assert staticcall REGISTRY.has_role(msg.sender, IIdentityRegistry.Role.REPORTER), (
        "oracle: caller is not reporter"
    )


@internal
@pure
def _check_code(code: uint256):
    assert code > 0 and code < CODE_LIMIT, "oracle: bad security code"


@internal
@view
def _dp(code: uint256) -> DayParams:
    w: uint256 = self.bands[code]
    return DayParams(
        day=w & M32,
        prev_close_fen=(w >> 32) & M40,
        limit_down_fen=(w >> 72) & M40,
        limit_up_fen=(w >> 112) & M40,
        halted=(w >> 152) & 1 != 0,
    )


# ---------------------------------------------------------------- internal logic: median
@internal
@view
def _today() -> uint256:
    return self.cfg & MASK64


@internal
@view
def _max_age() -> uint256:
    return (self.cfg >> 64) & MASK64


@internal
@view
def _quorum() -> uint256:
    return (self.cfg >> 128) & 255


@internal
@view
def _median(code: uint256) -> (uint256, uint256, uint256):
    """
    @dev Median of today's fresh in-band reports, how many there were and the last moment
         all of them stay fresh. An even count takes the mean of the two middle reports
         rounded down (platform-favouring value).
    """
    dp: DayParams = self._dp(code)
    today: uint256 = self._today()
    max_age: uint256 = self._max_age()
    until: uint256 = MASK64
    prices: DynArray[uint256, MAX_REPORTERS] = []
    for reporter: address in self.reporters[code]:
        packed: uint256 = self.reports[code][reporter]
        ts: uint256 = packed & MASK64
        day: uint256 = (packed >> 64) & MASK64
        p: uint256 = packed >> 128
        if day != today or ts + max_age < block.timestamp:
            continue
        if p < dp.limit_down_fen or p > dp.limit_up_fen:
            continue
        until = min(until, ts + max_age)
        # insertion sort: at most 16 elements
        prices.append(p)
        i: uint256 = len(prices) - 1
        for _: uint256 in range(MAX_REPORTERS):
            if i == 0 or prices[i - 1] <= prices[i]:
                break
            tmp: uint256 = prices[i - 1]
            prices[i - 1] = prices[i]
            prices[i] = tmp
            i -= 1
    n: uint256 = len(prices)
    if n == 0:
        return 0, 0, until
    if n % 2 == 1:
        return prices[n // 2], n, until
    # dev: both middle prices are in band, so their floor mean is too
    return (prices[n // 2 - 1] + prices[n // 2]) // 2, n, until


@internal
@view
def _current(code: uint256, band: uint256, c: uint256) -> (uint256, uint256):
    """
    @dev (median, count) of today's fresh in-band reports: the median stored at the last
         report while it is still exact, else computed from the reports. `band` and `c` are
         the security's word and the config word, as stored.
    """
    # dev: stored on the band's day under the same window, no counted report aged out
    if (
        band >> 238 == (c >> 136) & STAMP_MASK and band & M32 == c & MASK64
        and block.timestamp <= (band >> 198) & M40
    ):
        return (band >> 153) & M40, (band >> 193) & 31
    median: uint256 = 0
    n: uint256 = 0
    until: uint256 = 0
    median, n, until = self._median(code)
    return median, n


@internal
def _aggregate(code: uint256):
    """
    @dev Store the median of `code` as of now (after a report landed).
    """
    median: uint256 = 0
    n: uint256 = 0
    until: uint256 = 0
    median, n, until = self._median(code)
    # dev: median <= limit-up < 2**40 and n <= 16; an `until` beyond 2**40 s is never reached
    self.bands[code] = (
        self.bands[code] & BAND_MASK | median << 153 | n << 193 | min(until, M40) << 198
        | ((self.cfg >> 136) & STAMP_MASK) << 238
    )


@internal
@view
def _band_today(code: uint256) -> bool:
    today: uint256 = self._today()
    return today != 0 and self._dp(code).day == today


@internal
@view
def _reliable(code: uint256) -> (bool, uint256):
    # dev: one read of the config word and of the band word
    c: uint256 = self.cfg
    w: uint256 = self.bands[code]
    if c & MASK64 == 0 or w & M32 != c & MASK64 or (w >> 152) & 1 != 0:
        return False, 0
    median: uint256 = 0
    n: uint256 = 0
    median, n = self._current(code, w, c)
    return n >= (c >> 128) & 255, median


# ---------------------------------------------------------------- internal logic: writes
@internal
def _set_day_params(d: DayInput):
    self._check_code(d.code)
    assert d.limit_down_fen > 0, "oracle: zero limit-down price"
    assert d.limit_down_fen <= d.prev_close_fen and d.prev_close_fen <= d.limit_up_fen, (
        "oracle: prev close outside band"
    )
    assert d.prev_close_fen <= M40, "oracle: price too large"
    # dev: a limit-up above 2^40 - 1 fen (a day without a price limit) is stored as that
    today: uint256 = self._today()
    self.bands[d.code] = (
        today | d.prev_close_fen << 32 | d.limit_down_fen << 72
        | min(d.limit_up_fen, M40) << 112 | convert(d.halted, uint256) << 152
    )
    log DayParamsSet(
        code=d.code,
        day=today,
        prev_close_fen=d.prev_close_fen,
        limit_down_fen=d.limit_down_fen,
        limit_up_fen=d.limit_up_fen,
        halted=d.halted,
    )


@internal
def _add_reporter(code: uint256, reporter: address):
    """
    @dev Append `reporter` to the security's list; when the list is full, reuse the slot of a
         reporter whose last report is from an earlier day (it no longer counts anyway).
    """
    if len(self.reporters[code]) < MAX_REPORTERS:
        self.reporters[code].append(reporter)
        return
    today: uint256 = self._today()
    for i: uint256 in range(MAX_REPORTERS):
        old: address = self.reporters[code][i]
        if (self.reports[code][old] >> 64) & MASK64 != today:
            self.reports[code][old] = 0
            self.reporters[code][i] = reporter
            return
    raise "oracle: too many reporters"


@internal
def _report(code: uint256, price_fen: uint256):
    self._check_code(code)
    assert self._band_today(code), "oracle: band not set for today"
    dp: DayParams = self._dp(code)
    assert not dp.halted, "oracle: security halted"
    assert price_fen >= dp.limit_down_fen and price_fen <= dp.limit_up_fen, (
        "oracle: price outside band"
    )
    before: uint256 = self.reports[code][msg.sender]
    if before == 0:
        self._add_reporter(code, msg.sender)
    # dev: price <= limit_up < 2**128 in practice; day and timestamp < 2**64
    assert price_fen < 2**128, "oracle: price too large"
    today: uint256 = self._today()
    self.reports[code][msg.sender] = (price_fen << 128) | (today << 64) | block.timestamp
    self._aggregate(code)
    log PriceReported(
        code=code,
        reporter=msg.sender,
        day=today,
        price_before_fen=before >> 128,
        price_fen=price_fen,
    )


# ---------------------------------------------------------------- external: views
@external
@view
def trading_day() -> uint256:
    """
    @notice The trading-day counter (the platform's T+1 clock; 0 before the first day open).
    """
    return self._today()


@external
@view
def max_age_s() -> uint256:
    """
    @notice A report older than this many seconds no longer counts towards the median.
    """
    return self._max_age()


@external
@view
def quorum() -> uint256:
    """
    @notice Minimum number of distinct fresh reporters for a reliable price.
    """
    return self._quorum()


@external
@view
def day_params(code: uint256) -> DayParams:
    """
    @notice The band of `code` as set at its last day open (all zero if never set).
    """
    return self._dp(code)


@external
@view
def price(code: uint256) -> uint256:
    """
    @notice The median price in fen; reverts "oracle: price unreliable" when there is no
            reliable price (no band today, halted, or fewer than `quorum` fresh reports).
    """
    ok: bool = False
    median: uint256 = 0
    ok, median = self._reliable(code)
    assert ok, "oracle: price unreliable"
    return median


@external
@view
def conservative_price(code: uint256) -> uint256:
    """
    @notice A price that never overstates value: the median when reliable, the previous close
            while halted, today's limit-down price otherwise, 0 when today's band is not set.
    """
    return self._conservative(code, self.cfg)


@internal
@view
def _conservative(code: uint256, c: uint256) -> uint256:
    """
    @dev `conservative_price` of `code` under the config word `c`.
    """
    w: uint256 = self.bands[code]
    if c & MASK64 == 0 or w & M32 != c & MASK64:
        return 0
    if (w >> 152) & 1 != 0:
        return (w >> 32) & M40  # halted: the previous close
    median: uint256 = 0
    n: uint256 = 0
    median, n = self._current(code, w, c)
    if n >= (c >> 128) & 255:
        return median
    return (w >> 72) & M40  # unreliable: the limit-down price


@external
@view
def quotes(code: uint256, codes: uint256[MAX_CODES]) -> (uint256, uint256, uint256[MAX_CODES], uint256):
    """
    @notice What the margin engine values an account and prices a buy with, in one call
            (each slot read once): the trading day, the reliable price of `code`, the
            conservative price of each of `codes` and the halted flags.
    @param code The security bought (0: none).
    @param codes Securities held, 0 after the last.
    @return The trading day; the median of `code` when reliable (as `price`), else 0; the
            `conservative_price` of each of `codes` (0 after the last); the halted flags as
            set at the last day open: bit i for codes[i], bit 255 for `code`.
    """
    c: uint256 = self.cfg
    price: uint256 = 0
    flags: uint256 = 0
    if code != 0:
        w: uint256 = self.bands[code]
        flags = ((w >> 152) & 1) << 255
        if c & MASK64 != 0 and w & M32 == c & MASK64 and flags == 0:
            median: uint256 = 0
            n: uint256 = 0
            median, n = self._current(code, w, c)
            if n >= (c >> 128) & 255:
                price = median
    prices: uint256[MAX_CODES] = empty(uint256[MAX_CODES])
    for i: uint256 in range(MAX_CODES):
        if codes[i] == 0:
            break
        prices[i] = self._conservative(codes[i], c)
        flags |= ((self.bands[codes[i]] >> 152) & 1) << i
    return c & MASK64, price, prices, flags


@external
@view
def is_reliable(code: uint256) -> bool:
    """
    @notice True when `price(code)` would answer.
    """
    ok: bool = False
    median: uint256 = 0
    ok, median = self._reliable(code)
    return ok


@external
@view
def latest(code: uint256) -> (uint256, uint256, bool):
    """
    @notice (median of fresh in-band reports, number of them, reliable) for monitoring.
    """
    median: uint256 = 0
    n: uint256 = 0
    median, n = self._current(code, self.bands[code], self.cfg)
    dp: DayParams = self._dp(code)
    ok: bool = self._band_today(code) and not dp.halted and n >= self._quorum()
    return median, n, ok


@external
@view
def report_of(code: uint256, reporter: address) -> (uint256, uint256, uint256):
    """
    @notice (price_fen, trading day, timestamp) of `reporter`'s latest report for `code`.
    """
    packed: uint256 = self.reports[code][reporter]
    return packed >> 128, (packed >> 64) & MASK64, packed & MASK64


@external
@view
def prev_close(code: uint256) -> uint256:
    """
    @notice Previous close in fen as set at the last day open of `code` (0 if never set).
    """
    return self._dp(code).prev_close_fen


@external
@view
def band(code: uint256) -> (uint256, uint256):
    """
    @notice (limit_down_fen, limit_up_fen) as set at the last day open of `code`.
    """
    dp: DayParams = self._dp(code)
    return dp.limit_down_fen, dp.limit_up_fen


@external
@view
def halted(code: uint256) -> bool:
    """
    @notice The halted flag as set at the last day open of `code`.
    """
    return self._dp(code).halted


@external
@view
def is_sealed_limit_down(code: uint256) -> bool:
    """
    @notice True when the reliable price equals today's limit-down price: sells cannot fill.
    """
    ok: bool = False
    median: uint256 = 0
    ok, median = self._reliable(code)
    return ok and median == self._dp(code).limit_down_fen


# ---------------------------------------------------------------- external: operator
@external
def open_day(day: uint256):
    """
    @notice Operator: open trading day `day` (strictly after the current one). Bands and
            reports of earlier days stop counting.
    """
    self._check_operator()
    c: uint256 = self.cfg
    assert day > c & MASK64, "oracle: day must advance"
    assert day <= M32, "oracle: day too large"
    log DayOpened(day_before=c & MASK64, day_after=day, by=msg.sender)
    self.cfg = c >> 64 << 64 | day
    sink: address = self.day_sink
    if sink != empty(address):
        extcall IDaySink(sink).oracle_day(day)


@external
def set_day_sink(sink: address):
    """
    @notice Operator, once: the ShareCertificates whose custody fills take the trading day
            from their own slot; it is told the current day now and each new day by
            `open_day` (so its day is always this contract's `trading_day`).
    @param sink The ShareCertificates (a contract built on this oracle).
    """
    self._check_operator()
    assert self.day_sink == empty(address), "oracle: day sink already set"
    assert sink.is_contract, "oracle: day sink not a contract"
    self.day_sink = sink
    log DaySinkSet(sink=sink, by=msg.sender)
    today: uint256 = self._today()
    if today != 0:
        extcall IDaySink(sink).oracle_day(today)


@external
def set_day_params(
    code: uint256, prev_close_fen: uint256, limit_down_fen: uint256, limit_up_fen: uint256,
    halted: bool,
):
    """
    @notice Operator: today's previous close, limit band and halted flag of one security.
    """
    self._check_operator()
    assert self._today() != 0, "oracle: no day open"
    self._set_day_params(
        DayInput(
            code=code,
            prev_close_fen=prev_close_fen,
            limit_down_fen=limit_down_fen,
            limit_up_fen=limit_up_fen,
            halted=halted,
        )
    )


@external
def set_day_params_many(inputs: DynArray[DayInput, MAX_BATCH]):
    """
    @notice Operator: `set_day_params` for up to 64 securities in one transaction.
    """
    self._check_operator()
    assert self._today() != 0, "oracle: no day open"
    for d: DayInput in inputs:
        self._set_day_params(d)


@external
def set_params(max_age_s: uint256, quorum: uint256):
    """
    @notice Operator: freshness window and quorum.
    """
    self._check_operator()
    assert max_age_s > 0, "oracle: zero max age"
    assert max_age_s < 2**64, "oracle: max age too large"
    assert quorum >= 1 and quorum <= MAX_REPORTERS, "oracle: quorum not in 1..16"
    log ParamsSet(
        max_age_before_s=self._max_age(),
        max_age_after_s=max_age_s,
        quorum_before=self._quorum(),
        quorum_after=quorum,
    )
    # dev: medians stored under the old window no longer match the stamp
    c: uint256 = self.cfg
    self.cfg = c & MASK64 | max_age_s << 64 | quorum << 128 | ((c >> 136) + 1) << 136


# ---------------------------------------------------------------- external: reporters
@external
def report(code: uint256, price_fen: uint256):
    """
    @notice Reporter: submit a price in fen for `code` (must lie in today's band).
    """
    self._check_reporter()
    self._report(code, price_fen)


@external
def report_many(codes: DynArray[uint256, MAX_BATCH], prices_fen: DynArray[uint256, MAX_BATCH]):
    """
    @notice Reporter: submit up to 64 prices at once; all land or none.
    """
    self._check_reporter()
    assert len(codes) == len(prices_fen), "oracle: length mismatch"
    for i: uint256 in range(len(codes), bound=MAX_BATCH):
        self._report(codes[i], prices_fen[i])
