"""Identity (API.md §1): register, login, failed-login throttling, /oauth2/jwks,
the claims of the tokens, credentials on authenticated endpoints, API keys
(create, list, revoke, validate, expiry), /me, the secrets directory, the
bootstrap admin, and no secret in the log."""

import json
import os
import re
import sqlite3
import stat
import time
import uuid
from datetime import datetime, timezone

import pytest

from conftest import (ADMIN_PASSWORD, APIKEY_RE, ISO_MS_Z, UUID_ANY, Leakyd, admin_token,
                      assert_common_headers, assert_error_body, assert_secrets_not_logged,
                      assert_unauthorized, assert_validation_error, b64url, b64url_decode, bearer,
                      jwk_int, jwks, jwt_decode, login, new_username, register, rs256_verify)

CLOCK = "/admin/v1/clock"
REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
KEYS = "/api/v1/auth/api-keys"
VALIDATE = "/api/v1/auth/api-keys/validate"
JWKS = "/oauth2/jwks"

DEFAULT_ISSUER = "leaky-tokens-auth"
DEFAULT_AUDIENCE = "leaky-tokens"
DEFAULT_TTL = 3600

# Every secret the module server has seen: none may appear in its log.
SEEN = []

IDENTITY_ENV = {"LEAKYD_ADMIN_PASSWORD": ADMIN_PASSWORD}


def iso_to_ms(s):
    d = datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return round(d.timestamp() * 1000)


def ms_to_iso(ms):
    d = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def clock_ms(srv):
    r = srv.get(CLOCK)
    assert r.status == 200, r
    return r.json()["nowMs"]


def advance(srv, ms):
    r = srv.post_json(CLOCK, {"advanceMs": ms})
    assert r.status == 200, r
    return r.json()["nowMs"]


def aud_ok(aud, expected):
    return aud == expected or (isinstance(aud, list) and expected in aud)


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    """One leakyd for the identity tests: manual clock, debug log, admin
    password from the environment.  At the end its log must hold no secret
    any test saw."""
    srv = Leakyd(tmp_path_factory.mktemp("idp"),
                 {"debug": {"manual_clock": True}, "log": {"level": "debug", "access": True}},
                 env=IDENTITY_ENV, name="idp")
    srv.start()
    yield srv
    try:
        srv.stop()
    finally:
        assert_secrets_not_logged(srv, SEEN + [ADMIN_PASSWORD])


def make_user(srv, prefix="u"):
    """Register a fresh user: {userId, username, email, password, token}."""
    name = new_username(prefix)
    password = f"pw-{uuid.uuid4().hex[:16]}"
    body, _ = register(srv, name, password)
    SEEN.extend([password, body["token"]])
    return {"userId": body["userId"], "username": name, "email": body["email"],
            "password": password, "token": body["token"]}


@pytest.fixture
def user(idp):
    return make_user(idp, "alice")


@pytest.fixture
def other(idp):
    return make_user(idp, "bob")


@pytest.fixture(scope="module")
def admin(idp):
    t = admin_token(idp)
    SEEN.append(t)
    return t


def create_key(srv, token, user_id, expect=201, **fields):
    body = {"userId": user_id}
    body.update(fields)
    r = srv.post_json(KEYS, body, headers=bearer(token))
    assert r.status == expect, r
    if expect == 201:
        b = r.json()
        m = APIKEY_RE.match(b["apiKey"])
        SEEN.extend([b["apiKey"], m.group(2) if m else b["apiKey"]])
        return b
    return r


# ---------------------------------------------------------------- register --

def test_register_returns_user_and_token(idp):
    now = clock_ms(idp)
    name = new_username("Reg.User-")
    r = idp.post_json(REGISTER, {"username": name, "email": f"{name}@Example.org",
                                 "password": "s3cret-pass"})
    assert r.status == 201, r
    assert r.header("Content-Type") == "application/json"
    assert_common_headers(r)
    assert r.header("Cache-Control") == "no-store"      # it carries a token
    b = r.json()
    SEEN.append(b["token"])
    assert set(b) == {"userId", "username", "email", "token", "roles", "createdAt", "expiresAt"}, b
    assert UUID_ANY.match(b["userId"]), b["userId"]
    assert b["username"] == name
    assert b["email"].lower() == f"{name}@example.org".lower()
    assert b["roles"] == ["USER"]
    assert ISO_MS_Z.match(b["createdAt"]) and ISO_MS_Z.match(b["expiresAt"]), b
    # The manual clock is frozen: everything is stamped with its time.
    assert abs(iso_to_ms(b["createdAt"]) - now) < 1000, (b["createdAt"], ms_to_iso(now))
    _, claims, _ = jwt_decode(b["token"])
    assert iso_to_ms(b["expiresAt"]) == claims["exp"] * 1000, (b["expiresAt"], claims)
    assert claims["sub"] == b["userId"]


def test_register_token_works_on_me(idp, user):
    r = idp.get(ME, headers=bearer(user["token"]))
    assert r.status == 200, r
    assert_common_headers(r)
    assert r.header("Cache-Control") == "no-store", r.header("Cache-Control")
    b = r.json()
    assert b == {"userId": user["userId"], "username": user["username"], "roles": ["USER"],
                 "tier": "USER", "orgs": []}, b


@pytest.mark.parametrize("body", [
    {},
    {"email": "a@b.co", "password": "password1"},
    {"username": "someone1", "password": "password1"},
    {"username": "someone2", "email": "a2@b.co"},
    {"username": None, "email": "a3@b.co", "password": "password1"},
])
def test_register_missing_fields(idp, body):
    r = idp.post_json(REGISTER, body)
    b = assert_validation_error(r, REGISTER)
    assert b["message"] == "username, email, and password are required", b


@pytest.mark.parametrize("username", ["ab", "x" * 51, "has space", "sl/ash", "semi;colon",
                                     "caf\u00e9", "tab\tname", "at@sign", "quote'd"])
def test_register_invalid_username(idp, username):
    r = idp.post_json(REGISTER, {"username": username, "email": f"{uuid.uuid4().hex[:8]}@ex.com",
                                 "password": "password1"})
    assert_validation_error(r, REGISTER, field="username")


@pytest.mark.parametrize("email", ["plainaddress", "no-dot@localhost", "@example.com",
                                   "user@", "two@@example.com", "a@b@example.com",
                                   ("x" * 89) + "@example.com"])  # last: 101 chars
def test_register_invalid_email(idp, email):
    r = idp.post_json(REGISTER, {"username": new_username("em"), "email": email,
                                 "password": "password1"})
    assert_validation_error(r, REGISTER, field="email")


@pytest.mark.parametrize("password", ["short7!", "p" * 257])
def test_register_invalid_password(idp, password):
    r = idp.post_json(REGISTER, {"username": new_username("pw"), "email":
                                 f"{uuid.uuid4().hex[:10]}@ex.com", "password": password})
    b = assert_validation_error(r, REGISTER, field="password")
    assert password not in r.text, "the password is echoed in the error"
    assert b["errors"]


def test_register_boundaries_accepted(idp):
    # username 3 and 50 chars of the full alphabet, email of exactly 100,
    # password of 8 and of 256.
    short = "a" + uuid.uuid4().hex[:2]
    long_ = ("Ab.9_-" + uuid.uuid4().hex)[:50].ljust(50, "z")
    email100 = uuid.uuid4().hex[:12] + "x" * (100 - 12 - len("@example.com")) + "@example.com"
    assert len(long_) == 50 and len(email100) == 100
    b, _ = register(idp, short, "p" * 8, email=f"{short}@ex.com")
    assert b["username"] == short
    b, _ = register(idp, long_, "q" * 256, email=email100)
    assert b["username"] == long_
    assert login(idp, long_, "q" * 256)["userId"] == b["userId"]
    assert login(idp, short, "p" * 8)["username"] == short


@pytest.mark.parametrize("body", [
    {"username": 12345, "email": "n1@ex.com", "password": "password1"},
    {"username": "typed1", "email": ["n2@ex.com"], "password": "password1"},
    {"username": "typed2", "email": "n3@ex.com", "password": 123456789},
])
def test_register_wrong_types(idp, body):
    assert_validation_error(idp.post_json(REGISTER, body), REGISTER)


def test_register_malformed_and_non_json(idp):
    b = assert_error_body(idp.post_json(REGISTER, raw=b'{"username": "x",'), 400, REGISTER)
    assert b["message"]
    r = idp.request("POST", REGISTER, body=b'{"username":"a","email":"a@b.co","password":"p"}',
                    headers={"Content-Type": "text/plain"})
    assert_error_body(r, 415, REGISTER)
    assert_error_body(idp.post_json(REGISTER, raw=b'["a"]'), 400, REGISTER)


def test_register_duplicate_username_case_insensitive(idp, user):
    for name in (user["username"], user["username"].upper(), user["username"].capitalize()):
        r = idp.post_json(REGISTER, {"username": name, "email": f"{uuid.uuid4().hex[:8]}@ex.com",
                                     "password": "password1"})
        b = assert_error_body(r, 409, REGISTER)
        assert b["message"] == "username already exists", b


def test_register_duplicate_email(idp, user):
    for email in (user["email"], user["email"].upper()):
        r = idp.post_json(REGISTER, {"username": new_username("dup"), "email": email,
                                     "password": "password1"})
        b = assert_error_body(r, 409, REGISTER)
        assert b["message"] == "email already exists", b


def test_register_admin_name_is_taken(idp):
    for name in ("admin", "ADMIN", "Admin"):
        r = idp.post_json(REGISTER, {"username": name, "email": f"{uuid.uuid4().hex[:8]}@ex.com",
                                     "password": "password1"})
        b = assert_error_body(r, 409, REGISTER)
        assert b["message"] == "username already exists", b


# ------------------------------------------------------------------- login --

def test_login_ok(idp, user):
    r = idp.post_json(LOGIN, {"username": user["username"], "password": user["password"]})
    assert r.status == 200, r
    assert_common_headers(r)
    assert r.header("Cache-Control") == "no-store"
    b = r.json()
    SEEN.append(b["token"])
    assert set(b) == {"userId", "username", "token", "roles", "expiresAt"}, b
    assert b["userId"] == user["userId"]
    assert b["username"] == user["username"]
    assert b["roles"] == ["USER"]
    assert ISO_MS_Z.match(b["expiresAt"])
    _, claims, _ = jwt_decode(b["token"])
    assert iso_to_ms(b["expiresAt"]) == claims["exp"] * 1000
    assert idp.get(ME, headers=bearer(b["token"])).json()["userId"] == user["userId"]


@pytest.fixture
def fresh(leakyd_factory):
    """A server of its own, for tests whose failed logins count against
    127.0.0.1 (the per-IP throttle is not persisted: a new server starts clean)."""
    return leakyd_factory({"debug": {"manual_clock": True}}, env=IDENTITY_ENV)


@pytest.mark.parametrize("body", [{}, {"username": "someone"}, {"password": "password1"},
                                  {"username": "", "password": ""}])
def test_login_missing_fields(fresh, body):
    r = fresh.post_json(LOGIN, body)
    b = assert_error_body(r, 401, LOGIN)
    assert b["message"] == "username and password are required", b


def test_login_bad_credentials(fresh):
    u = make_user(fresh)
    r = fresh.post_json(LOGIN, {"username": u["username"], "password": "wrong-password-1"})
    assert assert_error_body(r, 401, LOGIN)["message"] == "invalid credentials"
    r = fresh.post_json(LOGIN, {"username": "nobody-" + uuid.uuid4().hex[:8],
                                "password": u["password"]})
    assert assert_error_body(r, 401, LOGIN)["message"] == "invalid credentials"
    assert "token" not in r.text
    # A good login still works after fewer than five failures.
    assert login(fresh, u["username"], u["password"])["userId"] == u["userId"]


def test_login_throttled_per_username(fresh):
    u = make_user(fresh)
    for i in range(5):
        r = fresh.post_json(LOGIN, {"username": u["username"], "password": f"wrong-pass-{i}"})
        assert r.status == 401, (i, r)
    r = fresh.post_json(LOGIN, {"username": u["username"], "password": "wrong-pass-5"})
    b = assert_error_body(r, 429, LOGIN)
    ra = r.header("Retry-After")
    assert ra is not None and re.match(r"^\d+$", ra), f"Retry-After: {ra!r}"
    assert 1 <= int(ra) <= 900, ra
    assert b["message"]
    # Locked means locked: the right password does not get through either
    # (otherwise the lock would leak which guess was right).
    r = fresh.post_json(LOGIN, {"username": u["username"], "password": u["password"]})
    assert r.status == 429, r
    assert r.header("Retry-After")
    # The token of the user (issued before) is not affected.
    assert fresh.get(ME, headers=bearer(u["token"])).status == 200


def test_login_throttled_per_ip(fresh):
    """Failures spread over many usernames from one address end in 429 too."""
    statuses = []
    for i in range(100):
        r = fresh.post_json(LOGIN, {"username": f"ghost{i}", "password": "nope-nope-1"})
        statuses.append(r.status)
        if r.status == 429:
            assert re.match(r"^\d+$", r.header("Retry-After") or ""), r.header("Retry-After")
            assert_error_body(r, 429, LOGIN)
            break
        assert r.status == 401, (i, r)
    assert statuses[-1] == 429, f"100 failed logins from one IP, never a 429: {statuses}"
    assert statuses[:5] == [401] * 5, statuses


def test_disabled_user_cannot_log_in_nor_use_tokens_or_keys(leakyd_factory):
    """Disabled with the server stopped (no admin API or leakyctl user yet):
    login, the user's JWT and API key are all refused after the restart.
    The live case (caches honouring a disable at once) needs the admin API."""
    srv = leakyd_factory({"debug": {"manual_clock": True}}, env=IDENTITY_ENV)
    u = make_user(srv)
    k = create_key(srv, u["token"], u["userId"], name="soon-dead")
    assert srv.get(ME, headers={"X-Api-Key": k["apiKey"]}).status == 200
    srv.stop()
    db = sqlite3.connect(os.path.join(srv.data_dir, "leaky.db"))
    with db:
        assert db.execute("UPDATE users SET disabled = 1 WHERE id = ?",
                          (u["userId"],)).rowcount == 1
    db.close()
    s2 = leakyd_factory({"debug": {"manual_clock": True}, "storage": {"data_dir": srv.data_dir}},
                        env=IDENTITY_ENV)
    r = s2.post_json(LOGIN, {"username": u["username"], "password": u["password"]})
    assert assert_error_body(r, 401, LOGIN)["message"] == "invalid credentials"
    assert_unauthorized(s2.get(ME, headers=bearer(u["token"])), ME)
    assert_unauthorized(s2.get(ME, headers={"X-Api-Key": k["apiKey"]}), ME)
    assert_unauthorized(s2.get(VALIDATE, headers={"X-Api-Key": k["apiKey"]}), VALIDATE)
    # Another user is unaffected.
    assert login(s2, "admin", ADMIN_PASSWORD)["roles"] == ["ADMIN", "USER"]


# -------------------------------------------------------------------- jwks --

def test_jwks_shape(idp):
    r = idp.get(JWKS)
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/json"
    assert_common_headers(r)
    b = r.json()
    assert set(b) == {"keys"} and isinstance(b["keys"], list) and b["keys"], b
    kids = set()
    for k in b["keys"]:
        assert set(k) == {"kty", "kid", "use", "alg", "n", "e"}, k   # no private members
        assert k["kty"] == "RSA" and k["use"] == "sig" and k["alg"] == "RS256", k
        assert isinstance(k["kid"], str) and k["kid"], k
        assert re.match(r"^[A-Za-z0-9_-]+$", k["n"]) and re.match(r"^[A-Za-z0-9_-]+$", k["e"])
        n = b64url_decode(k["n"])
        assert n[0] != 0, "n has a leading zero byte (JWK wants the minimal big-endian form)"
        assert len(n) * 8 >= 2048, len(n)
        assert jwk_int(k["e"]) == 65537
        kids.add(k["kid"])
    assert len(kids) == len(b["keys"])


def check_claims(srv, token, *, user_id, roles, tier, iss=DEFAULT_ISSUER, aud=DEFAULT_AUDIENCE,
                 ttl=DEFAULT_TTL, now_ms=None):
    header, claims, sig = jwt_decode(token)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": header.get("kid")}, header
    keys = {k["kid"]: k for k in jwks(srv)["keys"]}
    assert header["kid"] in keys, (header, list(keys))
    k = keys[header["kid"]]
    signing_input = token.rsplit(".", 1)[0].encode()
    assert rs256_verify(jwk_int(k["n"]), jwk_int(k["e"]), signing_input, sig), \
        "the RS256 signature does not verify against /oauth2/jwks"
    assert {"sub", "iss", "aud", "roles", "tier", "iat", "nbf", "exp", "jti"} <= set(claims), claims
    assert claims["sub"] == user_id
    assert claims["iss"] == iss, claims
    assert aud_ok(claims["aud"], aud), claims
    assert claims["roles"] == roles and claims["roles"] == sorted(claims["roles"]), claims
    assert claims["tier"] == tier, claims
    for c in ("iat", "nbf", "exp"):
        assert isinstance(claims[c], int), claims
    assert claims["nbf"] <= claims["iat"], claims
    assert claims["exp"] == claims["iat"] + ttl, claims
    if now_ms is not None:
        assert abs(claims["iat"] - now_ms // 1000) <= 1, (claims, now_ms)
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16, claims
    return header, claims


def test_token_header_claims_and_signature(idp, user):
    now = clock_ms(idp)
    a = login(idp, user["username"], user["password"])
    b = login(idp, user["username"], user["password"])
    SEEN.extend([a["token"], b["token"]])
    _, ca = check_claims(idp, a["token"], user_id=user["userId"], roles=["USER"], tier="USER",
                         now_ms=now)
    _, cb = check_claims(idp, b["token"], user_id=user["userId"], roles=["USER"], tier="USER")
    assert ca["jti"] != cb["jti"], "two tokens with one jti"
    check_claims(idp, user["token"], user_id=user["userId"], roles=["USER"], tier="USER")


def test_admin_token_and_me(idp, admin):
    b = login(idp, "admin", ADMIN_PASSWORD)
    SEEN.append(b["token"])
    assert b["roles"] == ["ADMIN", "USER"], b
    check_claims(idp, b["token"], user_id=b["userId"], roles=["ADMIN", "USER"], tier="ADMIN")
    r = idp.get(ME, headers=bearer(admin))
    assert r.status == 200, r
    assert r.json() == {"userId": b["userId"], "username": "admin", "roles": ["ADMIN", "USER"],
                        "tier": "ADMIN", "orgs": []}, r.json()


def test_auth_config_issuer_audience_ttl(leakyd_factory):
    srv = leakyd_factory({"auth": {"issuer": "custom-iss", "audience": "custom-aud",
                                   "token_ttl_s": 120}}, env=IDENTITY_ENV)
    u = make_user(srv)
    check_claims(srv, u["token"], user_id=u["userId"], roles=["USER"], tier="USER",
                 iss="custom-iss", aud="custom-aud", ttl=120)
    t = login(srv, "admin", ADMIN_PASSWORD)["token"]
    check_claims(srv, t, user_id=jwt_decode(t)[1]["sub"], roles=["ADMIN", "USER"], tier="ADMIN",
                 iss="custom-iss", aud="custom-aud", ttl=120)
    assert srv.get(ME, headers=bearer(t)).status == 200


# ------------------------------------------------------------- credentials --

def test_me_requires_credentials(idp):
    assert_unauthorized(idp.get(ME), ME, "authentication required")
    r = idp.get(ME, headers={"Authorization": "Bearer not.a.jwt"})
    assert_unauthorized(r, ME, "invalid token")
    r = idp.get(ME, headers={"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.AAAA"})
    assert_unauthorized(r, ME, "invalid token")
    r = idp.get(ME, headers={"Authorization": "Basic YWRtaW46eA=="})
    assert_unauthorized(r, ME)
    assert_unauthorized(idp.get(ME, headers={"Authorization": "Bearer "}), ME)


def test_bad_api_keys_rejected(idp):
    fake = "lt_" + "a" * 12 + "_" + "B" * 43
    assert_unauthorized(idp.get(ME, headers={"X-Api-Key": fake}), ME, "invalid api key")
    assert_unauthorized(idp.get(ME, headers=bearer(fake)), ME, "invalid api key")
    assert_unauthorized(idp.get(ME, headers={"X-Api-Key": "nope"}), ME, "invalid api key")


def test_api_key_works_as_x_api_key_and_bearer(idp, user):
    k = create_key(idp, user["token"], user["userId"], name="both-ways")
    want = {"userId": user["userId"], "username": user["username"], "roles": ["USER"],
            "tier": "USER", "orgs": []}
    for h in ({"X-Api-Key": k["apiKey"]}, bearer(k["apiKey"])):
        r = idp.get(ME, headers=h)
        assert r.status == 200, (h.keys(), r)
        assert r.json() == want
        assert r.header("Cache-Control") == "no-store"
    # A real key with one secret character changed is not a key.
    bad = k["apiKey"][:-1] + ("A" if k["apiKey"][-1] != "A" else "B")
    assert_unauthorized(idp.get(ME, headers={"X-Api-Key": bad}), ME, "invalid api key")
    assert_unauthorized(idp.get(ME, headers=bearer(bad)), ME, "invalid api key")


# ---------------------------------------------------------------- api keys --

def test_create_api_key_shape(idp, user):
    now = clock_ms(idp)
    r = idp.post_json(KEYS, {"userId": user["userId"], "name": "ci"}, headers=bearer(user["token"]))
    assert r.status == 201, r
    assert r.header("Content-Type") == "application/json"
    assert r.header("Cache-Control") == "no-store"         # the key is in it
    assert_common_headers(r)
    k = r.json()
    SEEN.append(k["apiKey"])
    assert set(k) == {"id", "userId", "name", "prefix", "createdAt", "expiresAt", "apiKey"}, k
    assert UUID_ANY.match(k["id"]), k
    assert k["userId"] == user["userId"] and k["name"] == "ci", k
    m = APIKEY_RE.match(k["apiKey"])
    assert m, k["apiKey"]
    assert k["prefix"] == m.group(1), k
    assert ISO_MS_Z.match(k["createdAt"]) and abs(iso_to_ms(k["createdAt"]) - now) < 1000, k
    assert k["expiresAt"] is None, k
    k2 = create_key(idp, user["token"], user["userId"])
    assert k2["apiKey"] != k["apiKey"] and k2["prefix"] != k["prefix"] and k2["id"] != k["id"]
    assert k2["name"] in (None, ""), k2


def test_create_api_key_with_expiry(idp, user):
    exp = clock_ms(idp) + 86400_000
    k = create_key(idp, user["token"], user["userId"], name="day", expiresAt=ms_to_iso(exp))
    assert k["expiresAt"] is not None and iso_to_ms(k["expiresAt"]) == exp, k
    r = idp.get(VALIDATE, headers={"X-Api-Key": k["apiKey"]})
    assert r.status == 200, r
    assert iso_to_ms(r.json()["expiresAt"]) == exp
    # Other spellings of an ISO-8601 UTC instant.
    day = (clock_ms(idp) // 86400_000 + 2) * 86400_000
    for text, ms in ((ms_to_iso(day)[:19] + "+00:00", day), (ms_to_iso(day)[:19] + ".5Z", day + 500),
                     (ms_to_iso(day)[:19] + "Z", day)):
        k = create_key(idp, user["token"], user["userId"], expiresAt=text)
        assert iso_to_ms(k["expiresAt"]) == ms, (text, k)


@pytest.mark.parametrize("expires", ["2000-01-01T00:00:00Z", "PAST", "tomorrow", "2030-13-45T00:00:00Z",
                                     12345])
def test_create_api_key_bad_expiry(idp, user, expires):
    if expires == "PAST":
        expires = ms_to_iso(clock_ms(idp) - 1000)
    r = idp.post_json(KEYS, {"userId": user["userId"], "expiresAt": expires},
                      headers=bearer(user["token"]))
    assert_validation_error(r, KEYS)


def test_create_api_key_requires_auth(idp, user):
    r = idp.post_json(KEYS, {"userId": user["userId"]})
    assert_unauthorized(r, KEYS, "authentication required")


def test_create_api_key_for_another_user_forbidden(idp, user, other):
    r = idp.post_json(KEYS, {"userId": other["userId"], "name": "steal"},
                      headers=bearer(user["token"]))
    assert_error_body(r, 403, KEYS)
    # ... and a USER's API key cannot do it either.
    k = create_key(idp, user["token"], user["userId"])
    r = idp.post_json(KEYS, {"userId": other["userId"]}, headers={"X-Api-Key": k["apiKey"]})
    assert_error_body(r, 403, KEYS)
    # Nothing was created for the other user.
    r = idp.get(f"{KEYS}?userId={other['userId']}", headers=bearer(other["token"]))
    assert r.status == 200 and r.json() == [], r


def test_create_api_key_for_unknown_user_by_user_forbidden(idp, user):
    r = idp.post_json(KEYS, {"userId": str(uuid.uuid4())}, headers=bearer(user["token"]))
    assert_error_body(r, 403, KEYS)


def test_admin_creates_key_for_user(idp, admin, user):
    k = create_key(idp, admin, user["userId"], name="by-admin")
    assert k["userId"] == user["userId"]
    r = idp.get(VALIDATE, headers={"X-Api-Key": k["apiKey"]})
    assert r.status == 200, r
    assert r.json()["userId"] == user["userId"] and r.json()["roles"] == ["USER"]
    me = idp.get(ME, headers={"X-Api-Key": k["apiKey"]}).json()
    assert me["username"] == user["username"] and me["tier"] == "USER", me


def test_admin_unknown_user_404(idp, admin):
    r = idp.post_json(KEYS, {"userId": str(uuid.uuid4())}, headers=bearer(admin))
    assert assert_error_body(r, 404, KEYS)["message"] == "user not found"


@pytest.mark.parametrize("uid", ["not-a-uuid", "1234", uuid.uuid4().hex, "", 42,
                                 "123e4567-e89b-12d3-a456-42661417400g"])
def test_create_api_key_invalid_user_id(idp, admin, uid):
    r = idp.post_json(KEYS, {"userId": uid}, headers=bearer(admin))
    b = assert_validation_error(r, KEYS)
    if uid not in ("", 42):
        assert b["message"] == "invalid userId", b


def test_create_api_key_missing_user_id(idp, user):
    assert_validation_error(idp.post_json(KEYS, {"name": "x"}, headers=bearer(user["token"])), KEYS)


def test_list_never_shows_key_material(idp, user):
    a = create_key(idp, user["token"], user["userId"], name="one")
    b = create_key(idp, user["token"], user["userId"], name="two",
                   expiresAt=ms_to_iso(clock_ms(idp) + 3600_000))
    r = idp.get(f"{KEYS}?userId={user['userId']}", headers=bearer(user["token"]))
    assert r.status == 200, r
    assert r.header("Cache-Control") == "no-store"
    items = r.json()
    assert isinstance(items, list) and len(items) == 2, items
    by_id = {i["id"]: i for i in items}
    assert set(by_id) == {a["id"], b["id"]}
    for k in (a, b):
        i = by_id[k["id"]]
        assert set(i) == {"id", "name", "prefix", "createdAt", "expiresAt", "lastUsedAt"}, i
        assert i["name"] == k["name"] and i["prefix"] == k["prefix"]
        assert i["createdAt"] == k["createdAt"] and i["expiresAt"] == k["expiresAt"]
        assert i["lastUsedAt"] is None, i
        secret = APIKEY_RE.match(k["apiKey"]).group(2)
        assert secret not in r.text and k["apiKey"] not in r.text
    assert "apiKey" not in r.text and "hash" not in r.text.lower() and "digest" not in r.text


def test_last_used_at(idp, user):
    k = create_key(idp, user["token"], user["userId"], name="used")
    t0 = clock_ms(idp)
    advance(idp, 5000)
    assert idp.get(ME, headers={"X-Api-Key": k["apiKey"]}).status == 200
    deadline = time.monotonic() + 10
    while True:
        items = idp.get(f"{KEYS}?userId={user['userId']}", headers=bearer(user["token"])).json()
        item = [i for i in items if i["id"] == k["id"]][0]
        if item["lastUsedAt"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert item["lastUsedAt"] is not None, "lastUsedAt never set after a use"
    assert ISO_MS_Z.match(item["lastUsedAt"])
    assert iso_to_ms(item["lastUsedAt"]) >= t0 + 5000, (item, ms_to_iso(t0))


def test_list_requires_user_id(idp, user):
    r = idp.get(KEYS, headers=bearer(user["token"]))
    assert assert_validation_error(r, KEYS)["message"] == "userId is required"
    r = idp.get(f"{KEYS}?userId=nope", headers=bearer(user["token"]))
    assert assert_validation_error(r, KEYS)["message"] == "invalid userId"
    assert_unauthorized(idp.get(f"{KEYS}?userId={user['userId']}"), KEYS, "authentication required")


def test_user_cannot_list_another_users_keys_admin_can(idp, admin, user, other):
    k = create_key(idp, other["token"], other["userId"], name="private")
    r = idp.get(f"{KEYS}?userId={other['userId']}", headers=bearer(user["token"]))
    assert_error_body(r, 403, KEYS)
    assert k["prefix"] not in r.text
    r = idp.get(f"{KEYS}?userId={other['userId']}", headers=bearer(admin))
    assert r.status == 200, r
    assert [i["id"] for i in r.json()] == [k["id"]]
    assert APIKEY_RE.match(k["apiKey"]).group(2) not in r.text


def test_revoke_is_immediate(idp, user):
    k = create_key(idp, user["token"], user["userId"], name="short-lived")
    r = idp.get(VALIDATE, headers={"X-Api-Key": k["apiKey"]})
    assert r.status == 200, r
    assert r.json() == {"userId": user["userId"], "name": "short-lived", "expiresAt": None,
                        "roles": ["USER"]}, r.json()
    # Warm every cache on the way.
    for _ in range(3):
        assert idp.get(ME, headers={"X-Api-Key": k["apiKey"]}).status == 200
        assert idp.get(ME, headers=bearer(k["apiKey"])).status == 200
    r = idp.request("DELETE", f"{KEYS}?userId={user['userId']}&apiKeyId={k['id']}",
                    headers=bearer(user["token"]))
    assert r.status == 204, r
    assert r.body == b""
    assert_common_headers(r)
    assert_unauthorized(idp.get(VALIDATE, headers={"X-Api-Key": k["apiKey"]}), VALIDATE,
                        "invalid api key")
    assert_unauthorized(idp.get(ME, headers={"X-Api-Key": k["apiKey"]}), ME, "invalid api key")
    assert_unauthorized(idp.get(ME, headers=bearer(k["apiKey"])), ME, "invalid api key")
    items = idp.get(f"{KEYS}?userId={user['userId']}", headers=bearer(user["token"])).json()
    assert k["id"] not in [i["id"] for i in items]
    r = idp.request("DELETE", f"{KEYS}?userId={user['userId']}&apiKeyId={k['id']}",
                    headers=bearer(user["token"]))
    assert assert_error_body(r, 404, KEYS)["message"] == "api key not found"


def test_revoke_with_the_key_itself(idp, user):
    """A principal authenticated by a key may revoke that key; the next
    request with it fails."""
    k = create_key(idp, user["token"], user["userId"])
    r = idp.request("DELETE", f"{KEYS}?userId={user['userId']}&apiKeyId={k['id']}",
                    headers={"X-Api-Key": k["apiKey"]})
    assert r.status == 204, r
    assert_unauthorized(idp.get(ME, headers={"X-Api-Key": k["apiKey"]}), ME, "invalid api key")


def test_revoke_unknown_and_bad_params(idp, user):
    u = user["userId"]
    h = bearer(user["token"])
    r = idp.request("DELETE", f"{KEYS}?userId={u}&apiKeyId={uuid.uuid4()}", headers=h)
    assert assert_error_body(r, 404, KEYS)["message"] == "api key not found"
    assert_validation_error(idp.request("DELETE", f"{KEYS}?userId={u}", headers=h), KEYS)
    k = create_key(idp, user["token"], u)
    assert_validation_error(idp.request("DELETE", f"{KEYS}?apiKeyId={k['id']}", headers=h), KEYS)
    assert_validation_error(idp.request("DELETE", f"{KEYS}?userId={u}&apiKeyId=zzz", headers=h),
                            KEYS)
    assert_unauthorized(idp.request("DELETE", f"{KEYS}?userId={u}&apiKeyId={k['id']}"), KEYS,
                        "authentication required")
    assert idp.get(VALIDATE, headers={"X-Api-Key": k["apiKey"]}).status == 200


def test_user_cannot_revoke_another_users_key_admin_can(idp, admin, user, other):
    k = create_key(idp, other["token"], other["userId"])
    path = f"{KEYS}?userId={other['userId']}&apiKeyId={k['id']}"
    assert_error_body(idp.request("DELETE", path, headers=bearer(user["token"])), 403, KEYS)
    # Naming oneself as the owner of someone else's key finds nothing.
    r = idp.request("DELETE", f"{KEYS}?userId={user['userId']}&apiKeyId={k['id']}",
                    headers=bearer(user["token"]))
    assert assert_error_body(r, 404, KEYS)["message"] == "api key not found"
    assert idp.get(VALIDATE, headers={"X-Api-Key": k["apiKey"]}).status == 200
    r = idp.request("DELETE", path, headers=bearer(admin))
    assert r.status == 204, r
    assert_unauthorized(idp.get(VALIDATE, headers={"X-Api-Key": k["apiKey"]}), VALIDATE,
                        "invalid api key")


def test_validate_errors(idp):
    assert_unauthorized(idp.get(VALIDATE), VALIDATE, "api key is required")
    fake = "lt_" + "0" * 12 + "_" + "z" * 43
    assert_unauthorized(idp.get(VALIDATE, headers={"X-Api-Key": fake}), VALIDATE, "invalid api key")
    assert_unauthorized(idp.get(VALIDATE, headers={"X-Api-Key": "garbage"}), VALIDATE,
                        "invalid api key")


def test_validate_expired_key(idp, user):
    now = clock_ms(idp)
    k = create_key(idp, user["token"], user["userId"], name="minute",
                   expiresAt=ms_to_iso(now + 60_000))
    r = idp.get(VALIDATE, headers={"X-Api-Key": k["apiKey"]})
    assert r.status == 200, r
    assert iso_to_ms(r.json()["expiresAt"]) == now + 60_000
    assert idp.get(ME, headers={"X-Api-Key": k["apiKey"]}).status == 200   # now cached
    advance(idp, 30_000)
    assert idp.get(VALIDATE, headers={"X-Api-Key": k["apiKey"]}).status == 200
    advance(idp, 31_000)
    assert_unauthorized(idp.get(VALIDATE, headers={"X-Api-Key": k["apiKey"]}), VALIDATE,
                        "api key expired")
    r = idp.get(ME, headers={"X-Api-Key": k["apiKey"]})
    assert_unauthorized(r, ME)
    assert r.json()["message"] in ("api key expired", "invalid api key"), r.json()
    assert idp.get(ME, headers=bearer(k["apiKey"])).status == 401


# ----------------------------------------------------------------- secrets --

def test_secrets_directory(idp):
    sec = os.path.join(idp.data_dir, "secrets")
    assert stat.S_IMODE(os.stat(sec).st_mode) == 0o700
    names = sorted(os.listdir(sec))
    kids = [k["kid"] for k in jwks(idp)["keys"]]
    for kid in kids:
        assert f"jwt-{kid}.pem" in names, (kid, names)
    for n in names:
        st = os.stat(os.path.join(sec, n))
        assert stat.S_ISREG(st.st_mode), n
        assert stat.S_IMODE(st.st_mode) == 0o600, (n, oct(st.st_mode))
    with open(os.path.join(sec, "apikey-pepper"), "rb") as f:
        assert len(f.read()) == 32
    with open(os.path.join(sec, f"jwt-{kids[0]}.pem")) as f:
        assert "PRIVATE KEY-----" in f.read()
    assert "initial-admin" not in names, "initial-admin written though the password was given"


def test_no_secret_in_log(leakyd_factory):
    srv = leakyd_factory({"debug": {"manual_clock": True}, "log": {"level": "debug"}},
                         env=IDENTITY_ENV)
    u = make_user(srv)
    wrong = "Wr0ng-" + uuid.uuid4().hex
    assert srv.post_json(LOGIN, {"username": u["username"], "password": wrong}).status == 401
    t = login(srv, u["username"], u["password"])["token"]
    adm = login(srv, "admin", ADMIN_PASSWORD)["token"]
    k = create_key(srv, t, u["userId"], name="logged?")
    k2 = create_key(srv, adm, u["userId"])
    srv.get(ME, headers=bearer(t))
    srv.get(ME, headers={"X-Api-Key": k["apiKey"]})
    srv.get(ME, headers=bearer(k2["apiKey"]))
    srv.get(VALIDATE, headers={"X-Api-Key": k["apiKey"]})
    tampered = t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB")
    srv.get(ME, headers=bearer(tampered))
    bad_key = k["apiKey"][:-1] + ("x" if k["apiKey"][-1] != "x" else "y")
    srv.get(ME, headers={"X-Api-Key": bad_key})
    srv.request("DELETE", f"{KEYS}?userId={u['userId']}&apiKeyId={k['id']}", headers=bearer(t))
    srv.get(ME, headers={"X-Api-Key": k["apiKey"]})
    srv.stop()
    secrets = [u["password"], wrong, ADMIN_PASSWORD, u["token"], t, adm, tampered,
               t.split(".")[2], adm.split(".")[2]]
    for key in (k, k2):
        secrets += [key["apiKey"], APIKEY_RE.match(key["apiKey"]).group(2)]
    secrets += [bad_key.split("_")[2]]
    with open(os.path.join(srv.data_dir, "secrets", "apikey-pepper"), "rb") as f:
        pepper = f.read()
    secrets += [pepper.hex(), b64url(pepper)]
    assert_secrets_not_logged(srv, secrets)


# --------------------------------------------------------------- bootstrap --

def read_initial_admin(path):
    """Password candidates from the initial-admin file (its format is not
    fixed: the bare password, or lines like 'password: ...')."""
    with open(path) as f:
        text = f.read()
    cands = [text.strip()]
    for line in text.splitlines():
        m = re.match(r"^\s*(?:admin\s+)?password\s*[:=]\s*(\S+)\s*$", line, re.I)
        if m:
            cands.insert(0, m.group(1))
    return text, [c for c in cands if c and "\n" not in c]


def test_bootstrap_generated_password(leakyd_factory):
    srv = leakyd_factory({"debug": {"manual_clock": True}})    # no LEAKYD_ADMIN_PASSWORD
    sec = os.path.join(srv.data_dir, "secrets")
    path = os.path.join(sec, "initial-admin")
    assert os.path.isfile(path), os.listdir(sec)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sec).st_mode) == 0o700
    text, cands = read_initial_admin(path)
    assert cands, "initial-admin holds no password"
    good = None
    for c in cands:
        r = srv.post_json(LOGIN, {"username": "admin", "password": c})
        if r.status == 200:
            good, body = c, r.json()
            break
    assert good, f"no password in initial-admin logs in (file has {len(text)} chars)"
    assert 8 <= len(good) <= 256 and len(good) >= 16, "a generated password should be long"
    assert body["roles"] == ["ADMIN", "USER"], body
    me = srv.get(ME, headers=bearer(body["token"])).json()
    assert me["username"] == "admin" and me["tier"] == "ADMIN", me
    # The log says where the file is, and never the password.
    srv.wait_log(lambda r: "initial-admin" in json.dumps(r), "a line naming the initial-admin file")
    assert_secrets_not_logged(srv, [good, body["token"]])
    kid = jwks(srv)["keys"][0]["kid"]
    st1 = os.stat(path)
    srv.stop()

    # Restart on the same data dir: no new admin, same password, same key.
    again = leakyd_factory({"debug": {"manual_clock": True},
                            "storage": {"data_dir": srv.data_dir}})
    assert [k["kid"] for k in jwks(again)["keys"]] == [kid]
    b2 = login(again, "admin", good)
    assert b2["userId"] == body["userId"]
    assert again.get(ME, headers=bearer(body["token"])).status == 200, "old token refused"
    if os.path.exists(path):
        assert read_initial_admin(path)[0] == text, "initial-admin rewritten by a restart"
        assert os.stat(path).st_mtime_ns == st1.st_mtime_ns
    assert not any("initial-admin" in json.dumps(r) and re.search(r"generat|creat", json.dumps(r))
                   for r in again.records()), "the restart announced a new admin password"
    assert_secrets_not_logged(again, [good, body["token"], b2["token"]])


def test_bootstrap_env_password_and_restart(leakyd_factory):
    srv = leakyd_factory({"debug": {"manual_clock": True}}, env=IDENTITY_ENV)
    sec = os.path.join(srv.data_dir, "secrets")
    assert not os.path.exists(os.path.join(sec, "initial-admin"))
    a = login(srv, "admin", ADMIN_PASSWORD)
    kid = jwt_decode(a["token"])[0]["kid"]
    assert [k["kid"] for k in jwks(srv)["keys"]] == [kid]
    pem = os.path.join(sec, f"jwt-{kid}.pem")
    with open(pem, "rb") as f:
        pem_bytes = f.read()
    srv.stop()

    # A different password in the environment changes nothing.
    other_pw = "another-Adm1n-pw"
    s2 = leakyd_factory({"debug": {"manual_clock": True}, "storage": {"data_dir": srv.data_dir}},
                        env={"LEAKYD_ADMIN_PASSWORD": other_pw})
    assert [k["kid"] for k in jwks(s2)["keys"]] == [kid]
    with open(pem, "rb") as f:
        assert f.read() == pem_bytes, "the signing key file changed on restart"
    assert login(s2, "admin", ADMIN_PASSWORD)["userId"] == a["userId"]
    r = s2.post_json(LOGIN, {"username": "admin", "password": other_pw})
    assert assert_error_body(r, 401, LOGIN)["message"] == "invalid credentials"
    assert s2.get(ME, headers=bearer(a["token"])).status == 200
    assert_secrets_not_logged(s2, [other_pw, ADMIN_PASSWORD, a["token"]])
    s2.stop()

    # Nor does no password at all: nothing generated, no initial-admin.
    s3 = leakyd_factory({"debug": {"manual_clock": True}, "storage": {"data_dir": srv.data_dir}})
    assert not os.path.exists(os.path.join(sec, "initial-admin"))
    assert login(s3, "admin", ADMIN_PASSWORD)["userId"] == a["userId"]
    assert [k["kid"] for k in jwks(s3)["keys"]] == [kid]


@pytest.mark.parametrize("pw", ["short7!", "x" * 257])
def test_bootstrap_env_password_out_of_range(leakyd_factory, pw):
    """An admin password outside 8..256 is never accepted: leakyd refuses to
    start, or starts without that password working."""
    srv = leakyd_factory({"debug": {"manual_clock": True}}, env={"LEAKYD_ADMIN_PASSWORD": pw},
                         start=False, expect_errors=True)
    try:
        srv.start()
    except AssertionError:
        srv.wait_exit()
        assert srv.returncode != 0
        assert pw not in srv.log_text()
        return
    r = srv.post_json(LOGIN, {"username": "admin", "password": pw})
    assert r.status == 401, r
    assert pw not in srv.log_text()
