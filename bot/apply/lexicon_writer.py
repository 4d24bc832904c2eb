"""Cloud and registrar DNS through dns-lexicon: Cloudflare, Route 53, PowerDNS and the rest.

The provider class is used directly, with the zone named in the providers file: lexicon's Client
would guess the zone from the public suffix list (a download, and a wrong guess for a delegated
subzone). Every error from a provider plugin is caught at this one boundary, whatever its type:
plugins raise their own exceptions, requests' and bare ones, and each must end in a rollback
and a message, never a half-applied plan and a traceback.
"""

from __future__ import annotations

import importlib
from typing import Any

import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from bot.apply.providers import ZoneProvider
from bot.apply.writers import ProviderError, plan_of_edits, provider_error
from handlers.dns.dns_entry import quote_txt
from handlers.fixes.changes import RecordChange

# Providers whose API takes a TXT value in zone-file form (quoted strings of at most 255 bytes,
# RFC 1035 §3.3) rather than as one plain value the provider splits itself.
ZONE_FILE_TXT = frozenset({"powerdns"})


class LexiconWriter:
    """Writes a zone's record sets through a dns-lexicon provider."""

    def __init__(self, zone: ZoneProvider, timeout: float = 10.0) -> None:
        self.zone = zone
        self.timeout = timeout

    def _provider(self) -> Any:
        from lexicon.config import ConfigResolver

        name = self.zone.provider
        module = importlib.import_module(f"lexicon._private.providers.{name}")
        options: dict[str, Any] = {**self.zone.options}
        options.update({key: secret.reveal() for key, secret in self.zone.secrets.items()})
        config = ConfigResolver().with_dict(  # type: ignore[no-untyped-call]
            {"provider_name": name, "domain": self.zone.zone, "ttl": self.zone.ttl, name: options}
        )
        provider = module.Provider(config)
        if name == "powerdns":
            _absolute_cname_targets(provider)
        provider.authenticate()
        return provider

    def write(self, change: RecordChange) -> None:
        """Update in place first, then create, then delete (see plan_of_edits)."""
        try:
            provider = self._provider()
            listed = provider.list_records(rtype=change.rdtype, name=change.host)
            current = [(self._value(change.rdtype, str(r["content"])), str(r["id"])) for r in listed]
            owned = set(change.owned(v for v, _ in current))
            updates, creates, deletes = plan_of_edits(change, [(v, i) for v, i in current if v in owned])
            kind, host = change.rdtype, change.host
            for identifier, value in updates:
                provider.update_record(identifier, kind, host, self._content(kind, value))
            for value in creates:
                provider.create_record(kind, host, self._content(kind, value))
            for _, identifier in deletes:
                provider.delete_record(identifier=identifier)
        except ProviderError:
            raise
        except Exception as error:  # the plugin boundary: see the module docstring
            what = f"write of {change.host} {change.rdtype}"
            raise provider_error(self.zone, what, _describe(error)) from None

    def _content(self, rdtype: str, value: str) -> str:
        if rdtype == "TXT" and self.zone.provider in ZONE_FILE_TXT:
            return quote_txt(value)
        if rdtype == "CNAME":  # absolute: lexicon's providers read a name without the dot as relative
            return value.rstrip(".") + "."
        return value

    def _value(self, rdtype: str, content: str) -> str:
        """A listed record's value as DNS would give it: TXT strings joined, a CNAME without its dot."""
        if rdtype == "CNAME":
            return content.rstrip(".")
        if rdtype == "TXT" and self.zone.provider in ZONE_FILE_TXT:
            try:
                rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, f'"{content}"')
            except dns.exception.DNSException:
                return content
            return b"".join(getattr(rdata, "strings", ())).decode("utf-8", errors="replace")
        return content


def _absolute_cname_targets(provider: Any) -> None:
    """dns-lexicon's PowerDNS provider (3.x) reads a CNAME target that does not end with the zone's
    name as relative to the zone, both when writing and listing: a DKIM CNAME to the mail
    provider's domain would become `target.zone.`. An absolute target (ending in a dot, as we
    always send it) is kept as it is."""
    clean, unclean = provider._clean_content, provider._unclean_content

    def clean_content(rtype: str, content: str) -> Any:
        return content if rtype == "CNAME" and content.endswith(".") else clean(rtype, content)

    def unclean_content(rtype: str, content: str) -> Any:
        return content.rstrip(".") if rtype == "CNAME" else unclean(rtype, content)

    provider._clean_content = clean_content
    provider._unclean_content = unclean_content


def _describe(error: Exception) -> str:
    response = getattr(error, "response", None)
    body = getattr(response, "text", None)
    status = getattr(response, "status_code", None)
    if body is not None:
        return f"HTTP {status}: {str(body)[:300]}"
    return f"{type(error).__name__}: {error}"


__all__ = ["LexiconWriter"]
