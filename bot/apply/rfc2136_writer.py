"""RFC 2136 dynamic update with TSIG (RFC 8945), through dnspython's `dns.update`: BIND, Knot, PowerDNS.

Each change is one UPDATE message, which the server applies atomically (RFC 2136 §3.7): the owned
records that must go are deleted by their exact rdata as the primary serves them (so a TXT split
into strings differently from ours still matches), the new ones added, in the same message.
"""

from __future__ import annotations

import base64
import binascii

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from bot.apply.providers import ZoneProvider
from bot.apply.writers import ProviderError, provider_error
from handlers.dns.dns_entry import quote_txt
from handlers.dns.resolver import parse_nameserver
from handlers.fixes.changes import RecordChange
from handlers.fixes.records import normalise_value


class Rfc2136Writer:
    """Writes a zone's record sets to its primary server with signed dynamic updates."""

    def __init__(self, zone: ZoneProvider, timeout: float = 10.0) -> None:
        self.zone = zone
        self.timeout = timeout
        server = parse_nameserver(str(zone.options["server"]))
        self.host, self.port = server.host, server.port
        self.key_name = str(zone.options["tsig_name"])
        self.algorithm = dns.name.from_text(str(zone.options.get("tsig_algorithm", "hmac-sha256")))

    def _keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        secret = self.zone.secrets["tsig_secret"].reveal()
        try:
            base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise provider_error(self.zone, "TSIG", "the secret is not base64") from None
        name = dns.name.from_text(self.key_name)
        return {name: dns.tsig.Key(name, secret, self.algorithm)}

    def _served(self, change: RecordChange) -> list[tuple[str, dns.rdata.Rdata]]:
        """The owned records at the name as the primary serves them: (joined value, rdata)."""
        query = dns.message.make_query(change.host, change.rdtype)
        try:
            answer = dns.query.tcp(query, self.host, port=self.port, timeout=self.timeout)
        except (dns.exception.DNSException, OSError) as error:
            raise provider_error(self.zone, f"read of {change.host} {change.rdtype}", str(error)) from None
        if answer.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise provider_error(
                self.zone, f"read of {change.host} {change.rdtype}", dns.rcode.to_text(answer.rcode())
            )
        wanted = dns.rdatatype.from_text(change.rdtype)
        found: list[tuple[str, dns.rdata.Rdata]] = []
        for rrset in answer.answer:
            if rrset.rdtype != wanted or rrset.name != dns.name.from_text(change.host):
                continue
            for rdata in rrset:
                found.append((_value(rdata), rdata))
        owned = set(change.owned(v for v, _ in found))
        return [(v, r) for v, r in found if v in owned]

    def write(self, change: RecordChange) -> None:
        """One atomic UPDATE: the owned records not in `after` deleted, the missing ones added."""
        keep = {normalise_value(change.rdtype, v) for v in change.after}
        served = self._served(change)
        present = {normalise_value(change.rdtype, v) for v, _ in served}
        update = dns.update.UpdateMessage(
            self.zone.zone, keyring=self._keyring(), keyalgorithm=self.algorithm
        )
        name = dns.name.from_text(change.host)
        for value, rdata in served:
            if normalise_value(change.rdtype, value) not in keep:
                update.delete(name, rdata)
        for value in dict.fromkeys(change.after):
            if normalise_value(change.rdtype, value) not in present:
                update.add(name, self.zone.ttl, _rdata(change.rdtype, value))
        if not update.update:
            return  # already as planned
        try:
            response = dns.query.tcp(update, self.host, port=self.port, timeout=self.timeout)
        except (dns.exception.DNSException, OSError) as error:
            raise provider_error(self.zone, f"update of {change.host} {change.rdtype}", str(error)) from None
        if response.rcode() != dns.rcode.NOERROR:
            raise provider_error(
                self.zone,
                f"update of {change.host} {change.rdtype}",
                f"the server answered {dns.rcode.to_text(response.rcode())}",
            )


def _value(rdata: dns.rdata.Rdata) -> str:
    strings = getattr(rdata, "strings", None)
    if strings is not None:  # TXT: the strings joined with nothing between (RFC 7208 §3.3)
        return b"".join(strings).decode("utf-8", errors="replace")
    return rdata.to_text().rstrip(".")


def _rdata(rdtype: str, value: str) -> dns.rdata.Rdata:
    text = quote_txt(value) if rdtype == "TXT" else value.rstrip(".") + "."
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), text)


__all__ = ["ProviderError", "Rfc2136Writer"]
