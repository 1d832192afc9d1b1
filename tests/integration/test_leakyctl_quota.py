"""leakyctl quota show | grant | adjust: token pools and money budgets of users
and orgs, on a data directory made by `leakyctl init`.

Every change must land as a pool, a ledger row and an audit row together:
`leakyctl check` verifies the pools against their ledger, `leakyctl audit`
shows the audit rows.
"""

import json
import re

import pytest

from conftest import LEAKYCTL, run

EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_NOUSER = 64, 65, 66, 67
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def ctl(tmp_path):
    data = tmp_path / "var"

    def call(*args):
        return run([LEAKYCTL, "-d", str(data)] + [str(a) for a in args])
    p = call("init")
    assert p.returncode == 0, p.stderr
    return call


def ok(p):
    assert p.returncode == 0, (p.args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def fields(text):
    """`name: value` lines as a dict."""
    return dict(line.split(": ", 1) for line in text.splitlines())


@pytest.fixture
def people(ctl):
    ok(ctl("user", "add", "alice", "alice@example.com"))
    out = ok(ctl("org", "add", "Acme"))
    m = re.match(r"created org Acme \((" + UUID + r")\)", out)
    assert m, out
    return {"org_id": m.group(1)}


def test_grant_show_adjust_and_refuse_below_zero(ctl, people):
    out = ok(ctl("quota", "grant", "--user", "alice", "OpenAI", 1000, "--reason", "welcome"))
    assert "total=1000 remaining=1000" in out, out
    # Table form; the provider was lower-cased.
    f = fields(ok(ctl("quota", "show", "--user", "alice", "openai")))
    assert f["owner"].startswith("user alice (")
    assert f["provider"] == "openai" and f["unit"] == "tokens"
    assert (f["total"], f["remaining"], f["reserved"], f["available"]) == \
        ("1000", "1000", "0", "1000")
    assert (f["window"], f["window_cap"], f["resets"]) == ("none", "none", "never")
    # JSON form.
    j = json.loads(ok(ctl("quota", "show", "--user", "ALICE", "openai", "--json")))
    assert j["owner"]["kind"] == "user" and j["owner"]["name"] == "alice"
    assert (j["total"], j["remaining"], j["reserved"], j["available"]) == (1000, 1000, 0, 1000)
    assert j["window"] == "none" and j["windowCap"] is None and j["resetsAt"] is None

    # Adjust down (a negative DELTA is not an option).
    out = ok(ctl("quota", "adjust", "--user", "alice", "openai", "-300", "--reason", "clawback"))
    assert "remaining=700" in out, out
    j = json.loads(ok(ctl("quota", "show", "--user", "alice", "openai", "--json")))
    assert (j["total"], j["remaining"]) == (1000, 700)

    # Below zero: refused, nothing changes.
    p = ctl("quota", "adjust", "--user", "alice", "openai", "-701", "--reason", "too much")
    assert p.returncode == EX_DATAERR, (p.stdout, p.stderr)
    assert "below zero" in p.stderr and "700" in p.stderr, p.stderr
    j = json.loads(ok(ctl("quota", "show", "--user", "alice", "openai", "--json")))
    assert (j["total"], j["remaining"]) == (1000, 700)
    # Down to exactly zero is fine.
    ok(ctl("quota", "adjust", "--user", "alice", "openai", "-700", "--reason", "all of it"))
    assert fields(ok(ctl("quota", "show", "--user", "alice", "openai")))["remaining"] == "0"

    # Audit rows, written by leakyctl with the reason.
    audit = ok(ctl("audit")).splitlines()
    granted = [a for a in audit if " quota.granted " in a]
    adjusted = [a for a in audit if " quota.adjusted " in a]
    assert len(granted) == 1 and len(adjusted) == 2, audit
    assert " leakyctl quota.granted " in granted[0] and '"reason":"welcome"' in granted[0]
    assert '"amount":-300' in adjusted[1] and '"reason":"clawback"' in adjusted[1], adjusted

    out = ok(ctl("check"))
    assert re.search(r"quota ledger: 1 pool, each equal to the sum of its ledger: ok", out), out


def test_window_and_org_money_budget(ctl, people):
    ok(ctl("quota", "grant", "--org", "acme", "openai", 5000, "--reason", "monthly",
           "--window", "day", "--window-cap", 800))
    f = fields(ok(ctl("quota", "show", "--org", people["org_id"], "openai")))
    assert f["owner"] == f"org Acme ({people['org_id']})"
    assert (f["window"], f["window_cap"], f["window_used"]) == ("day", "800", "0")
    assert f["available"] == "800"                    # limited by the cap
    assert re.fullmatch(ISO, f["resets"]) and f["resets"].endswith("T00:00:00.000Z"), f
    j = json.loads(ok(ctl("quota", "show", "--org", "Acme", "openai", "--json")))
    assert j["window"] == "day" and j["windowCap"] == 800 and j["available"] == 800
    assert re.fullmatch(ISO, j["resetsAt"]), j
    # A grant without --window keeps the window and cap.
    ok(ctl("quota", "grant", "--org", "acme", "openai", 1, "--reason", "more"))
    j = json.loads(ok(ctl("quota", "show", "--org", "Acme", "openai", "--json")))
    assert (j["total"], j["window"], j["windowCap"]) == (5001, "day", 800)
    # The money budget is provider "$", in micro-dollars.
    ok(ctl("quota", "grant", "--org", "acme", "$", 2500000, "--reason", "budget"))
    j = json.loads(ok(ctl("quota", "show", "--org", "acme", "$", "--json")))
    assert j["provider"] == "$" and j["unit"] == "micro-dollars" and j["remaining"] == 2500000
    # A cap needs a window.
    p = ctl("quota", "grant", "--user", "alice", "openai", 10, "--reason", "x",
            "--window-cap", 5)
    assert p.returncode == EX_USAGE and "needs a window" in p.stderr, p.stderr
    out = ok(ctl("check"))
    assert "quota ledger: 2 pools, each equal to the sum of its ledger: ok" in out, out


def test_errors(ctl, people):
    # Unknown user / org; no pool.
    p = ctl("quota", "grant", "--user", "nobody", "openai", 10, "--reason", "x")
    assert p.returncode == EX_NOUSER and "nobody" in p.stderr, p.stderr
    p = ctl("quota", "show", "--user", "nobody", "openai")
    assert p.returncode == EX_NOUSER, p.stderr
    p = ctl("quota", "show", "--org", "no-such-org", "openai")
    assert p.returncode == EX_DATAERR and "no such org" in p.stderr, p.stderr
    p = ctl("quota", "show", "--user", "alice", "openai")
    assert p.returncode == EX_NOINPUT and "no openai pool" in p.stderr, p.stderr
    # A negative adjust of a missing pool is below zero; nothing is created.
    p = ctl("quota", "adjust", "--user", "alice", "openai", "-1", "--reason", "x")
    assert p.returncode == EX_DATAERR, p.stderr
    assert ctl("quota", "show", "--user", "alice", "openai").returncode == EX_NOINPUT
    # Usage errors.
    for args in (["--user", "alice", "openai", 10],                      # no --reason
                 ["--user", "alice", "--org", "acme", "openai", 10, "--reason", "x"],
                 ["openai", 10, "--reason", "x"],                        # no owner
                 ["--user", "alice", "openai", 0, "--reason", "x"],
                 ["--user", "alice", "openai", "-5", "--reason", "x"],
                 ["--user", "alice", "openai", "ten", "--reason", "x"],
                 ["--user", "alice", "openai", 10, "--reason", "x", "--window", "week"],
                 ["--user", "alice", "openai", 10, "--reason"]):
        p = ctl("quota", "grant", *args)
        assert p.returncode == EX_USAGE, (args, p.stderr)
    p = ctl("quota", "adjust", "--user", "alice", "openai", 0, "--reason", "x")
    assert p.returncode == EX_USAGE, p.stderr
    p = ctl("quota", "grant", "--user", "alice", "open ai", 10, "--reason", "x")
    assert p.returncode == EX_DATAERR, p.stderr
    # Nothing above wrote a pool or an audit row.
    assert "quota." not in ok(ctl("audit"))
    assert "quota ledger: 0 pools" in ok(ctl("check"))


def test_no_database(tmp_path):
    p = run([LEAKYCTL, "-d", str(tmp_path / "none"), "quota", "show", "--user", "a", "openai"])
    assert p.returncode == EX_NOINPUT, p.stderr
