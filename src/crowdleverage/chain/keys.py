"""Actor keys. Private keys are `SecretStr` and never logged or printed.

Development and tests derive one key per actor name from a seed (DEV ONLY: anyone who knows the
seed knows the keys). Production passes explicit keys, e.g. from `CROWDLEV_CHAIN_KEY_<ACTOR>`
environment variables or `Settings.deployer_key` for the admin."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from eth_account import Account
from eth_utils import keccak
from pydantic import SecretStr

from crowdleverage.domain.errors import ConfigError

# The actors the deploy script needs; more (investors, borrowers) can be added by name.
SYSTEM_ACTORS: tuple[str, ...] = (
    "admin",
    "compliance",
    "operator",
    "custodian",
    "broker",
    "reporter1",
    "reporter2",
    "reporter3",
    "keeper",
)


@dataclass(frozen=True)
class ActorKeys:
    """actor name → private key (secret) and address."""

    keys: Mapping[str, SecretStr]
    # actor → address; deriving an address from a key costs milliseconds (secp256k1)
    _addresses: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    # DEV ONLY: derive a key for any other actor from this seed on first use (users who
    # register after the chain was opened: `user-<id>`, only under `on_demand_prefix`)
    on_demand_seed: int | None = None
    on_demand_prefix: str = "user-"
    _derived: dict[str, SecretStr] = field(default_factory=dict, compare=False, repr=False)

    def address(self, actor: str) -> str:
        cached = self._addresses.get(actor)
        if cached is None:
            cached = str(Account.from_key(self.key(actor).get_secret_value()).address)
            self._addresses[actor] = cached
        return cached

    def key(self, actor: str) -> SecretStr:
        found = self.keys.get(actor) or self._derived.get(actor)
        if found is not None:
            return found
        if self.on_demand_seed is not None and actor.startswith(self.on_demand_prefix):
            derived = _dev_key(self.on_demand_seed, actor)
            self._derived[actor] = derived
            return derived
        raise ConfigError(f"no key configured for actor {actor!r}")

    def has(self, actor: str) -> bool:
        return actor in self.keys or actor in self._derived

    def names(self) -> list[str]:
        return list(self.keys)

    def __repr__(self) -> str:  # never show keys
        return f"ActorKeys({sorted(self.keys)})"

    @classmethod
    def dev(
        cls, seed: int, names: Iterable[str] = SYSTEM_ACTORS, *, on_demand: bool = False
    ) -> ActorKeys:
        """Deterministic development keys: keccak("crowdlev-dev:<seed>:<name>"); with
        `on_demand`, also for every `user-<id>` actor asked for later."""
        return cls(
            {n: _dev_key(seed, n) for n in names}, on_demand_seed=seed if on_demand else None
        )

    def with_dev(self, seed: int, names: Iterable[str]) -> ActorKeys:
        extra = ActorKeys.dev(seed, [n for n in names if n not in self.keys]).keys
        return ActorKeys({**self.keys, **extra})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ActorKeys:
        """CROWDLEV_CHAIN_KEY_<ACTOR>=0x... for every actor that has one."""
        env = os.environ if environ is None else environ
        prefix = "CROWDLEV_CHAIN_KEY_"
        return cls(
            {k[len(prefix) :].lower(): SecretStr(v) for k, v in env.items() if k.startswith(prefix)}
        )


def _dev_key(seed: int, name: str) -> SecretStr:
    return SecretStr("0x" + keccak(text=f"crowdlev-dev:{seed}:{name}").hex())
