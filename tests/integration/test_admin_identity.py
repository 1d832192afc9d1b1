"""Admin API, identity part (API.md §7): users (create, list, get, disable,
enable, roles, tier), orgs and members, tiers, the audit trail.  Checks every
status and message, who may call what (ADMIN; ORG_ADMIN of its own org for
members), that disable/roles/tier/membership changes take effect on the very
next request of an existing token or API key (caches), and that every write
leaves an audit row naming the admin who did it."""

import uuid
from datetime import datetime, timezone

import pytest

from conftest import (ADMIN_PASSWORD, ISO_MS_Z, UUID_ANY, Leakyd, admin_token,
                      assert_error_body, assert_unauthorized, assert_validation_error, bearer,
                      login, new_username, register)

ME = "/api/v1/auth/me"
KEYS = "/api/v1/auth/api-keys"
CLOCK = "/admin/v1/clock"
USERS = "/admin/v1/users"
ORGS = "/admin/v1/orgs"
TIERS = "/admin/v1/tiers"
AUDIT = "/admin/v1/audit"

# GOLD and PLATINUM_2 are this module's own tiers; the rest are the defaults.
CONFIGURED_TIERS = "USER:0,ORG_ADMIN:1,ADMIN:2,GOLD:5,PLATINUM_2:7"
MSG_TIER = "tier must be one of the configured tiers"

USER_FIELDS = {"userId", "username", "email", "roles", "tier", "disabled", "createdAt"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Leakyd(tmp_path_factory.mktemp("admin"),
               {"debug": {"manual_clock": True}, "auth": {"tiers": CONFIGURED_TIERS}},
               env={"LEAKYD_ADMIN_PASSWORD": ADMIN_PASSWORD}, name="admin")
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def admin(srv):
    """(token, userId) of the bootstrap admin."""
    b = login(srv, "admin", ADMIN_PASSWORD)
    return {"token": b["token"], "userId": b["userId"]}


def make_user(srv, prefix="u"):
    name = new_username(prefix)
    pw = f"pw-{uuid.uuid4().hex[:12]}"
    b, _ = register(srv, name, pw)
    return {"userId": b["userId"], "username": name, "password": pw, "token": b["token"]}


def put_json(srv, path, obj, token):
    import json
    return srv.request("PUT", path, body=json.dumps(obj).encode(),
                       headers={"Content-Type": "application/json", **bearer(token)})


def post(srv, path, obj, token):
    return srv.post_json(path, obj, headers=bearer(token))


def get(srv, path, token):
    return srv.get(path, headers=bearer(token))


def delete(srv, path, token):
    return srv.request("DELETE", path, headers=bearer(token))


def create_org(srv, admin, name=None):
    name = name or f"org-{uuid.uuid4().hex[:10]}"
    r = post(srv, ORGS, {"name": name}, admin["token"])
    assert r.status == 201, r
    return r.json()


def add_member(srv, token, org_id, user_id, role="USER", expect=201):
    r = post(srv, f"{ORGS}/{org_id}/members", {"userId": user_id, "role": role}, token)
    assert r.status == expect, r
    return r


def audit(srv, admin, query=""):
    r = get(srv, AUDIT + query, admin["token"])
    assert r.status == 200, r
    return r.json()["items"]


def last_audit(srv, admin, action, target):
    """The newest audit row with this action and target (asserted present)."""
    for row in audit(srv, admin, "?limit=1000"):
        if row["action"] == action and row["target"] == target:
            return row
    raise AssertionError(f"no audit row {action} {target}")


def assert_user_shape(b):
    assert set(b) == USER_FIELDS, b
    assert UUID_ANY.match(b["userId"]), b
    assert ISO_MS_Z.match(b["createdAt"]), b
    assert isinstance(b["disabled"], bool)
    assert "USER" in b["roles"]


# ------------------------------------------------------------ authorization --

ADMIN_ONLY = [
    ("POST", USERS, {"username": "x", "email": "x@y.z", "password": "p"}),
    ("GET", USERS, None),
    ("GET", f"{USERS}/{uuid.uuid4()}", None),
    ("POST", f"{USERS}/{uuid.uuid4()}/disable", None),
    ("POST", f"{USERS}/{uuid.uuid4()}/enable", None),
    ("PUT", f"{USERS}/{uuid.uuid4()}/roles", {"roles": ["ADMIN"]}),
    ("PUT", f"{USERS}/{uuid.uuid4()}/tier", {"tier": "GOLD"}),
    ("POST", ORGS, {"name": "nope"}),
    ("GET", ORGS, None),
    ("GET", TIERS, None),
    ("GET", AUDIT, None),
]


@pytest.mark.parametrize("method,path,body", ADMIN_ONLY, ids=[f"{m} {p}" for m, p, _ in ADMIN_ONLY])
def test_admin_routes_refuse_users(srv, method, path, body):
    u = make_user(srv)
    import json
    h = {"Content-Type": "application/json"} if body is not None else {}
    raw = json.dumps(body).encode() if body is not None else None
    r = srv.request(method, path, body=raw, headers={**h, **bearer(u["token"])})
    b = assert_error_body(r, 403, path)
    assert b["message"] == "admin role required"
    assert_unauthorized(srv.request(method, path, body=raw, headers=h), path,
                        "authentication required")


# -------------------------------------------------------------- users: create --

def test_create_user(srv, admin):
    name = new_username("Made.By-Admin")
    r = post(srv, USERS, {"username": name, "email": f"{name}@example.com",
                          "password": "long-enough-1", "roles": ["ORG_ADMIN"], "tier": "GOLD"},
             admin["token"])
    assert r.status == 201, r
    b = r.json()
    assert_user_shape(b)
    assert b["username"] == name and b["email"] == f"{name}@example.com"
    assert b["roles"] == ["ORG_ADMIN", "USER"]
    assert b["tier"] == "GOLD" and b["disabled"] is False
    # The user can log in; its token carries the roles and the tier.
    tok = login(srv, name, "long-enough-1")["token"]
    me = get(srv, ME, tok).json()
    assert me["roles"] == ["ORG_ADMIN", "USER"] and me["tier"] == "GOLD", me
    row = last_audit(srv, admin, "user.created", b["userId"])
    assert row["actor"] == admin["userId"]
    assert row["detail"] == {"username": name, "roles": ["ORG_ADMIN", "USER"], "tier": "GOLD"}
    assert "long-enough-1" not in str(audit(srv, admin, "?limit=1000"))


def test_create_user_defaults(srv, admin):
    name = new_username("plain")
    r = post(srv, USERS, {"username": name, "email": f"{name}@example.com",
                          "password": "long-enough-1", "roles": None, "tier": None}, admin["token"])
    assert r.status == 201, r
    b = r.json()
    assert b["roles"] == ["USER"] and b["tier"] is None
    r = post(srv, USERS, {"username": name + "a", "email": f"{name}a@example.com",
                          "password": "long-enough-1", "roles": []}, admin["token"])
    assert r.status == 201 and r.json()["roles"] == ["USER"], r


@pytest.mark.parametrize("body", [
    {}, {"username": "abc", "email": "a@b.co"}, {"username": "", "email": "a@b.co", "password": "x"},
    {"username": 5, "email": "a@b.co", "password": "long-enough-1"}])
def test_create_user_required(srv, admin, body):
    r = post(srv, USERS, body, admin["token"])
    b = assert_error_body(r, 400, USERS)
    assert b["message"] == "username, email, and password are required"


def test_create_user_validation(srv, admin):
    r = post(srv, USERS, {"username": "a b", "email": "nope", "password": "short",
                          "roles": ["ADMIN", "ROOT"], "tier": "gold"}, admin["token"])
    b = assert_validation_error(r, USERS, "username")
    assert b["message"] == "username must be 3-50 characters of letters, digits, '.', '_' or '-'"
    fields = {e["field"]: e["message"] for e in b["errors"]}
    assert set(fields) == {"username", "email", "password", "roles", "tier"}, b
    assert fields["roles"] == "roles must be a list of ADMIN, ORG_ADMIN, USER"
    assert fields["tier"] == MSG_TIER
    name = new_username("v")
    ok = {"username": name, "email": f"{name}@example.com", "password": "long-enough-1"}
    for roles in (["admin"], "ADMIN", [1], [None]):
        r = post(srv, USERS, {**ok, "roles": roles}, admin["token"])
        assert_validation_error(r, USERS, "roles", "roles must be a list of ADMIN, ORG_ADMIN, USER")
    for tier in ("", "A" * 33, "GO-LD", "gold", "SILVER", 7, ["GOLD"]):
        r = post(srv, USERS, {**ok, "tier": tier}, admin["token"])
        assert_validation_error(r, USERS, "tier", MSG_TIER)
    # Nothing was created by the refused requests.
    assert post(srv, USERS, ok, admin["token"]).status == 201


def test_create_user_conflicts(srv, admin):
    u = make_user(srv, "dup")
    r = post(srv, USERS, {"username": u["username"].upper(), "email": "fresh-x@example.com",
                          "password": "long-enough-1"}, admin["token"])
    assert assert_error_body(r, 409, USERS)["message"] == "username already exists"
    r = post(srv, USERS, {"username": new_username("fresh"),
                          "email": f"{u['username'].upper()}@EXAMPLE.COM",
                          "password": "long-enough-1"}, admin["token"])
    assert assert_error_body(r, 409, USERS)["message"] == "email already exists"


# ----------------------------------------------------------- users: list, get --

def test_list_users_pagination(srv, admin):
    for _ in range(3):
        make_user(srv, "page")
    r = get(srv, USERS, admin["token"])
    assert r.status == 200, r
    b = r.json()
    assert set(b) == {"items", "offset", "limit", "total"}
    assert b["offset"] == 0 and b["limit"] == 50
    total = b["total"]
    assert total >= 4 and len(b["items"]) == min(total, 50)
    for it in b["items"]:
        assert_user_shape(it)
    created = [it["createdAt"] for it in b["items"]]
    assert created == sorted(created)                 # oldest first
    assert "admin" in [it["username"] for it in get(srv, f"{USERS}?limit=500",
                                                      admin["token"]).json()["items"]]
    everything = get(srv, f"{USERS}?limit=500", admin["token"]).json()["items"]
    assert len(everything) == min(total, 500)
    p1 = get(srv, f"{USERS}?offset=0&limit=2", admin["token"]).json()
    p2 = get(srv, f"{USERS}?offset=2&limit=2", admin["token"]).json()
    assert p1["limit"] == 2 and p2["offset"] == 2 and p1["total"] == total
    assert [u["userId"] for u in p1["items"] + p2["items"]] == \
        [u["userId"] for u in everything[:4]]
    past = get(srv, f"{USERS}?offset={total}", admin["token"]).json()
    assert past["items"] == [] and past["total"] == total


@pytest.mark.parametrize("query,message", [
    ("limit=0", "limit must be an integer between 1 and 500"),
    ("limit=501", "limit must be an integer between 1 and 500"),
    ("limit=ten", "limit must be an integer between 1 and 500"),
    ("limit=1.5", "limit must be an integer between 1 and 500"),
    ("offset=-1", "offset must be a non-negative integer"),
    ("offset=x", "offset must be a non-negative integer"),
    ("offset=99999999999999999999", "offset must be a non-negative integer"),
])
def test_list_users_bounds(srv, admin, query, message):
    r = get(srv, f"{USERS}?{query}", admin["token"])
    assert assert_error_body(r, 400, USERS)["message"] == message


def test_get_user(srv, admin):
    u = make_user(srv, "get")
    r = get(srv, f"{USERS}/{u['userId']}", admin["token"])
    assert r.status == 200, r
    b = r.json()
    assert_user_shape(b)
    assert b["userId"] == u["userId"] and b["roles"] == ["USER"] and b["tier"] is None
    assert get(srv, f"{USERS}/{u['userId'].upper()}", admin["token"]).json() == b
    path = f"{USERS}/{uuid.uuid4()}"
    assert assert_error_body(get(srv, path, admin["token"]), 404, path)["message"] == \
        "user not found"
    for bad in ("nope", "1234", str(uuid.uuid4())[:-1] + "g"):
        path = f"{USERS}/{bad}"
        assert assert_error_body(get(srv, path, admin["token"]), 400, path)["message"] == \
            "invalid userId"


# -------------------------------------------------- users: disable and enable --

def test_disable_takes_effect_at_once(srv, admin):
    u = make_user(srv, "off")
    r = post(srv, KEYS, {"userId": u["userId"]}, u["token"])
    assert r.status == 201, r
    key = r.json()["apiKey"]
    # Warm both caches.
    assert get(srv, ME, u["token"]).status == 200
    assert srv.get(ME, headers={"X-Api-Key": key}).status == 200
    path = f"{USERS}/{u['userId']}/disable"
    r = srv.request("POST", path, headers=bearer(admin["token"]))
    assert r.status == 200, r
    b = r.json()
    assert_user_shape(b)
    assert b["disabled"] is True
    assert_unauthorized(get(srv, ME, u["token"]), ME, "account disabled")
    assert_unauthorized(srv.get(ME, headers={"X-Api-Key": key}), ME, "account disabled")
    assert_unauthorized(srv.post_json("/api/v1/auth/login", {"username": u["username"],
                                                             "password": u["password"]}),
                        "/api/v1/auth/login", "invalid credentials")
    assert get(srv, f"{USERS}/{u['userId']}", admin["token"]).json()["disabled"] is True
    row = last_audit(srv, admin, "user.disabled", u["userId"])
    assert row["actor"] == admin["userId"] and row["detail"] is None
    # Enable: the same token and key work again.
    path = f"{USERS}/{u['userId']}/enable"
    r = srv.request("POST", path, headers=bearer(admin["token"]))
    assert r.status == 200 and r.json()["disabled"] is False, r
    assert get(srv, ME, u["token"]).status == 200
    assert srv.get(ME, headers={"X-Api-Key": key}).status == 200
    assert last_audit(srv, admin, "user.enabled", u["userId"])["actor"] == admin["userId"]


def test_disable_errors(srv, admin):
    for verb in ("disable", "enable"):
        path = f"{USERS}/{uuid.uuid4()}/{verb}"
        r = srv.request("POST", path, headers=bearer(admin["token"]))
        assert assert_error_body(r, 404, path)["message"] == "user not found"
        path = f"{USERS}/bad-id/{verb}"
        r = srv.request("POST", path, headers=bearer(admin["token"]))
        assert assert_error_body(r, 400, path)["message"] == "invalid userId"
    path = f"{USERS}/{admin['userId']}/disable"
    r = srv.request("POST", path, headers=bearer(admin["token"]))
    assert assert_error_body(r, 409, path)["message"] == "cannot disable your own account"
    assert get(srv, ME, admin["token"]).status == 200


# ---------------------------------------------------------------- users: roles --

def test_roles_take_effect_at_once(srv, admin):
    u = make_user(srv, "promo")
    assert get(srv, USERS, u["token"]).status == 403
    path = f"{USERS}/{u['userId']}/roles"
    r = put_json(srv, path, {"roles": ["ADMIN"]}, admin["token"])
    assert r.status == 200, r
    assert r.json()["roles"] == ["ADMIN", "USER"]
    # The token issued before the promotion is an admin's now.
    assert get(srv, USERS, u["token"]).status == 200
    me = get(srv, ME, u["token"]).json()
    assert me["roles"] == ["ADMIN", "USER"] and me["tier"] == "ADMIN", me
    row = last_audit(srv, admin, "user.roles", u["userId"])
    assert row["actor"] == admin["userId"] and row["detail"] == {"roles": ["ADMIN", "USER"]}
    # Demoted: 403 again, with the same token.
    r = put_json(srv, path, {"roles": ["USER", "ORG_ADMIN", "USER"]}, admin["token"])
    assert r.status == 200 and r.json()["roles"] == ["ORG_ADMIN", "USER"], r
    r = get(srv, USERS, u["token"])
    assert assert_error_body(r, 403, USERS)["message"] == "admin role required"
    assert get(srv, ME, u["token"]).json()["tier"] == "ORG_ADMIN"
    r = put_json(srv, path, {"roles": []}, admin["token"])
    assert r.status == 200 and r.json()["roles"] == ["USER"], r


def test_roles_errors(srv, admin):
    u = make_user(srv, "roles")
    path = f"{USERS}/{u['userId']}/roles"
    for body in ({}, {"roles": "ADMIN"}, {"roles": ["SUPER"]}, {"roles": [None]}, {"roles": None},
                 ["ADMIN"]):
        r = put_json(srv, path, body, admin["token"])
        assert assert_error_body(r, 400, path)["message"] == \
            "roles must be a list of ADMIN, ORG_ADMIN, USER", body
    path = f"{USERS}/{uuid.uuid4()}/roles"
    r = put_json(srv, path, {"roles": ["USER"]}, admin["token"])
    assert assert_error_body(r, 404, path)["message"] == "user not found"
    path = f"{USERS}/xyz/roles"
    r = put_json(srv, path, {"roles": ["USER"]}, admin["token"])
    assert assert_error_body(r, 400, path)["message"] == "invalid userId"
    path = f"{USERS}/{admin['userId']}/roles"
    r = put_json(srv, path, {"roles": ["ORG_ADMIN"]}, admin["token"])
    assert assert_error_body(r, 409, path)["message"] == "cannot remove your own ADMIN role"
    assert get(srv, USERS, admin["token"]).status == 200


# ----------------------------------------------------------------- users: tier --

def test_tier_takes_effect_at_once(srv, admin):
    u = make_user(srv, "tier")
    assert get(srv, ME, u["token"]).json()["tier"] == "USER"
    path = f"{USERS}/{u['userId']}/tier"
    r = put_json(srv, path, {"tier": "PLATINUM_2"}, admin["token"])
    assert r.status == 200 and r.json()["tier"] == "PLATINUM_2", r
    assert get(srv, ME, u["token"]).json()["tier"] == "PLATINUM_2"
    row = last_audit(srv, admin, "user.tier", u["userId"])
    assert row["actor"] == admin["userId"] and row["detail"] == {"tier": "PLATINUM_2"}
    tiers = get(srv, TIERS, admin["token"]).json()
    assert {"name": "PLATINUM_2", "priority": 7} in tiers
    r = put_json(srv, path, {"tier": None}, admin["token"])
    assert r.status == 200 and r.json()["tier"] is None, r
    assert get(srv, ME, u["token"]).json()["tier"] == "USER"
    assert last_audit(srv, admin, "user.tier", u["userId"])["detail"] == {"tier": None}


def test_tier_errors(srv, admin):
    u = make_user(srv, "tiere")
    path = f"{USERS}/{u['userId']}/tier"
    r = put_json(srv, path, {}, admin["token"])
    assert assert_error_body(r, 400, path)["message"] == "tier is required (a string or null)"
    for t in ("", "gold", "A" * 33, "GO LD", "SILVER", "A" * 32, 3, ["GOLD"]):
        r = put_json(srv, path, {"tier": t}, admin["token"])
        assert assert_error_body(r, 400, path)["message"] == "unknown tier", t
    assert put_json(srv, path, {"tier": "GOLD"}, admin["token"]).status == 200
    path = f"{USERS}/{uuid.uuid4()}/tier"
    r = put_json(srv, path, {"tier": "GOLD"}, admin["token"])
    assert assert_error_body(r, 404, path)["message"] == "user not found"


def test_tiers_list(srv, admin):
    expected = [{"name": "PLATINUM_2", "priority": 7}, {"name": "GOLD", "priority": 5},
                {"name": "ADMIN", "priority": 2}, {"name": "ORG_ADMIN", "priority": 1},
                {"name": "USER", "priority": 0}]
    r = get(srv, TIERS, admin["token"])
    assert r.status == 200, r
    assert r.json() == expected
    # Explicit tiers set on users add nothing: the list is the configuration.
    u = make_user(srv, "tb")
    assert put_json(srv, f"{USERS}/{u['userId']}/tier", {"tier": "ADMIN"},
                    admin["token"]).status == 200
    assert get(srv, TIERS, admin["token"]).json() == expected


def test_unconfigured_tier_refused(srv, admin):
    """A tier that is well formed but not in [auth] tiers is refused everywhere
    and changes nothing."""
    name = new_username("silver")
    r = post(srv, USERS, {"username": name, "email": f"{name}@example.com",
                          "password": "long-enough-1", "tier": "SILVER"}, admin["token"])
    assert_validation_error(r, USERS, "tier", MSG_TIER)
    login(srv, name, "long-enough-1", expect=401)
    u = make_user(srv, "silver")
    path = f"{USERS}/{u['userId']}/tier"
    assert put_json(srv, path, {"tier": "GOLD"}, admin["token"]).status == 200
    r = put_json(srv, path, {"tier": "SILVER"}, admin["token"])
    assert assert_error_body(r, 400, path)["message"] == "unknown tier"
    assert get(srv, ME, u["token"]).json()["tier"] == "GOLD"
    assert get(srv, f"{USERS}/{u['userId']}", admin["token"]).json()["tier"] == "GOLD"
    assert "SILVER" not in str(audit(srv, admin, "?limit=1000"))


def test_reference_tiers(leakyd_factory):
    """The reference's rule: with tiers USER and ADMIN only, an ORG_ADMIN's tier
    is USER (ORG_ADMIN is not a tier) and an ADMIN's is ADMIN."""
    s = leakyd_factory({"auth": {"tiers": "USER:0, ADMIN:10"}},
                       env={"LEAKYD_ADMIN_PASSWORD": ADMIN_PASSWORD})
    tok = login(s, "admin", ADMIN_PASSWORD)["token"]
    assert get(s, ME, tok).json()["tier"] == "ADMIN"
    assert get(s, TIERS, tok).json() == [{"name": "ADMIN", "priority": 10},
                                         {"name": "USER", "priority": 0}]
    name = new_username("oa")
    r = post(s, USERS, {"username": name, "email": f"{name}@example.com",
                        "password": "long-enough-1", "roles": ["ORG_ADMIN"]}, tok)
    assert r.status == 201 and r.json()["roles"] == ["ORG_ADMIN", "USER"], r
    me = get(s, ME, login(s, name, "long-enough-1")["token"]).json()
    assert me["roles"] == ["ORG_ADMIN", "USER"] and me["tier"] == "USER", me
    # ORG_ADMIN is not a configured tier here, so it cannot be set either.
    r = put_json(s, f"{USERS}/{r.json()['userId']}/tier", {"tier": "ORG_ADMIN"}, tok)
    assert r.status == 400 and r.json()["message"] == "unknown tier", r


# ------------------------------------------------------------------------ orgs --

def test_orgs(srv, admin):
    name = f"Acme-{uuid.uuid4().hex[:8]}"
    r = post(srv, ORGS, {"name": name}, admin["token"])
    assert r.status == 201, r
    o = r.json()
    assert set(o) == {"orgId", "name", "createdAt"} and o["name"] == name
    assert UUID_ANY.match(o["orgId"]) and ISO_MS_Z.match(o["createdAt"])
    r = post(srv, ORGS, {"name": name.upper()}, admin["token"])
    assert assert_error_body(r, 409, ORGS)["message"] == "org already exists"
    r = get(srv, ORGS, admin["token"])
    assert r.status == 200 and o in r.json(), r
    row = last_audit(srv, admin, "org.created", o["orgId"])
    assert row["actor"] == admin["userId"] and row["detail"] == {"name": name}
    for body in ({}, {"name": ""}, {"name": None}):
        r = post(srv, ORGS, body, admin["token"])
        assert assert_error_body(r, 400, ORGS)["message"] == "name is required"
    for body in ({"name": "x" * 101}, {"name": "a\nb"}, {"name": 5}, {"name": "   "}):
        r = post(srv, ORGS, body, admin["token"])
        assert assert_error_body(r, 400, ORGS)["message"] == \
            "name must be 1-100 characters without control characters"


# --------------------------------------------------------------------- members --

def test_members_by_admin(srv, admin):
    org = create_org(srv, admin)
    u = make_user(srv, "mem")
    base = f"{ORGS}/{org['orgId']}/members"
    assert get(srv, ME, u["token"]).json()["orgs"] == []
    r = add_member(srv, admin["token"], org["orgId"], u["userId"].upper(), "USER")
    m = r.json()
    assert set(m) == {"orgId", "userId", "role", "createdAt"}, m
    assert m["orgId"] == org["orgId"] and m["userId"] == u["userId"] and m["role"] == "USER"
    # /me lists the org at once, with the token issued before.
    assert get(srv, ME, u["token"]).json()["orgs"] == [{"orgId": org["orgId"], "role": "USER"}]
    row = last_audit(srv, admin, "org.member.added", org["orgId"])
    assert row["actor"] == admin["userId"]
    assert row["detail"] == {"userId": u["userId"], "role": "USER"}
    # Changing the role keeps the join time.
    m2 = add_member(srv, admin["token"], org["orgId"], u["userId"], "ORG_ADMIN").json()
    assert m2["role"] == "ORG_ADMIN" and m2["createdAt"] == m["createdAt"]
    r = get(srv, base, admin["token"])
    assert r.status == 200, r
    assert r.json() == [{"orgId": org["orgId"], "userId": u["userId"], "username": u["username"],
                         "role": "ORG_ADMIN", "createdAt": m["createdAt"]}]
    r = delete(srv, f"{base}/{u['userId']}", admin["token"])
    assert r.status == 204 and r.body == b"", r
    assert get(srv, ME, u["token"]).json()["orgs"] == []
    assert get(srv, base, admin["token"]).json() == []
    row = last_audit(srv, admin, "org.member.removed", org["orgId"])
    assert row["actor"] == admin["userId"] and row["detail"] == {"userId": u["userId"]}
    path = f"{base}/{u['userId']}"
    r = delete(srv, path, admin["token"])
    assert assert_error_body(r, 404, path)["message"] == "member not found"


def test_members_errors(srv, admin):
    org = create_org(srv, admin)
    u = make_user(srv, "meme")
    base = f"{ORGS}/{org['orgId']}/members"
    missing_org = f"{ORGS}/{uuid.uuid4()}/members"
    r = add_member(srv, admin["token"], uuid.uuid4(), u["userId"], expect=404)
    assert r.json()["message"] == "org not found"
    assert assert_error_body(get(srv, missing_org, admin["token"]), 404,
                             missing_org)["message"] == "org not found"
    path = f"{missing_org}/{u['userId']}"
    assert assert_error_body(delete(srv, path, admin["token"]), 404, path)["message"] == \
        "org not found"
    r = add_member(srv, admin["token"], org["orgId"], str(uuid.uuid4()), expect=404)
    assert assert_error_body(r, 404, base)["message"] == "user not found"
    for body, msg in (({"role": "USER"}, "userId is required"),
                      ({"userId": "", "role": "USER"}, "userId is required"),
                      ({"userId": "nope", "role": "USER"}, "invalid userId"),
                      ({"userId": 7, "role": "USER"}, "invalid userId"),
                      ({"userId": u["userId"]}, "role must be ORG_ADMIN or USER"),
                      ({"userId": u["userId"], "role": "ADMIN"}, "role must be ORG_ADMIN or USER"),
                      ({"userId": u["userId"], "role": "user"}, "role must be ORG_ADMIN or USER")):
        r = post(srv, base, body, admin["token"])
        assert assert_error_body(r, 400, base)["message"] == msg, body
    for path in (f"{ORGS}/bad/members", f"{ORGS}/bad/members/{u['userId']}"):
        r = delete(srv, path, admin["token"]) if path.count("/") == 6 else \
            get(srv, path, admin["token"])
        assert assert_error_body(r, 400, path)["message"] == "invalid orgId"
    path = f"{base}/bad"
    assert assert_error_body(delete(srv, path, admin["token"]), 400, path)["message"] == \
        "invalid userId"
    assert_unauthorized(srv.get(base), base, "authentication required")


def test_org_admin_manages_only_its_org(srv, admin):
    a = create_org(srv, admin)
    b = create_org(srv, admin)
    boss = make_user(srv, "boss")
    plain = make_user(srv, "plain")
    newbie = make_user(srv, "newbie")
    add_member(srv, admin["token"], a["orgId"], boss["userId"], "ORG_ADMIN")
    add_member(srv, admin["token"], b["orgId"], boss["userId"], "USER")
    add_member(srv, admin["token"], a["orgId"], plain["userId"], "USER")
    # Org A's ORG_ADMIN manages A's members (with the token it had before).
    r = add_member(srv, boss["token"], a["orgId"], newbie["userId"], "USER")
    assert r.json()["role"] == "USER"
    row = last_audit(srv, admin, "org.member.added", a["orgId"])
    assert row["actor"] == boss["userId"] and row["detail"]["userId"] == newbie["userId"]
    names = {m["username"] for m in get(srv, f"{ORGS}/{a['orgId']}/members", boss["token"]).json()}
    assert names == {boss["username"], plain["username"], newbie["username"]}
    assert delete(srv, f"{ORGS}/{a['orgId']}/members/{newbie['userId']}",
                  boss["token"]).status == 204
    assert last_audit(srv, admin, "org.member.removed", a["orgId"])["actor"] == boss["userId"]
    # ...but not B's (where it is a plain member), nor an org it is not in.
    c = create_org(srv, admin)
    for org in (b, c):
        base = f"{ORGS}/{org['orgId']}/members"
        for r, path in ((post(srv, base, {"userId": newbie["userId"], "role": "USER"},
                              boss["token"]), base),
                        (get(srv, base, boss["token"]), base),
                        (delete(srv, f"{base}/{boss['userId']}", boss["token"]),
                         f"{base}/{boss['userId']}")):
            assert assert_error_body(r, 403, path)["message"] == "not allowed for this org"
    # A non-ADMIN asking about an org that does not exist learns nothing more.
    base = f"{ORGS}/{uuid.uuid4()}/members"
    assert assert_error_body(get(srv, base, boss["token"]), 403, base)["message"] == \
        "not allowed for this org"
    # A plain member of A cannot manage A.
    base = f"{ORGS}/{a['orgId']}/members"
    for r in (get(srv, base, plain["token"]),
              post(srv, base, {"userId": newbie["userId"], "role": "USER"}, plain["token"])):
        assert assert_error_body(r, 403, base)["message"] == "not allowed for this org"
    # Demoted inside A: refused on the next request, same token.
    add_member(srv, admin["token"], a["orgId"], boss["userId"], "USER")
    r = get(srv, base, boss["token"])
    assert assert_error_body(r, 403, base)["message"] == "not allowed for this org"
    # The org admin role in an org gives no admin route.
    assert get(srv, ORGS, boss["token"]).status == 403


def test_me_lists_memberships(srv, admin):
    u = make_user(srv, "meorgs")
    o1 = create_org(srv, admin)
    o2 = create_org(srv, admin)
    add_member(srv, admin["token"], o1["orgId"], u["userId"], "USER")
    add_member(srv, admin["token"], o2["orgId"], u["userId"], "ORG_ADMIN")
    me = get(srv, ME, u["token"]).json()
    # Ordered by join time, then org id (the manual clock stands still here).
    assert sorted(me["orgs"], key=lambda o: o["orgId"]) == sorted(
        [{"orgId": o1["orgId"], "role": "USER"}, {"orgId": o2["orgId"], "role": "ORG_ADMIN"}],
        key=lambda o: o["orgId"]), me
    # Also through an API key of the user.
    key = post(srv, KEYS, {"userId": u["userId"]}, u["token"]).json()["apiKey"]
    assert srv.get(ME, headers={"X-Api-Key": key}).json()["orgs"] == me["orgs"]


# ----------------------------------------------------------------------- audit --

def iso(ms):
    d = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def test_audit_listing(srv, admin):
    items = audit(srv, admin)
    assert 1 <= len(items) <= 100
    for it in items:
        assert set(it) == {"id", "at", "actor", "action", "target", "detail"}, it
        assert ISO_MS_Z.match(it["at"]) and isinstance(it["id"], int)
    keys = [(it["at"], it["id"]) for it in items]
    assert keys == sorted(keys, reverse=True)        # newest first
    # Registration is audited too (by the user itself).
    u = make_user(srv, "aud")
    row = last_audit(srv, admin, "user.registered", u["userId"])
    assert row["actor"] == u["userId"]
    assert len(audit(srv, admin, "?limit=1")) == 1
    assert len(audit(srv, admin, "?limit=1000")) >= len(items)
    # since: only rows at or after it.
    r = srv.post_json(CLOCK, {"advanceMs": 60000})
    assert r.status == 200, r
    now = r.json()["nowMs"]
    org = create_org(srv, admin)
    newer = audit(srv, admin, f"?since={iso(now)}")
    assert [(x["action"], x["target"]) for x in newer] == [("org.created", org["orgId"])]
    assert newer[0]["at"] == iso(now)
    assert audit(srv, admin, f"?since={iso(now + 1)}") == []
    everything = audit(srv, admin, "?limit=1000")
    assert audit(srv, admin, "?since=2000-01-01T00:00:00Z") == everything[:100]


@pytest.mark.parametrize("query,message", [
    ("limit=0", "limit must be an integer between 1 and 1000"),
    ("limit=1001", "limit must be an integer between 1 and 1000"),
    ("limit=x", "limit must be an integer between 1 and 1000"),
    ("since=yesterday", "invalid since: an ISO-8601 time is required"),
    ("since=2026-13-01T00:00:00Z", "invalid since: an ISO-8601 time is required"),
])
def test_audit_bounds(srv, admin, query, message):
    r = get(srv, f"{AUDIT}?{query}", admin["token"])
    assert assert_error_body(r, 400, AUDIT)["message"] == message


def test_every_write_is_audited(srv, admin):
    """One of each write, then the newest audit rows are exactly those, in
    reverse order, each by the admin."""
    name = new_username("each")
    before = audit(srv, admin, "?limit=1")[0]["id"]
    uid = post(srv, USERS, {"username": name, "email": f"{name}@example.com",
                            "password": "long-enough-1"}, admin["token"]).json()["userId"]
    org = create_org(srv, admin)
    steps = [
        lambda: srv.request("POST", f"{USERS}/{uid}/disable", headers=bearer(admin["token"])),
        lambda: srv.request("POST", f"{USERS}/{uid}/enable", headers=bearer(admin["token"])),
        lambda: put_json(srv, f"{USERS}/{uid}/roles", {"roles": ["ORG_ADMIN"]}, admin["token"]),
        lambda: put_json(srv, f"{USERS}/{uid}/tier", {"tier": "GOLD"}, admin["token"]),
        lambda: post(srv, f"{ORGS}/{org['orgId']}/members", {"userId": uid, "role": "USER"},
                     admin["token"]),
        lambda: delete(srv, f"{ORGS}/{org['orgId']}/members/{uid}", admin["token"]),
    ]
    for s in steps:
        assert s().status in (200, 201, 204)
    rows = [r for r in audit(srv, admin, "?limit=50") if r["id"] > before]
    assert [(r["action"], r["target"]) for r in reversed(rows)] == [
        ("user.created", uid), ("org.created", org["orgId"]), ("user.disabled", uid),
        ("user.enabled", uid), ("user.roles", uid), ("user.tier", uid),
        ("org.member.added", org["orgId"]), ("org.member.removed", org["orgId"])]
    assert {r["actor"] for r in rows} == {admin["userId"]}
    # Refused requests leave no row.
    put_json(srv, f"{USERS}/{uid}/tier", {"tier": "bad"}, admin["token"])
    post(srv, ORGS, {"name": org["name"]}, admin["token"])
    assert audit(srv, admin, "?limit=1")[0]["id"] == rows[0]["id"]
