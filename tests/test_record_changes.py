"""A plan's changes as record sets: which records at a name the plan owns, and the order of writes."""

from __future__ import annotations

import pytest

from handlers.dns.dns_entry import DnsEntry
from handlers.errors import UnreadableValue
from handlers.fixes.changes import RecordChange, changes_for, changes_from_json, changes_to_json, rollback_of
from handlers.fixes.records import Proposal

VERIFY = "google-site-verification=k3y"


def test_the_apex_change_owns_only_the_spf_string() -> None:
    change = RecordChange("example.com", "TXT", ("v=spf1 -all",), ("v=spf1 mx -all",))
    assert change.scope == "spf"
    assert change.owned([VERIFY, "v=spf1 -all"]) == ("v=spf1 -all",)
    assert change.matches([VERIFY, "v=spf1   -ALL"], change.before)  # normalised, the other TXT ignored
    assert not change.matches([VERIFY], change.before)


def test_the_dmarc_change_owns_only_dmarc_records() -> None:
    change = RecordChange("_dmarc.example.com", "TXT", (), ("v=DMARC1; p=none",))
    assert change.scope == "dmarc"
    assert change.matches(["some other text"], ())


def test_a_selector_change_owns_the_whole_set() -> None:
    change = RecordChange("s1._domainkey.example.com", "TXT", ("v=DKIM1; p=abc",), ())
    assert change.scope == "all" and change.owned(["x", "y"]) == ("x", "y")


def test_a_cname_proposal_removes_the_selector_txt_first_and_rolls_back_in_reverse() -> None:
    host = "s1._domainkey.example.com"
    proposal = Proposal(
        kind="dkim_key",
        domain="example.com",
        host=host,
        rdtype="CNAME",
        before=("v=DKIM1; p=abc",),
        entries=(DnsEntry(host=host, rdtype="CNAME", value="s1.dkim.provider.test", zone="example.com"),),
        clears=(),
        delete=("v=DKIM1; p=abc",),
    )
    changes = changes_for(proposal)
    assert changes == (
        RecordChange(host, "TXT", ("v=DKIM1; p=abc",), ()),
        RecordChange(host, "CNAME", (), ("s1.dkim.provider.test",)),
    )
    assert rollback_of(changes) == (
        RecordChange(host, "CNAME", ("s1.dkim.provider.test",), ()),
        RecordChange(host, "TXT", (), ("v=DKIM1; p=abc",)),
    )
    assert changes_from_json(changes_to_json(changes)) == changes


def test_an_spf_merge_replaces_both_records_with_one() -> None:
    proposal = Proposal(
        kind="spf",
        domain="example.com",
        host="example.com",
        rdtype="TXT",
        before=("v=spf1 a -all", "v=spf1 mx -all"),
        entries=(DnsEntry(host="example.com", rdtype="TXT", value="v=spf1 a mx -all", zone="example.com"),),
        clears=(),
        delete=("v=spf1 mx -all",),
    )
    assert changes_for(proposal) == (
        RecordChange("example.com", "TXT", ("v=spf1 a -all", "v=spf1 mx -all"), ("v=spf1 a mx -all",)),
    )


@pytest.mark.parametrize(
    "data",
    [
        {},
        [{"h": "x"}],
        [{"h": "x", "t": "MX", "b": [], "a": []}],
        [{"h": "x", "t": "TXT", "b": ["a"] * 21, "a": []}],
    ],
)
def test_stored_changes_that_we_did_not_write_are_refused(data: object) -> None:
    with pytest.raises(UnreadableValue):
        changes_from_json(data)
