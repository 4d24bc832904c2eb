"""handlers/dns/psl.py against the Public Suffix List test vectors (psl-orgdomain-tests/tests.txt).

The vectors were written for the list snapshot beside them; our function uses the list bundled with
the installed publicsuffixlist. Each vector is checked both ways: through `registrable_domain` as
shipped, and with the snapshot loaded through the library's API (so a list update cannot hide a
logic error, and a logic error cannot hide behind a list difference).
"""

from __future__ import annotations

import re

import pytest
from publicsuffixlist import PublicSuffixList

from handlers.dns.psl import registrable_domain, same_organization
from tests.testdata import TESTDATA

PSL_DIR = TESTDATA / "psl-orgdomain-tests"
_CHECK = re.compile(r"^checkPublicSuffix\((null|'[^']*'), (null|'[^']*')\);$")


def _value(token: str) -> str | None:
    return None if token == "null" else token.strip("'")


def _vectors() -> list[tuple[str | None, str | None]]:
    """tests.txt lines are `input expected` (null for none); test_psl.txt has the same vectors as
    `checkPublicSuffix('input', 'expected');`. Both are read and must agree."""
    plain = []
    for line in (PSL_DIR / "tests.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("//"):
            given, expected = line.split()
            plain.append((_value(given), _value(expected)))
    calls = []
    for line in (PSL_DIR / "test_psl.txt").read_text(encoding="utf-8").splitlines():
        match = _CHECK.match(line.strip())
        if match:
            calls.append((_value(match.group(1)), _value(match.group(2))))
    assert plain == calls and len(plain) == 78
    return plain


VECTORS = _vectors()
# `checkPublicSuffix(null, null)` has no equivalent: registrable_domain takes a str (the type
# checker rejects None). It is the one vector not run.
RUNNABLE = [(given, expected) for given, expected in VECTORS if given is not None]
assert len(RUNNABLE) == len(VECTORS) - 1


def _snapshot_list() -> PublicSuffixList:
    with open(PSL_DIR / "public_suffix_list.dat", encoding="utf-8") as source:
        return PublicSuffixList(source)


SNAPSHOT = _snapshot_list()


def _our_logic(psl: PublicSuffixList, name: str) -> str | None:
    """handlers.dns.psl.registrable_domain's normalisation, over a given list."""
    result = psl.privatesuffix(name.lower().rstrip("."))
    return str(result) if result else None


@pytest.mark.parametrize(("given", "expected"), RUNNABLE, ids=[g for g, _ in RUNNABLE])
def test_vectors_with_the_bundled_list(given: str, expected: str | None) -> None:
    assert registrable_domain(given) == expected


@pytest.mark.parametrize(("given", "expected"), RUNNABLE, ids=[g for g, _ in RUNNABLE])
def test_vectors_with_the_snapshot_list(given: str, expected: str | None) -> None:
    assert _our_logic(SNAPSHOT, given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("mail.example.co.uk.", "example.co.uk"),
        ("Example.COM.", "example.com"),
        ("a.b.dmarc.example.test", "example.test"),
    ],
)
def test_trailing_dot_and_case(given: str, expected: str) -> None:
    assert registrable_domain(given) == expected


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("mail.example.com", "example.com", True),
        ("a.example.co.uk", "b.example.co.uk", True),
        ("example.co.uk", "other.co.uk", False),
        ("reports.example.test", "EXAMPLE.test.", True),
        ("example.test", "collector.test", False),
        ("foo.github.io", "bar.github.io", False),  # a private suffix: separate owners
        ("co.uk", "co.uk", True),  # public suffixes compare as themselves
        ("co.uk", "example.co.uk", False),
    ],
)
def test_same_organization(a: str, b: str, same: bool) -> None:
    assert same_organization(a, b) is same
    assert same_organization(b, a) is same
