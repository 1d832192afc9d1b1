"""JWT verification refuses everything but a well-formed RS256 token signed by
a current key for this issuer and audience, inside its validity window
(API.md §1).  Tokens are crafted here with the standard library only.

Two kinds of forgery:
  - from a real token, without the key: tampered payload, alg none, HS256
    keyed with the public key, unknown or missing kid;
  - signed with the server's own private key (read from the data dir, RSA
    done with pow()), so that exactly one property is wrong and the
    signature is fine: missing kid, wrong iss or aud, expired, not yet valid,
    no exp.  A control token made the same way with every property right
    must be accepted, which proves the signer is sound.
Clock-driven cases (expiry, nbf) use the manual clock; issuer and audience
changes restart leakyd on the same data dir with a different [auth]."""

import base64
import hashlib
import hmac
import json
import os
import re
import uuid
from datetime import datetime, timezone

import pytest

from conftest import (ADMIN_PASSWORD, Leakyd, assert_unauthorized, b64url, b64url_decode, bearer,
                      jwk_int, jwks, jwt_decode, jwt_encode, login, new_username, register)

ME = "/api/v1/auth/me"
KEYS = "/api/v1/auth/api-keys"
CLOCK = "/admin/v1/clock"
ENV = {"LEAKYD_ADMIN_PASSWORD": ADMIN_PASSWORD}
MANUAL = {"debug": {"manual_clock": True}}
DIGESTINFO_SHA256 = bytes.fromhex("3031300d060960864801650304020105000420")


# ---- minimal DER, enough for RSA keys ----

def der_read(buf, i=0):
    """(tag, value bytes, next index) of the TLV at i."""
    tag = buf[i]
    ln = buf[i + 1]
    i += 2
    if ln & 0x80:
        k = ln & 0x7F
        ln = int.from_bytes(buf[i:i + k], "big")
        i += k
    return tag, buf[i:i + ln], i + ln


def der_seq_items(value):
    out, i = [], 0
    while i < len(value):
        tag, v, i = der_read(value, i)
        out.append((tag, v))
    return out


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der(tag, value):
    return bytes([tag]) + der_len(len(value)) + value


def der_int(x):
    return der(0x02, x.to_bytes(x.bit_length() // 8 + 1, "big"))


def pem(label, data):
    b = base64.b64encode(data).decode()
    return (f"-----BEGIN {label}-----\n" +
            "\n".join(b[i:i + 64] for i in range(0, len(b), 64)) + f"\n-----END {label}-----\n")


def rsa_private_from_pem(text):
    """(n, e, d) from a PKCS#8 'PRIVATE KEY' or PKCS#1 'RSA PRIVATE KEY' PEM."""
    m = re.search(r"-----BEGIN ((?:RSA )?PRIVATE KEY)-----(.*?)-----END \1-----", text, re.S)
    assert m, "no private key PEM block"
    data = base64.b64decode("".join(m.group(2).split()))
    tag, body, _ = der_read(data)
    assert tag == 0x30
    items = der_seq_items(body)
    if m.group(1) == "PRIVATE KEY":                     # PKCS#8: version, algo, OCTET STRING
        assert items[2][0] == 0x04, items
        tag, body, _ = der_read(items[2][1])
        items = der_seq_items(body)
    ints = [int.from_bytes(v, "big") for t, v in items if t == 0x02]
    return ints[1], ints[2], ints[3]                    # version, n, e, d, ...


def rs256_sign(n, d, signing_input):
    k = (n.bit_length() + 7) // 8
    t = DIGESTINFO_SHA256 + hashlib.sha256(signing_input).digest()
    em = b"\x00\x01" + b"\xff" * (k - 3 - len(t)) + b"\x00" + t
    return pow(int.from_bytes(em, "big"), d, n).to_bytes(k, "big")


def sign(key, header, claims):
    """A compact RS256 JWS over exactly these header and claims."""
    n, _, d = key
    h = b64url(json.dumps(header, separators=(",", ":")))
    c = b64url(json.dumps(claims, separators=(",", ":")))
    return f"{h}.{c}.{b64url(rs256_sign(n, d, f'{h}.{c}'.encode()))}"


def hs(alg, secret, header, claims):
    h = b64url(json.dumps(header, separators=(",", ":")))
    c = b64url(json.dumps(claims, separators=(",", ":")))
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    return f"{h}.{c}.{b64url(hmac.new(secret, f'{h}.{c}'.encode(), digest).digest())}"


# ---- fixtures ----

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Leakyd(tmp_path_factory.mktemp("jwtneg"), MANUAL, env=ENV, name="jwtneg")
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def account(srv):
    name = new_username("jwt")
    body, pw = register(srv, name, "jwt-negative-pw")
    return {"userId": body["userId"], "username": name, "password": pw}


@pytest.fixture
def token(srv, account):
    """A fresh, valid token (login), checked to work."""
    t = login(srv, account["username"], account["password"])["token"]
    r = srv.get(ME, headers=bearer(t))
    assert r.status == 200, r
    return t


def signing_key(s, kid):
    with open(os.path.join(s.data_dir, "secrets", f"jwt-{kid}.pem")) as f:
        return rsa_private_from_pem(f.read())


@pytest.fixture
def key(srv, token):
    header, _, _ = jwt_decode(token)
    k = signing_key(srv, header["kid"])
    pub = {j["kid"]: j for j in jwks(srv)["keys"]}[header["kid"]]
    assert (k[0], k[1]) == (jwk_int(pub["n"]), jwk_int(pub["e"])), "the PEM is not the JWKS key"
    return k


def clock_ms(s):
    r = s.get(CLOCK)
    assert r.status == 200, r
    return r.json()["nowMs"]


def clock_set_ms(s, ms):
    iso = (datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") +
           f".{ms % 1000:03d}Z")
    r = s.post_json(CLOCK, {"set": iso})
    assert r.status == 200, r
    assert r.json()["nowMs"] == ms, r.json()


def rejected(s, tok, message="invalid token"):
    assert_unauthorized(s.get(ME, headers=bearer(tok)), ME, message)


def accepted(s, tok):
    r = s.get(ME, headers=bearer(tok))
    assert r.status == 200, r
    return r.json()


# ---- without the key ----

def test_control_signer_makes_valid_tokens(srv, token, key):
    """Re-signing the real header and claims gives a token the server takes:
    the forgeries below fail for the property they change, not the signer."""
    h, c, sig = jwt_decode(token)
    assert rs256_verify_ok(key, token), "stdlib RS256 does not verify the server's token"
    again = sign(key, h, c)
    assert accepted(srv, again)["userId"] == c["sub"]
    fresh = dict(c, jti=str(uuid.uuid4()))
    assert accepted(srv, sign(key, h, fresh))["userId"] == c["sub"]


def rs256_verify_ok(key, tok):
    n, e, _ = key
    s = int.from_bytes(jwt_decode(tok)[2], "big")
    k = (n.bit_length() + 7) // 8
    em = pow(s, e, n).to_bytes(k, "big")
    t = DIGESTINFO_SHA256 + hashlib.sha256(tok.rsplit(".", 1)[0].encode()).digest()
    return em == b"\x00\x01" + b"\xff" * (k - 3 - len(t)) + b"\x00" + t


def test_tampered_payload(srv, token, account):
    h, c, sig = jwt_decode(token)
    hp, cp, sp = token.split(".")
    for change in ({"roles": ["ADMIN", "USER"]}, {"roles": ["ADMIN"], "tier": "ADMIN"},
                   {"sub": str(uuid.uuid4())}, {"exp": c["exp"] + 86400}, {"aud": "other"}):
        forged = f"{hp}.{b64url(json.dumps(dict(c, **change)))}.{sp}"
        rejected(srv, forged)
    # One bit of the signature flipped; the signature cut short; none at all.
    sig2 = bytearray(sig)
    sig2[-1] ^= 1
    rejected(srv, f"{hp}.{cp}.{b64url(bytes(sig2))}")
    rejected(srv, f"{hp}.{cp}.{b64url(sig[:-1])}")
    rejected(srv, f"{hp}.{cp}.")
    rejected(srv, f"{hp}.{cp}")
    # The escalated token cannot act for another user either (401, not 403).
    forged = f"{hp}.{b64url(json.dumps(dict(c, roles=['ADMIN', 'USER'])))}.{sp}"
    r = srv.post_json(KEYS, {"userId": str(uuid.uuid4())}, headers=bearer(forged))
    assert_unauthorized(r, KEYS, "invalid token")
    accepted(srv, token)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none(srv, token, alg):
    h, c, sig = jwt_decode(token)
    escalated = dict(c, roles=["ADMIN", "USER"], tier="ADMIN")
    for header in ({"alg": alg, "typ": "JWT", "kid": h["kid"]}, {"alg": alg, "typ": "JWT"},
                   {"alg": alg}):
        for claims in (c, escalated):
            rejected(srv, jwt_encode(header, claims, b""))
            rejected(srv, jwt_encode(header, claims, sig))
            rejected(srv, jwt_encode(header, claims).rstrip("."))


def public_key_secrets(jwk):
    """Every form the public key might be fed to an HMAC as its secret."""
    n, e = jwk_int(jwk["n"]), jwk_int(jwk["e"])
    pkcs1 = der(0x30, der_int(n) + der_int(e))
    spki = der(0x30, der(0x30, bytes.fromhex("06092a864886f70d010101") + b"\x05\x00") +
               der(0x03, b"\x00" + pkcs1))
    spki_pem, pkcs1_pem = pem("PUBLIC KEY", spki), pem("RSA PUBLIC KEY", pkcs1)
    return {
        "n bytes": b64url_decode(jwk["n"]),
        "n base64url": jwk["n"].encode(),
        "SPKI PEM": spki_pem.encode(),
        "SPKI PEM no final newline": spki_pem.rstrip("\n").encode(),
        "PKCS#1 PEM": pkcs1_pem.encode(),
        "SPKI DER": spki,
        "PKCS#1 DER": pkcs1,
        "JWK JSON": json.dumps(jwk, separators=(",", ":")).encode(),
        "empty": b"",
    }


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_with_public_key_as_secret(srv, token, alg):
    h, c, _ = jwt_decode(token)
    jwk = {j["kid"]: j for j in jwks(srv)["keys"]}[h["kid"]]
    escalated = dict(c, roles=["ADMIN", "USER"], tier="ADMIN")
    for what, secret in public_key_secrets(jwk).items():
        for claims in (c, escalated):
            for header in ({"alg": alg, "typ": "JWT", "kid": h["kid"]}, {"alg": alg, "typ": "JWT"}):
                tok = hs(alg, secret, header, claims)
                r = srv.get(ME, headers=bearer(tok))
                assert r.status == 401, f"{alg} keyed with {what} accepted: {r}"
                assert_unauthorized(r, ME, "invalid token")


def test_alg_other_than_rs256_with_real_signature(srv, token, key):
    """The algorithm is pinned to the key: RS256 signatures under any other
    alg label are refused."""
    h, c, _ = jwt_decode(token)
    for alg in ("RS384", "RS512", "PS256", "ES256", "EdDSA", "rs256", "", None):
        rejected(srv, sign(key, dict(h, alg=alg), c))
    rejected(srv, sign(key, {"typ": "JWT", "kid": h["kid"]}, c))      # no alg at all


def test_unknown_kid(srv, token, key):
    h, c, sig = jwt_decode(token)
    hp, cp, sp = token.split(".")
    for kid in ("nope", "", h["kid"] + "x", h["kid"].upper() if h["kid"] != h["kid"].upper()
                else h["kid"].lower(), "../secrets/apikey-pepper", 42, None):
        rejected(srv, f"{b64url(json.dumps(dict(h, kid=kid)))}.{cp}.{sp}")
        # Correctly signed by the real key, but labelled with another kid.
        rejected(srv, sign(key, dict(h, kid=kid), c))


def test_missing_kid(srv, token, key):
    h, c, sig = jwt_decode(token)
    no_kid = {k: v for k, v in h.items() if k != "kid"}
    hp, cp, sp = token.split(".")
    rejected(srv, f"{b64url(json.dumps(no_kid))}.{cp}.{sp}")
    rejected(srv, sign(key, no_kid, c))         # validly signed, no kid: still refused


def test_malformed_tokens(srv, token):
    hp, cp, sp = token.split(".")
    for bad in (f"{hp}.{cp}.{sp}.x", f"{hp}..{sp}", f".{cp}.{sp}", f"{hp}.{cp}.{sp}=",
                f"{hp}.{cp}.{sp}!", "a.b.c", "...", token + " x",
                f"{b64url('[]')}.{cp}.{sp}", f"{hp}.{b64url('[1]')}.{sp}",
                f"{b64url('not json')}.{cp}.{sp}", f"{hp}.{b64url('{')}.{sp}"):
        rejected(srv, bad)


# ---- signed with the real key: one property wrong ----

def test_signed_wrong_claims_rejected(srv, token, key):
    h, c, _ = jwt_decode(token)
    now = clock_ms(srv) // 1000
    base = dict(c, iat=now, nbf=now, exp=now + 600, jti=str(uuid.uuid4()))
    accepted(srv, sign(key, h, base))
    cases = {
        "wrong iss": dict(base, iss="someone-else"),
        "iss missing": {k: v for k, v in base.items() if k != "iss"},
        "wrong aud": dict(base, aud="someone-else"),
        "aud missing": {k: v for k, v in base.items() if k != "aud"},
        "expired beyond skew": dict(base, iat=now - 3600, nbf=now - 3600, exp=now - 61),
        "nbf beyond skew": dict(base, nbf=now + 120, exp=now + 3600),
        "exp missing": {k: v for k, v in base.items() if k != "exp"},
        "exp not a number": dict(base, exp=str(now + 600)),
        "sub missing": {k: v for k, v in base.items() if k != "sub"},
        "sub of no user": dict(base, sub=str(uuid.uuid4())),
    }
    for what, claims in cases.items():
        tok = sign(key, h, claims)
        r = srv.get(ME, headers=bearer(tok))
        assert r.status == 401, f"{what}: accepted {r}"
        assert_unauthorized(r, ME)
    # Inside the 60 s skew both ways: accepted.
    accepted(srv, sign(key, h, dict(base, iat=now - 3600, nbf=now - 3600, exp=now - 30,
                                   jti=str(uuid.uuid4()))))
    accepted(srv, sign(key, h, dict(base, nbf=now + 30, jti=str(uuid.uuid4()))))


# ---- the manual clock ----

def test_expired_token(srv, token):
    _, c, _ = jwt_decode(token)
    start = clock_ms(srv)
    try:
        accepted(srv, token)                     # now verified and cached
        clock_set_ms(srv, (c["exp"] + 30) * 1000)
        accepted(srv, token)                     # inside the 60 s skew
        clock_set_ms(srv, (c["exp"] + 61) * 1000)
        rejected(srv, token)
        assert_unauthorized(srv.post_json(KEYS, {"userId": c["sub"]}, headers=bearer(token)),
                            KEYS, "invalid token")
    finally:
        clock_set_ms(srv, start)


def test_token_before_nbf(srv, account):
    """A token not yet used, presented before nbf - 60 s: refused."""
    start = clock_ms(srv)
    t = login(srv, account["username"], account["password"])["token"]
    _, c, _ = jwt_decode(t)
    try:
        clock_set_ms(srv, (min(c["nbf"], c["iat"]) - 61) * 1000 - 1)
        rejected(srv, t)
        clock_set_ms(srv, (c["iat"] - 3600) * 1000)
        rejected(srv, t)
        clock_set_ms(srv, (c["nbf"] - 30) * 1000)
        accepted(srv, t)                         # inside the skew
    finally:
        clock_set_ms(srv, start)
    accepted(srv, t)


def test_token_before_nbf_after_use(srv, token):
    """The same after the token was verified once (and cached): the cache
    must not skip the not-before check when the clock goes back."""
    _, c, _ = jwt_decode(token)
    start = clock_ms(srv)
    try:
        accepted(srv, token)
        clock_set_ms(srv, (c["nbf"] - 30) * 1000)
        accepted(srv, token)                     # inside the skew
        clock_set_ms(srv, (min(c["nbf"], c["iat"]) - 61) * 1000 - 1)
        rejected(srv, token)
    finally:
        clock_set_ms(srv, start)
    accepted(srv, token)


# ---- restarts with another [auth] ----

def _restart_cases(leakyd_factory, changed):
    first = leakyd_factory(MANUAL, env=ENV)
    name = new_username("iss")
    body, pw = register(first, name, "restart-pw-1")
    old = body["token"]
    accepted(first, old)
    first.stop()
    conf = {"debug": {"manual_clock": True}, "storage": {"data_dir": first.data_dir},
            "auth": changed}
    second = leakyd_factory(conf, env=ENV)
    rejected(second, old)
    new = login(second, name, pw)["token"]
    accepted(second, new)
    second.stop()
    # Back to the defaults: the old token is good again (so the refusal was
    # the claim, not a lost key), and the one issued meanwhile is not.
    third = leakyd_factory({"debug": {"manual_clock": True},
                            "storage": {"data_dir": first.data_dir}}, env=ENV)
    accepted(third, old)
    rejected(third, new)
    return jwt_decode(new)[1]


def test_wrong_issuer_after_restart(leakyd_factory):
    claims = _restart_cases(leakyd_factory, {"issuer": "another-issuer"})
    assert claims["iss"] == "another-issuer"


def test_wrong_audience_after_restart(leakyd_factory):
    claims = _restart_cases(leakyd_factory, {"audience": "another-audience"})
    aud = claims["aud"]
    assert aud == "another-audience" or aud == ["another-audience"], claims
