"""leakyctl user | org | key | keys | audit: identity administration on the
data directory, offline and beside a running leakyd.

The online tests warm leakyd's credential caches first, change something
with leakyctl (another process), and expect the very next request to see
the change: leakyctl bumps the identity generation in the bucket store
after its commit, and leakyd checks it on every request.
"""

import json
import re

import pytest

from conftest import (ADMIN_PASSWORD, APIKEY_RE, LEAKYCTL, UUID_ANY, assert_secrets_not_logged,
                      assert_unauthorized, bearer, jwks, jwt_decode, login, new_username,
                      register, run)

EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_NOUSER = 64, 65, 66, 67

ME = "/api/v1/auth/me"
KEYS = "/api/v1/auth/api-keys"
VALIDATE = "/api/v1/auth/api-keys/validate"
ENV = {"LEAKYD_ADMIN_PASSWORD": ADMIN_PASSWORD}
TIERS = {"auth": {"tiers": "USER:0,ORG_ADMIN:1,ADMIN:2,GOLD:5"}}


def ctl(srv, *args, input=None):
    """leakyctl with the server's configuration (data dir, map size)."""
    return run([LEAKYCTL, "-c", srv.config_path] + [str(a) for a in args], input=input)


def ok(p):
    assert p.returncode == 0, (p.args, p.returncode, p.stdout, p.stderr)
    return p.stdout


@pytest.fixture
def srv(leakyd_factory):
    return leakyd_factory(TIERS, env=ENV)


def make_user(srv, prefix="u"):
    name = new_username(prefix)
    body, pw = register(srv, name, password=f"pw-{name}-secret")
    return {"id": body["userId"], "username": name, "password": pw, "token": body["token"]}


# ------------------------------------------------------------------ offline --

def test_offline_user_add_admin_then_login(leakyd_factory):
    s = leakyd_factory(env={}, start=False)
    p = ctl(s, "user", "add", "root", "root@example.com", "--admin", "--password-stdin",
            input="offline-root-pw\n")
    assert ok(p).startswith("created user root (")
    assert "password" not in p.stdout            # given on stdin: nothing to print
    # A generated password is printed once.
    p = ctl(s, "user", "add", "ops", "ops@example.com")
    m = re.search(r"^password: (\S+)$", ok(p), re.M)
    assert m, p.stdout
    ops_pw = m.group(1)
    s.start()
    b = login(s, "root", "offline-root-pw")
    assert b["roles"] == ["ADMIN", "USER"]
    assert login(s, "ops", ops_pw)["roles"] == ["USER"]
    # The users table was not empty: no bootstrap admin.
    users = ok(ctl(s, "user", "list")).splitlines()
    assert sorted(line.split()[1] for line in users) == ["ops", "root"], users
    r = s.get(ME, headers=bearer(b["token"]))
    assert r.status == 200 and r.json()["roles"] == ["ADMIN", "USER"], r
    assert_secrets_not_logged(s, ["offline-root-pw", ops_pw])


def test_offline_tiers_follow_the_config(leakyd_factory):
    """leakyctl derives tiers from [auth] tiers of its configuration: with USER and
    ADMIN only, an ORG_ADMIN's tier is USER."""
    s = leakyd_factory({"auth": {"tiers": "USER:0,ADMIN:10"}}, env={}, start=False)
    ok(ctl(s, "user", "add", "boss", "boss@example.com", "--admin"))
    ok(ctl(s, "user", "add", "lead", "lead@example.com"))
    ok(ctl(s, "user", "roles", "lead", "ORG_ADMIN,USER"))
    show = json.loads(ok(ctl(s, "user", "show", "lead", "--json")))
    assert show["roles"] == ["ORG_ADMIN", "USER"] and show["tier"] == "USER", show
    assert json.loads(ok(ctl(s, "user", "show", "boss", "--json")))["tier"] == "ADMIN"
    tiers = {line.split()[1]: line.split()[4] for line in ok(ctl(s, "user", "list")).splitlines()}
    assert tiers == {"boss": "tier=ADMIN", "lead": "tier=USER"}, tiers
    p = ctl(s, "user", "tier", "lead", "ORG_ADMIN")
    assert p.returncode == EX_DATAERR and "unknown tier 'ORG_ADMIN'" in p.stderr, p.stderr


def test_read_commands_need_a_database(tmp_path):
    for args in (["user", "list"], ["user", "show", "x"], ["org", "list"], ["keys", "list"],
                 ["audit"], ["key", "list", "x"]):
        p = run([LEAKYCTL, "-d", tmp_path / "none"] + args)
        assert p.returncode == EX_NOINPUT, (args, p.returncode, p.stderr)
        assert "no database" in p.stderr
    assert not (tmp_path / "none").exists()


# ------------------------------------------------------------------- online --

def test_user_add_online_and_duplicates(srv):
    p = ctl(srv, "user", "add", "carol", "carol@example.com", "--password-stdin", "--json",
            input="carol-password-1\n")
    b = json.loads(ok(p))
    assert UUID_ANY.match(b["id"]) and b["username"] == "carol" and b["roles"] == ["USER"]
    assert "password" not in b
    assert login(srv, "carol", "carol-password-1")["userId"] == b["id"]
    p = ctl(srv, "user", "add", "CAROL", "other@example.com", "--password-stdin", input="x" * 9)
    assert p.returncode == EX_DATAERR and "username already exists" in p.stderr
    p = ctl(srv, "user", "add", "carol2", "Carol@Example.com", "--password-stdin", input="x" * 9)
    assert p.returncode == EX_DATAERR and "email already exists" in p.stderr
    # Taken over the API too.
    register(srv, "carol", email="c3@example.com", expect=409)
    p = ctl(srv, "user", "add", "dave", "dave@example.com", "--password-stdin", input="short\n")
    assert p.returncode == EX_DATAERR and "password" in p.stderr
    p = ctl(srv, "user", "add", "no spaces", "x@example.com")
    assert p.returncode == EX_DATAERR


def test_revoke_takes_effect_at_once(srv):
    u = make_user(srv, "rev")
    # A key made by leakyctl works in leakyd (same pepper, same digest).
    p = ctl(srv, "key", "create", u["username"], "--name", "ctl-made", "--json")
    k = json.loads(ok(p))
    assert APIKEY_RE.match(k["apiKey"]) and k["name"] == "ctl-made" and k["userId"] == u["id"]
    h = {"X-Api-Key": k["apiKey"]}
    for _ in range(3):                                   # warm the cache
        assert srv.get(ME, headers=h).status == 200
        assert srv.get(VALIDATE, headers=h).status == 200
    listed = ok(ctl(srv, "key", "list", u["username"]))
    assert k["id"] in listed and k["prefix"] in listed and k["apiKey"] not in listed
    assert ok(ctl(srv, "key", "revoke", u["username"], k["id"])).startswith("revoked key")
    assert_unauthorized(srv.get(ME, headers=h), ME)
    assert_unauthorized(srv.get(VALIDATE, headers=h), VALIDATE)
    assert k["id"] not in ok(ctl(srv, "key", "list", u["username"]))
    p = ctl(srv, "key", "revoke", u["username"], k["id"])
    assert p.returncode == EX_DATAERR and "no live key" in p.stderr
    # A key made over the API, revoked by its prefix.
    r = srv.post_json(KEYS, {"userId": u["id"]}, headers=bearer(u["token"]))
    assert r.status == 201, r
    k2 = r.json()
    h2 = {"X-Api-Key": k2["apiKey"]}
    assert srv.get(ME, headers=h2).status == 200
    ok(ctl(srv, "key", "revoke", u["username"], k2["prefix"]))
    assert_unauthorized(srv.get(ME, headers=h2), ME)
    assert_secrets_not_logged(srv, [k["apiKey"], k2["apiKey"], u["password"]])


def test_disable_takes_effect_at_once(srv):
    u = make_user(srv, "dis")
    r = srv.post_json(KEYS, {"userId": u["id"]}, headers=bearer(u["token"]))
    key = r.json()["apiKey"]
    for _ in range(3):
        assert srv.get(ME, headers=bearer(u["token"])).status == 200
        assert srv.get(ME, headers={"X-Api-Key": key}).status == 200
    assert ok(ctl(srv, "user", "disable", u["username"])) == f"disabled {u['username']}\n"
    assert_unauthorized(srv.get(ME, headers=bearer(u["token"])), ME)
    assert_unauthorized(srv.get(ME, headers={"X-Api-Key": key}), ME)
    login(srv, u["username"], u["password"], expect=401)
    assert "status: disabled" in ok(ctl(srv, "user", "show", u["username"]))
    ok(ctl(srv, "user", "enable", u["username"]))
    assert srv.get(ME, headers=bearer(u["token"])).status == 200
    assert srv.get(ME, headers={"X-Api-Key": key}).status == 200


def test_roles_and_tier_take_effect_at_once(srv):
    u, other = make_user(srv, "rol"), make_user(srv, "oth")
    tok = bearer(u["token"])
    assert srv.get(ME, headers=tok).json()["roles"] == ["USER"]
    assert srv.post_json(KEYS, {"userId": other["id"]}, headers=tok).status == 403
    assert ok(ctl(srv, "user", "roles", u["username"], "admin,USER")).strip().endswith(
        "roles ADMIN,USER")
    me = srv.get(ME, headers=tok).json()
    assert me["roles"] == ["ADMIN", "USER"] and me["tier"] == "ADMIN", me
    assert srv.post_json(KEYS, {"userId": other["id"]}, headers=tok).status == 201
    ok(ctl(srv, "user", "tier", u["username"], "GOLD"))
    assert srv.get(ME, headers=tok).json()["tier"] == "GOLD"
    ok(ctl(srv, "user", "tier", u["username"], "-"))
    assert srv.get(ME, headers=tok).json()["tier"] == "ADMIN"
    ok(ctl(srv, "user", "roles", u["username"], "USER"))
    assert srv.get(ME, headers=tok).json()["roles"] == ["USER"]
    assert srv.post_json(KEYS, {"userId": other["id"]}, headers=tok).status == 403
    show = json.loads(ok(ctl(srv, "user", "show", u["username"], "--json")))
    assert show["roles"] == ["USER"] and show["tier"] == "USER" and show["explicitTier"] is None
    p = ctl(srv, "user", "roles", u["username"], "ROOT")
    assert p.returncode == EX_USAGE and "unknown role" in p.stderr
    # Only configured tiers: a bad name and a well-formed unconfigured one alike.
    for t in ("bad tier", "SILVER", "gold"):
        p = ctl(srv, "user", "tier", u["username"], t)
        assert p.returncode == EX_DATAERR and "unknown tier" in p.stderr, (t, p.stderr)
    show = json.loads(ok(ctl(srv, "user", "show", u["username"], "--json")))
    assert show["explicitTier"] is None


def test_passwd(srv):
    u = make_user(srv, "pwd")
    ok(ctl(srv, "user", "passwd", u["username"], "--password-stdin", input="brand-new-pw-1\n"))
    login(srv, u["username"], u["password"], expect=401)
    login(srv, u["username"], "brand-new-pw-1")
    m = re.search(r"^password: (\S+)$", ok(ctl(srv, "user", "passwd", u["username"])), re.M)
    assert m
    login(srv, u["username"], m.group(1))


def test_orgs(srv):
    u = make_user(srv, "org")
    name = f"Org-{u['username']}"
    p = ctl(srv, "org", "add", name)
    m = re.match(r"^created org (\S+) \(([0-9a-f-]{36})\)$", ok(p).strip())
    assert m, p.stdout
    org_id = m.group(2)
    p = ctl(srv, "org", "add", name.upper())
    assert p.returncode == EX_DATAERR and "already exists" in p.stderr
    assert org_id in ok(ctl(srv, "org", "list"))
    ok(ctl(srv, "org", "member", "add", name.lower(), u["username"], "ORG_ADMIN"))
    members = ok(ctl(srv, "org", "members", org_id))
    assert f"{u['id']} {u['username']} ORG_ADMIN" in members, members
    orgs = srv.get(ME, headers=bearer(u["token"])).json()["orgs"]
    assert [o.get("orgId", o.get("id")) for o in orgs] == [org_id], orgs
    ok(ctl(srv, "org", "member", "remove", org_id, u["username"]))
    assert ok(ctl(srv, "org", "members", name)) == ""
    p = ctl(srv, "org", "member", "remove", org_id, u["username"])
    assert p.returncode == EX_DATAERR and "not a member" in p.stderr
    p = ctl(srv, "org", "members", "no-such-org")
    assert p.returncode == EX_DATAERR and "no such org" in p.stderr
    p = ctl(srv, "org", "member", "add", org_id, u["username"], "ADMIN")
    assert p.returncode == EX_USAGE


def test_unknown_user_and_usage_errors(srv):
    for args in (["user", "show", "ghost"], ["user", "disable", "ghost"],
                 ["user", "roles", "ghost", "USER"], ["key", "create", "ghost"],
                 ["key", "list", "ghost"],
                 ["key", "revoke", "ghost", "00000000-0000-4000-8000-000000000000"]):
        p = ctl(srv, *args)
        assert p.returncode == EX_NOUSER, (args, p.returncode, p.stderr)
        assert "no such user 'ghost'" in p.stderr
    for args in (["user", "add", "onlyname"], ["user", "show"], ["user", "list", "extra"],
                 ["user", "show", "x", "--bogus"], ["key", "create", "x", "--name"],
                 ["audit", "--limit", "0"], ["audit", "--since", "yesterday"],
                 ["key", "revoke", "x", "not-a-key-id"], ["keys", "rotate", "now"]):
        p = ctl(srv, *args)
        assert p.returncode == EX_USAGE, (args, p.returncode, p.stderr)
    p = ctl(srv, "key", "create", "admin", "--expires", "2001-01-01T00:00:00Z")
    assert p.returncode == EX_DATAERR and "future" in p.stderr


def test_keys_rotate_while_running(srv):
    before = ok(ctl(srv, "keys", "list")).splitlines()
    assert len(before) == 1 and before[0].endswith(" active"), before
    old_kid = before[0].split()[0]
    old_token = login(srv, "admin", ADMIN_PASSWORD)["token"]
    assert jwt_decode(old_token)[0]["kid"] == old_kid
    assert srv.get(ME, headers=bearer(old_token)).status == 200
    p = ctl(srv, "keys", "rotate")
    m = re.match(r"^new signing key (\S+) \(secrets/jwt-\S+\.pem\)$", ok(p).splitlines()[0])
    assert m, p.stdout
    new_kid = m.group(1)
    assert f"retired {old_kid}" in p.stdout
    after = ok(ctl(srv, "keys", "list")).splitlines()
    assert len(after) == 2, after
    assert after[0].split()[0] == new_kid and after[0].endswith(" active"), after
    assert after[1].split()[0] == old_kid and after[1].endswith(" retired"), after
    assert "retired=-" not in after[1]
    # Tokens of the retired key keep working.
    assert srv.get(ME, headers=bearer(old_token)).status == 200


def test_keys_rotate_reaches_leakyd(srv):
    """leakyd picks up a key rotated by leakyctl: /oauth2/jwks lists both kids
    and a new login's token is signed with the new key."""
    old_kid = ok(ctl(srv, "keys", "list")).split()[0]
    new_kid = ok(ctl(srv, "keys", "rotate")).split()[3]
    kids = [k["kid"] for k in jwks(srv)["keys"]]
    assert set(kids) == {old_kid, new_kid}, kids
    tok = login(srv, "admin", ADMIN_PASSWORD)["token"]
    assert jwt_decode(tok)[0]["kid"] == new_kid
    assert srv.get(ME, headers=bearer(tok)).status == 200


def test_audit_shows_the_actions(srv):
    u = make_user(srv, "aud")
    k = json.loads(ok(ctl(srv, "key", "create", u["username"], "--json")))
    ok(ctl(srv, "user", "add", "audited", "audited@example.com", "--password-stdin",
           input="audited-pw-1\n"))
    ok(ctl(srv, "user", "disable", u["username"]))
    ok(ctl(srv, "user", "roles", u["username"], "ADMIN,USER"))
    ok(ctl(srv, "key", "revoke", u["username"], k["id"]))
    ok(ctl(srv, "keys", "rotate"))
    lines = ok(ctl(srv, "audit")).splitlines()
    rows = [line.split(" ", 4) for line in lines]
    ours = [(r[2], r[3]) for r in rows if r[1] == "leakyctl"]
    # Newest first.
    assert [a for a, _ in ours[:6]] == ["key.rotated", "key.revoked", "user.roles",
                                         "user.disabled", "user.created", "key.created"], lines
    assert ("key.revoked", k["id"]) in ours and ("user.disabled", u["id"]) in ours
    assert ours[2][1] == u["id"] and '"to":"ADMIN,USER"' in lines[2]
    times = [r[0] for r in rows]
    assert times == sorted(times, reverse=True)
    # Server-side actions are there too (registration by the user itself).
    assert any(r[2] == "user.registered" and r[3] == u["id"] for r in rows), lines
    assert k["apiKey"] not in "\n".join(lines)
    assert len(ok(ctl(srv, "audit", "--limit", "2")).splitlines()) == 2
    assert ok(ctl(srv, "audit", "--since", "2200-01-01T00:00:00Z")) == ""
    since = rows[1][0]
    assert len(ok(ctl(srv, "audit", "--since", since)).splitlines()) >= 2


def test_help_lists_identity_commands():
    p = run([LEAKYCTL, "help"])
    assert p.returncode == 0
    for c in ("user add", "user list", "user show", "user disable", "user enable",
              "user roles", "user tier", "user passwd", "org add", "org list",
              "org member add", "org member remove", "org members", "key create",
              "key list", "key revoke", "keys rotate", "keys list", "audit"):
        assert re.search(rf"^  {re.escape(c)}\s\s", p.stdout, re.M), c
