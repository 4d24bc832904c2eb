"""`dmarcbot plans`, `dmarcbot apply PLAN_ID [--dry-run]` and `dmarcbot audit`: the real entry point, a
real database file, PowerDNS written through dns-lexicon and read back by DNS queries."""

from __future__ import annotations

import getpass
import json
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main
from bot.slack.fix_plans import FixPlan
from bot.store.apply_audit import record_proposal
from bot.store.database import open_database
from bot.store.stores import Stores
from handlers.fixes.changes import RecordChange
from handlers.fixes.session import ExpectedRecord
from tests.applytest import fresh_zone, pdns, served
from tests.dnstest.pdns import PdnsServer
from tests.dnstest.zones import make_zone

__all__ = ["pdns"]

pytestmark = pytest.mark.slow

VERIFY = "google-site-verification=k3y"
OLD_DMARC = "v=DMARC1; p=none"
NEW_DMARC = "v=DMARC1; p=quarantine"
TEAM = "T0APPLY1"


def store_plan(db_path: str, domain: str, changes: list[RecordChange]) -> int:
    stores = Stores.over(open_database(db_path))
    plan = FixPlan(
        team_id=TEAM,
        channel_id="C0PLANS",
        thread_ts="1700000000.000100",
        domain=domain,
        kind="dmarc",
        finding_id="dmarc.policy_none",
        expected=(ExpectedRecord(f"_dmarc.{domain}", "TXT", "digest"),),
        clears=("dmarc.policy_none",),
        proposed_by="U0PROPOSER",
    )
    assert stores.fix_plans.save_fix_plan(plan)
    record_proposal(stores.applies, plan, changes)
    plan_id = stores.applies.plan_id(plan)
    stores.close()
    assert plan_id is not None
    return plan_id


@pytest.fixture
def setup(tmp_path: Path, pdns: PdnsServer, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    domain = fresh_zone("cli")
    pdns.load_zone(domain, make_zone(domain, [("@", "TXT", VERIFY), ("_dmarc", "TXT", OLD_DMARC)]))
    providers = tmp_path / "providers.toml"
    providers.write_text(
        f'[[zone]]\nname = "{domain}"\nprovider = "powerdns"\npdns_server = "{pdns.api_url}"\n'
        f'auth_token_env = "TEST_PDNS_KEY"\nnameservers = ["{pdns.address}"]\npropagation_timeout = 5\n'
    )
    for name in ("SLACK_TEAM_ID", "DMARCBOT_NAMESERVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DMARCBOT_DB", str(tmp_path / "cli.db"))
    monkeypatch.setenv("DMARCBOT_DNS_PROVIDERS", str(providers))
    monkeypatch.setenv("TEST_PDNS_KEY", pdns.api_key)
    plan_id = store_plan(
        str(tmp_path / "cli.db"),
        domain,
        [RecordChange(f"_dmarc.{domain}", "TXT", (OLD_DMARC,), (NEW_DMARC,))],
    )
    return domain, plan_id


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_then_apply_then_a_second_apply_is_refused(
    setup: tuple[str, int], pdns: PdnsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    domain, plan_id = setup
    code, out, _ = run(capsys, "apply", str(plan_id), "--dry-run")
    assert code == 0 and "dry_run" in out
    assert served(pdns, f"_dmarc.{domain}") == [OLD_DMARC]

    code, out, _ = run(capsys, "apply", str(plan_id))
    assert code == 0 and f"plan {plan_id} for {domain}: applied" in out
    assert served(pdns, f"_dmarc.{domain}") == [NEW_DMARC]
    assert served(pdns, domain) == [VERIFY]

    # The live record is now the plan's "after", no longer its "before".
    code, out, _ = run(capsys, "apply", str(plan_id))
    assert code == 1 and "the record changed since the plan was made; make a new plan" in out
    assert served(pdns, f"_dmarc.{domain}") == [NEW_DMARC]

    code, out, _ = run(capsys, "audit", "--domain", domain, "--json")
    rows = json.loads(out)
    assert [r["action"] for r in rows] == ["proposal", "write", "applied", "refusal"]
    assert rows[0]["actor"] == "U0PROPOSER" and rows[0]["team_id"] == TEAM
    assert {r["actor"] for r in rows[1:]} == {getpass.getuser()}
    assert rows[1]["provider"] == "powerdns" and rows[1]["zone"] == domain
    assert rows[1]["records_before"] == [f"_dmarc.{domain} TXT {OLD_DMARC}"]
    assert rows[1]["records_after"] == [f"_dmarc.{domain} TXT {NEW_DMARC}"]

    code, out, _ = run(capsys, "plans", "--domain", domain, "--json")
    (plan,) = json.loads(out)
    assert plan["id"] == plan_id and plan["state"] == "pending" and plan["last_action"] == "refusal"
    assert plan["changes"] == [
        {"host": f"_dmarc.{domain}", "type": "TXT", "before": [OLD_DMARC], "after": [NEW_DMARC]}
    ]

    code, out, _ = run(capsys, "audit", "--team", "T0OTHER")
    assert code == 0 and "The audit is empty" in out
    code, out, _ = run(capsys, "plans")
    assert f"{plan_id}  {domain}  dmarc.policy_none" in out and "can be applied" in out


def test_the_audit_is_append_only(setup: tuple[str, int], tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "cli.db") as db:
        for statement in ("UPDATE apply_audit SET result = 'x'", "DELETE FROM apply_audit"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)
        assert db.execute("SELECT count(*) FROM apply_audit").fetchone() == (1,)


def test_an_unknown_plan_or_an_unconfigured_zone_is_bad_input(
    setup: tuple[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "apply", "999")
    assert code == 2 and "no fix plan 999" in err
    other = store_plan(
        str(tmp_path / "cli.db"),
        "elsewhere.test",
        [RecordChange("_dmarc.elsewhere.test", "TXT", (), (NEW_DMARC,))],
    )
    code, _, err = run(capsys, "apply", str(other))
    assert code == 2 and "elsewhere.test is not in the DNS providers file" in err
    code, _, err = run(capsys, "apply", "not-a-number")
    assert code == 2
