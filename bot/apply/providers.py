"""The DNS providers file (DMARCBOT_DNS_PROVIDERS): which zones the bot may write to, and through what.

One `[[zone]]` table per zone: `name`, `provider` (a dns-lexicon provider name, or `rfc2136`) and
the provider's options. A secret is never in the file: an option ending in `_env` names the
environment variable that holds it (`auth_token_env = "CF_API_TOKEN"` gives the provider its
`auth_token`). Secrets are read once, here, into `Secret` values that never show in a repr, a log
line or a message; every problem with the file is reported at once.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from handlers.dns.domain_name import InvalidDomain, normalise_domain
from handlers.dns.resolver import Nameserver, NameserverError, parse_nameserver
from handlers.errors import ConfigurationError

RFC2136 = "rfc2136"
SECRET_SUFFIX = "_env"
MAX_PROVIDERS_FILE = 1_000_000  # bytes: a configuration file, not a data set
DEFAULT_PROPAGATION_TIMEOUT = 600.0  # seconds the authoritative servers get to serve a write
# Option names that hold a credential: given literally in the file, they are refused (the file is
# often committed or shared; the environment is where secrets live).
_SECRET_WORDS = re.compile(r"token|secret|password|passwd|key|credential", re.IGNORECASE)
_NOT_SECRET = {"tsig_name", "tsig_algorithm", "auth_username", "pdns_server_id"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPTION_NAME = re.compile(r"[a-z][a-z0-9_]*")
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1", "hmac-md5")


class ProvidersFileError(ConfigurationError):
    """The providers file cannot be used; the message lists every problem."""


class Secret:
    """A credential read from the environment: shown as `Secret('NAME')`, never by its value."""

    __slots__ = ("_value", "env_name")

    def __init__(self, env_name: str, value: str) -> None:
        self.env_name = env_name
        self._value = value

    def reveal(self) -> str:
        """The credential itself, for the one call that sends it to the provider."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.env_name!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self.env_name, self._value) == (other.env_name, other._value)

    def __hash__(self) -> int:
        return hash(self.env_name)


@dataclass(frozen=True, kw_only=True)
class ZoneProvider:
    """One zone the bot may write to: its provider, plain options and secrets (by option name)."""

    zone: str
    provider: str
    options: Mapping[str, str | int | bool] = field(default_factory=dict)
    secrets: Mapping[str, Secret] = field(default_factory=dict)
    # The zone's authoritative servers to read from and poll; empty: found from its NS records.
    nameservers: tuple[Nameserver, ...] = ()
    ttl: int = 3600
    propagation_timeout: float = DEFAULT_PROPAGATION_TIMEOUT

    def covers(self, host: str) -> bool:
        """True when `host` is the zone's apex or a name under it."""
        host = host.rstrip(".").lower()
        return host == self.zone or host.endswith("." + self.zone)


@dataclass(frozen=True)
class DnsProviders:
    """The zones of the providers file; the most specific zone wins for a name."""

    zones: tuple[ZoneProvider, ...] = ()

    def for_name(self, host: str) -> ZoneProvider | None:
        """The configured zone that holds `host`, or None (that domain keeps the paste-and-Verify flow)."""
        found = [z for z in self.zones if z.covers(host)]
        return max(found, key=lambda z: len(z.zone)) if found else None


def known_provider(name: str) -> bool:
    """True for `rfc2136` and for a provider dns-lexicon ships (looked up without importing it)."""
    if name == RFC2136:
        return True
    if not _OPTION_NAME.fullmatch(name):
        return False
    try:
        return importlib.util.find_spec(f"lexicon._private.providers.{name}") is not None
    except ModuleNotFoundError:
        return False


def load_dns_providers(path: str, env: Mapping[str, str]) -> DnsProviders:
    """Read the providers file at `path`, secrets from `env`; ProvidersFileError lists every problem."""
    setting = "DMARCBOT_DNS_PROVIDERS"
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_PROVIDERS_FILE + 1)
    except OSError as error:
        raise ProvidersFileError(
            f"{setting}={path!r} cannot be read ({error.strerror or error}): name a TOML file "
            "with one [[zone]] table per zone"
        ) from None
    if len(data) > MAX_PROVIDERS_FILE:
        raise ProvidersFileError(f"{setting}={path!r} is over {MAX_PROVIDERS_FILE} bytes")
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ProvidersFileError(f"{setting}={path!r} is not valid TOML: {error}") from None
    problems: list[str] = []
    extra = sorted(set(document) - {"zone"})
    if extra:
        problems.append(f"unknown top-level key(s) {', '.join(extra)}: only [[zone]] tables belong here")
    tables = document.get("zone", [])
    if not isinstance(tables, list) or not tables:
        problems.append("no [[zone]] table: add one per zone, with name and provider")
        tables = []
    zones: list[ZoneProvider] = []
    seen: set[str] = set()
    for index, table in enumerate(tables, 1):
        where = f"[[zone]] #{index}"
        if not isinstance(table, dict):
            problems.append(f"{where} is not a table")
            continue
        zone = _read_zone(table, env, where, problems)
        if zone is None:
            continue
        if zone.zone in seen:
            problems.append(f"{where}: zone {zone.zone} is configured twice")
        seen.add(zone.zone)
        zones.append(zone)
    if problems:
        raise ProvidersFileError(f"{setting}={path!r}: " + "; ".join(problems))
    return DnsProviders(tuple(zones))


def _read_zone(
    table: dict[str, Any], env: Mapping[str, str], where: str, problems: list[str]
) -> ZoneProvider | None:
    start = len(problems)
    name = table.get("name")
    zone = ""
    if not isinstance(name, str):
        problems.append(f'{where}: name is missing (the zone, like name = "example.com")')
    else:
        try:
            zone = normalise_domain(name)
        except InvalidDomain as error:
            problems.append(f"{where}: name {name[:80]!r} is not a domain name ({error})")
        where = f"[[zone]] {zone or name[:80]!r}"
    provider = table.get("provider")
    if not isinstance(provider, str) or not provider:
        problems.append(f'{where}: provider is missing (a dns-lexicon provider name, or "{RFC2136}")')
        provider = ""
    elif not known_provider(provider):
        problems.append(
            f"{where}: provider {provider[:40]!r} is not {RFC2136} nor a dns-lexicon provider "
            "(like cloudflare, route53, powerdns)"
        )
    options: dict[str, str | int | bool] = {}
    secrets: dict[str, Secret] = {}
    nameservers: tuple[Nameserver, ...] = ()
    ttl = 3600
    timeout = DEFAULT_PROPAGATION_TIMEOUT
    for key, value in table.items():
        if key in ("name", "provider"):
            continue
        if not isinstance(key, str) or not _OPTION_NAME.fullmatch(key):
            problems.append(f"{where}: option {str(key)[:40]!r} is not a lower-case option name")
        elif key == "nameservers":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f'{where}: nameservers must be a list like ["192.0.2.53", "192.0.2.54:5353"]')
                continue
            try:
                nameservers = tuple(parse_nameserver(v) for v in value)
            except NameserverError as error:
                problems.append(f"{where}: nameservers: {error}")
        elif key == "ttl":
            if not isinstance(value, int) or isinstance(value, bool) or not 60 <= value <= 86400:
                problems.append(f"{where}: ttl must be a whole number of seconds from 60 to 86400")
            else:
                ttl = value
        elif key == "propagation_timeout":
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 3600:
                problems.append(f"{where}: propagation_timeout must be seconds from 1 to 3600")
            else:
                timeout = float(value)
        elif key.endswith(SECRET_SUFFIX):
            option = key[: -len(SECRET_SUFFIX)]
            if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
                problems.append(f'{where}: {key} must name an environment variable, like {key} = "API_TOKEN"')
            elif not env.get(value, "").strip():
                problems.append(f"{where}: {key} names {value}, which is not set in the environment")
            else:
                secrets[option] = Secret(value, env[value].strip())
        elif _SECRET_WORDS.search(key) and key not in _NOT_SECRET:
            # Never echo the value: it is the secret that should not be here.
            problems.append(
                f"{where}: {key} looks like a credential and secrets are never written in this file: "
                f'put it in an environment variable and name it with {key}{SECRET_SUFFIX} = "VARIABLE"'
            )
        elif isinstance(value, str | int | bool):
            options[key] = value
        else:
            problems.append(f"{where}: option {key} must be a string, a number or true/false")
    if provider == RFC2136:
        _check_rfc2136(options, secrets, where, problems)
    if len(problems) > start:
        return None
    return ZoneProvider(
        zone=zone,
        provider=provider,
        options=options,
        secrets=secrets,
        nameservers=nameservers,
        ttl=ttl,
        propagation_timeout=timeout,
    )


def _check_rfc2136(
    options: Mapping[str, object], secrets: Mapping[str, Secret], where: str, problems: list[str]
) -> None:
    server = options.get("server")
    if not isinstance(server, str):
        problems.append(
            f'{where}: rfc2136 needs server, the primary to send updates to (like "192.0.2.53:53")'
        )
    else:
        try:
            parse_nameserver(server)
        except NameserverError as error:
            problems.append(f"{where}: server: {error}")
    if not isinstance(options.get("tsig_name"), str):
        problems.append(f'{where}: rfc2136 needs tsig_name, the TSIG key\'s name (like "dmarcbot")')
    if "tsig_secret" not in secrets:
        problems.append(
            f"{where}: rfc2136 needs tsig_secret_env, the variable holding the base64 TSIG secret"
        )
    algorithm = options.get("tsig_algorithm", "hmac-sha256")
    if algorithm not in TSIG_ALGORITHMS:
        problems.append(f"{where}: tsig_algorithm must be one of {', '.join(TSIG_ALGORITHMS)}")
