"""Settings: `CROWDLEV_*` environment variables over an optional TOML file over defaults.

    CROWDLEV_DATA_DIR=./var  CROWDLEV_DATABASE_URL=postgresql+psycopg://...  crowdlev ...

The TOML file is named by `CROWDLEV_CONFIG` (or `--config` on the CLI); its keys are the field
names below. Secrets (private keys) are never printed: they are `SecretStr`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Shipped data (copied from ../shared/data with provenance in data/README.md).
SHIPPED_DATA = PROJECT_ROOT / "data"


# A TOML file named on the command line for this load only (does not leak into os.environ).
_toml_override: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CROWDLEV_", extra="forbid")

    data_dir: Path = Field(Path("./var"), description="state: chain snapshot, SQLite, reports")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<data_dir>/custody.db"
    )
    chain: Literal["embedded", "rpc"] = "embedded"
    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int | None = None
    deployer_key: SecretStr | None = Field(None, description="hex private key for RpcChain")
    chain_dev_keys: bool = Field(
        False, description="DEV ONLY (anvil): derive actor keys from `seed` and fund users"
    )
    market_data: Path = SHIPPED_DATA / "market" / "ashare_sample_2015-11_2016-03.csv"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    jwt_secret: SecretStr | None = None
    seed: int = 20160104
    # issue 16 (notifications): mail for margin warnings, fills, payouts (none: no mail)
    smtp_host: str | None = Field(None, description="SMTP host for notification mails")
    smtp_port: int = 25
    smtp_from: str = "noreply@crowdlev.local"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'custody.db').resolve()}"

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = _toml_override or os.environ.get("CROWDLEV_CONFIG")
        if toml:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml)))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Settings from env + optional TOML. A missing or invalid file is a ConfigError."""
    from pydantic import ValidationError

    from crowdleverage.domain.errors import ConfigError

    global _toml_override
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist")
    _toml_override = str(config_file) if config_file is not None else None
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
    finally:
        _toml_override = None
