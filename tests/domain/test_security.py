import pytest

from crowdleverage.domain.errors import CrowdLevError, InvalidInput, NotFound, PlatformPaused
from crowdleverage.domain.security import Board, Exchange, Security


@pytest.mark.parametrize(
    ("code", "exchange", "board"),
    [
        ("600000", Exchange.SSE, Board.MAIN),
        ("601318", Exchange.SSE, Board.MAIN),
        ("603900", Exchange.SSE, Board.MAIN),
        ("688981", Exchange.SSE, Board.STAR),
        ("000001", Exchange.SZSE, Board.MAIN),
        ("002164", Exchange.SZSE, Board.MAIN),
        ("300750", Exchange.SZSE, Board.CHINEXT),
        ("301236", Exchange.SZSE, Board.CHINEXT),
        ("430047", Exchange.BSE, Board.BSE),
        ("833819", Exchange.BSE, Board.BSE),
        ("920819", Exchange.BSE, Board.BSE),
        ("600000.SH", Exchange.SSE, Board.MAIN),
        ("sz300750", Exchange.SZSE, Board.CHINEXT),
    ],
)
def test_board_from_prefix(code: str, exchange: Exchange, board: Board) -> None:
    sec = Security.parse(code)
    assert (sec.exchange, sec.board) == (exchange, board)
    assert len(sec.code) == 6


@pytest.mark.parametrize("code", ["12345", "1234567", "999999", "399006", "abcdef", "600000.SZ"])
def test_bad_codes(code: str) -> None:
    with pytest.raises(InvalidInput):
        Security.parse(code)


def test_symbol() -> None:
    assert Security.parse("000001").symbol == "000001.SZ"
    assert Security.parse("688981").symbol == "688981.SH"


def test_errors_carry_status_and_exit_code() -> None:
    err = InvalidInput("bad amount", field="amount_fen")
    assert (err.http_status, err.exit_code) == (422, 2)
    assert err.to_dict() == {
        "error": "invalid_input",
        "message": "bad amount",
        "details": {"field": "amount_fen"},
    }
    assert NotFound("x").http_status == 404
    assert PlatformPaused("x").http_status == 503
    assert len({c.exit_code for c in (InvalidInput, NotFound, PlatformPaused)}) == 3
    assert issubclass(PlatformPaused, CrowdLevError)
