"""Build the configured ChainPort from Settings (`CROWDLEV_CHAIN=embedded|rpc`).

Keys: the embedded chain uses development keys derived from `Settings.seed` (it is a local
simulation). RpcChain takes `CROWDLEV_CHAIN_KEY_<ACTOR>` variables and `CROWDLEV_DEPLOYER_KEY`
for the admin; development keys are used only when asked for (`dev_keys=True`, e.g. anvil)."""

from __future__ import annotations

from collections.abc import Iterable

from crowdleverage.chain.embedded import EmbeddedChain
from crowdleverage.chain.keys import SYSTEM_ACTORS, ActorKeys
from crowdleverage.chain.port import ChainPort
from crowdleverage.chain.rpc import RpcChain
from crowdleverage.config import Settings
from crowdleverage.domain.errors import ConfigError


def actor_keys(
    settings: Settings, *, dev_keys: bool = False, actors: Iterable[str] = SYSTEM_ACTORS
) -> ActorKeys:
    names = list(actors)
    if settings.chain == "embedded" or dev_keys:
        # DEV ONLY: users who register later (`user-<id>`) get keys from the same seed
        return ActorKeys.dev(settings.seed, names, on_demand=True)
    keys = dict(ActorKeys.from_env().keys)
    if settings.deployer_key is not None:
        keys.setdefault("admin", settings.deployer_key)
    missing = [n for n in names if n not in keys]
    if missing:
        raise ConfigError(
            "RpcChain needs a key per actor: set "
            + ", ".join(f"CROWDLEV_CHAIN_KEY_{n.upper()}" for n in missing)
        )
    return ActorKeys(keys)


def open_chain(
    settings: Settings,
    *,
    read_only: bool = False,
    dev_keys: bool = False,
    actors: Iterable[str] = SYSTEM_ACTORS,
) -> ChainPort:
    """The configured chain. Embedded: `<data_dir>/chain`, one writer (read_only for readers)."""
    keys = actor_keys(settings, dev_keys=dev_keys, actors=actors)
    data_dir = settings.data_dir if read_only else settings.ensure_data_dir()
    if settings.chain == "embedded":
        return EmbeddedChain(
            data_dir, keys, chain_id=settings.chain_id or 31337, read_only=read_only
        )
    chain = RpcChain(settings.rpc_url, keys, data_dir, controlled_clock=False)
    if settings.chain_id is not None and chain.chain_id != settings.chain_id:
        raise ConfigError(f"node chain id {chain.chain_id} != configured {settings.chain_id}")
    return chain
