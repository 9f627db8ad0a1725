from pathlib import Path

import pytest

from crowdleverage.config import load_settings
from crowdleverage.domain.errors import ConfigError


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROWDLEV_CONFIG", raising=False)
    s = load_settings()
    assert s.data_dir == Path("./var")
    assert s.chain == "embedded"
    assert s.resolved_database_url.startswith("sqlite:///")
    assert s.market_data.is_file()


def test_env_overrides_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "crowdlev.toml"
    cfg.write_text('data_dir = "/srv/cl"\nchain = "rpc"\napi_port = 9000\n')
    monkeypatch.setenv("CROWDLEV_API_PORT", "9100")
    s = load_settings(cfg)
    assert (s.data_dir, s.chain, s.api_port) == (Path("/srv/cl"), "rpc", 9100)


def test_secret_is_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROWDLEV_CONFIG", raising=False)
    monkeypatch.setenv("CROWDLEV_DEPLOYER_KEY", "0x" + "ab" * 32)
    s = load_settings()
    assert "abab" not in repr(s)
    assert s.deployer_key is not None and s.deployer_key.get_secret_value().endswith("ab")


@pytest.mark.parametrize("text", ['chain = "mainnet"\n', "no_such_key = 1\n", "api_port = 'x'\n"])
def test_invalid_config_is_a_config_error(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(cfg)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "none.toml")
