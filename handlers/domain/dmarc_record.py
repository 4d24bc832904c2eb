"""Parse one DMARC policy record (RFC 9989 §4.7) into typed tags, collecting every problem.

Parsing never raises on a bad tag value: receivers ignore what they cannot use, and a person fixing
the record wants every problem at once. `problems` lists what makes the record invalid or partly
ignored; `deprecated` the tags RFC 9989 removed (pct, rf, ri).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

POLICIES = ("none", "quarantine", "reject")
# RFC 9989 §4.7 removed these; receivers ignore them (§A.6), so they are worth a note, not an error.
DEPRECATED_TAGS = ("pct", "rf", "ri")
KNOWN_TAGS = ("v", "p", "sp", "np", "adkim", "aspf", "fo", "rua", "ruf", "t", "psd", *DEPRECATED_TAGS)

_TAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_FO_VALUE = re.compile(r"^[01ds](:[01ds])*$")
_MAILTO_ADDRESS = re.compile(r"^[^@\s]+@([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?)$")
# RFC 7489 allowed a size limit suffix ("!10m"); RFC 9989 dropped it, but it is still published.
_SIZE_SUFFIX = re.compile(r"![0-9]+[kmgt]?$", re.IGNORECASE)


def is_dmarc_record(txt: str) -> bool:
    """True when a TXT string is a DMARC record: it starts with the v=DMARC1 tag (§4.7)."""
    # §4.7: the value "MUST match precisely" (v=dmarc1 is ignored); the tag name is ABNF "v".
    return re.match(r"^\s*[vV]\s*=\s*DMARC1\s*(;|$)", txt) is not None


@dataclass(frozen=True)
class ReportUri:
    """One rua/ruf destination; `domain` is set for mailto: addresses."""

    uri: str
    scheme: str
    domain: str | None


@dataclass(frozen=True, kw_only=True)
class DmarcRecord:
    """The tags of one record, with RFC 9989 defaults applied where a tag is absent or invalid."""

    raw: str
    tags: dict[str, str]
    p: str | None  # None when absent or invalid: see effective_policy
    sp: str | None
    np: str | None
    adkim: str = "r"
    aspf: str = "r"
    testing: bool = False  # t=y
    psd: str = "u"
    rua: tuple[ReportUri, ...] = ()
    ruf: tuple[ReportUri, ...] = ()
    fo: str = "0"
    problems: tuple[str, ...] = ()
    deprecated: tuple[str, ...] = ()
    unknown_tags: tuple[str, ...] = field(default=())

    @property
    def degraded(self) -> bool:
        """RFC 9989 §4.10.1: no valid p=, or an sp=/np= that is present but not valid."""
        return self.p is None or any(
            self.tags.get(tag) is not None and value is None
            for tag, value in (("sp", self.sp), ("np", self.np))
        )

    @property
    def usable(self) -> bool:
        """RFC 9989 §4.10.1: a record with no valid p= (or an invalid sp=/np=) is still used, as
        p=none, if it has a valid rua; otherwise the domain gets no DMARC processing."""
        return not self.degraded or bool(self.rua)

    @property
    def effective_policy(self) -> str:
        return "none" if self.degraded else self.p or "none"

    @property
    def subdomain_policy(self) -> str:
        return "none" if self.degraded else self.sp or self.effective_policy

    @property
    def nonexistent_policy(self) -> str:
        """np= for names that do not exist, falling back to sp= then p= (RFC 9989 §4.7)."""
        return "none" if self.degraded else self.np or self.subdomain_policy

    def to_json(self) -> dict[str, object]:
        return {
            "p": self.p,
            "sp": self.sp,
            "np": self.np,
            "adkim": self.adkim,
            "aspf": self.aspf,
            "t": "y" if self.testing else "n",
            "psd": self.psd,
            "fo": self.fo,
            "rua": [u.uri for u in self.rua],
            "ruf": [u.uri for u in self.ruf],
        }


# The same record text is read by the tree walk, the policy and the report checks of a domain,
# and by every domain inheriting an organizational record: parsed once (immutable; treat `tags`
# as read-only), bounded.
@functools.lru_cache(maxsize=1024)
def parse_dmarc_record(raw: str) -> DmarcRecord:
    """Parse a record that `is_dmarc_record`; every invalid part is named in `problems`."""
    problems: list[str] = []
    tags: dict[str, str] = {}
    unknown: list[str] = []
    for index, part in enumerate(p.strip() for p in raw.split(";")):
        if not part:
            continue
        name, sep, value = (x.strip() for x in part.partition("="))
        if not sep or not _TAG_NAME.match(name):
            problems.append(f"“{part}” is not a tag=value pair")
            continue
        name = name.lower()
        if index == 0 and name != "v":
            problems.append("the record must start with v=DMARC1")
        if name in tags:
            problems.append(f"the tag {name}= appears more than once")
            continue
        tags[name] = value
        if name not in KNOWN_TAGS:
            unknown.append(name)  # §4.7: unknown tags must be ignored

    p = _policy(tags, "p", problems)
    if "p" not in tags:
        problems.append("the required p= tag is missing")
    sp = _policy(tags, "sp", problems)
    np = _policy(tags, "np", problems)
    rua = _report_uris(tags, "rua", problems)
    ruf = _report_uris(tags, "ruf", problems)
    fo = tags.get("fo", "0").lower()  # tag values are case-insensitive, like p= and sp=
    if not _FO_VALUE.match(fo.replace(" ", "")):
        problems.append(f"fo={fo} is not valid: use 0, 1, d or s, separated by colons")
        fo = "0"
    return DmarcRecord(
        raw=raw,
        tags=tags,
        p=p,
        sp=sp,
        np=np,
        adkim=_choice(tags, "adkim", ("r", "s"), "r", problems),
        aspf=_choice(tags, "aspf", ("r", "s"), "r", problems),
        testing=_choice(tags, "t", ("y", "n"), "n", problems) == "y",
        psd=_choice(tags, "psd", ("y", "n", "u"), "u", problems),
        rua=rua,
        ruf=ruf,
        fo=fo,
        problems=tuple(problems),
        deprecated=tuple(t for t in DEPRECATED_TAGS if t in tags),
        unknown_tags=tuple(unknown),
    )


def _policy(tags: dict[str, str], name: str, problems: list[str]) -> str | None:
    value = tags.get(name)
    if value is None:
        return None
    if value.lower() in POLICIES:
        return value.lower()
    problems.append(f"{name}={value} is not a policy: use none, quarantine or reject")
    return None


def _choice(
    tags: dict[str, str], name: str, allowed: tuple[str, ...], default: str, problems: list[str]
) -> str:
    value = tags.get(name)
    if value is None:
        return default
    if value.lower() in allowed:
        return value.lower()
    problems.append(f"{name}={value} is not valid: use {' or '.join(allowed)}")
    return default


def _report_uris(tags: dict[str, str], name: str, problems: list[str]) -> tuple[ReportUri, ...]:
    value = tags.get(name)
    if value is None:
        return ()
    uris = []
    for item in (u.strip() for u in value.split(",")):
        uri = _parse_report_uri(item)
        if uri is not None and uri.scheme != "mailto":
            # RFC 9990 §3 delivers reports only by mail: an http(s) URI receives nothing.
            problems.append(
                f"{name} entry “{item}” is a web address; reports are delivered only "
                f"by mail (write it as mailto:reports@example.com)"
            )
        elif uri is None:
            problems.append(
                f"{name} entry “{item}” is not a valid mailto: address "
                f"(write it as mailto:reports@example.com)"
            )
        else:
            uris.append(uri)
    return tuple(uris)


def _parse_report_uri(text: str) -> ReportUri | None:
    if not text:
        return None
    text = _SIZE_SUFFIX.sub("", text)
    scheme = urlsplit(text).scheme.lower()
    if scheme == "mailto":
        address = text[len("mailto:") :]
        match = _MAILTO_ADDRESS.match(address)
        if not match:
            return None
        return ReportUri(text, "mailto", match.group(1).rstrip(".").lower())
    if scheme in ("https", "http") and urlsplit(text).hostname:
        # RFC 9990 defines only mailto: delivery; recognised so the problem can say so.
        return ReportUri(text, scheme, None)
    return None
