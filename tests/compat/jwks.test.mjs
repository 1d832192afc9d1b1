// Compatibility: leakyd's tokens and /oauth2/jwks as a standard client sees
// them (API.md §1).  Uses the `jose` package the way a relying party would:
// createRemoteJWKSet on /oauth2/jwks, then jwtVerify with the issuer, audience
// and algorithm pinned.
//
// Needs a running leakyd: LEAKYD_URL (e.g. http://127.0.0.1:8080) and
// LEAKYD_ADMIN_PASSWORD (the bootstrap admin's password); optional
// LEAKYD_ISSUER / LEAKYD_AUDIENCE when [auth] is not the default.
// tests/integration/test_compat_jose.py starts one and runs `node --test` here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createLocalJWKSet, createRemoteJWKSet, decodeProtectedHeader, errors, importJWK, jwtVerify,
} from 'jose';

const BASE = process.env.LEAKYD_URL;
const ADMIN_PASSWORD = process.env.LEAKYD_ADMIN_PASSWORD;
const ISSUER = process.env.LEAKYD_ISSUER || 'leaky-tokens-auth';
const AUDIENCE = process.env.LEAKYD_AUDIENCE || 'leaky-tokens';
const skip = !BASE || !ADMIN_PASSWORD
  ? 'LEAKYD_URL and LEAKYD_ADMIN_PASSWORD are not set (run via tests/integration/test_compat_jose.py)'
  : false;

const url = (path) => new URL(path, BASE);

async function postJson(path, body) {
  const r = await fetch(url(path), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

async function login(username, password) {
  const r = await postJson('/api/v1/auth/login', { username, password });
  assert.equal(r.status, 200, `login ${username}: ${JSON.stringify(r.body)}`);
  return r.body;
}

const verifyOptions = { issuer: ISSUER, audience: AUDIENCE, algorithms: ['RS256'], typ: 'JWT',
  requiredClaims: ['sub', 'iss', 'aud', 'iat', 'nbf', 'exp', 'jti'] };

test('/oauth2/jwks is a JWK Set jose accepts', { skip }, async () => {
  const r = await fetch(url('/oauth2/jwks'));
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  const set = await r.json();
  assert.ok(Array.isArray(set.keys) && set.keys.length >= 1, JSON.stringify(set));
  for (const jwk of set.keys) {
    assert.equal(jwk.kty, 'RSA');
    assert.equal(jwk.use, 'sig');
    assert.equal(jwk.alg, 'RS256');
    assert.ok(typeof jwk.kid === 'string' && jwk.kid.length > 0);
    for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.ok(!(priv in jwk), `private ${priv}`);
    const key = await importJWK(jwk, 'RS256');
    assert.equal(key.type, 'public');
    assert.ok(key.algorithm.modulusLength >= 2048, `modulus ${key.algorithm.modulusLength}`);
  }
  createLocalJWKSet(set); // throws on a malformed set
});

test('a login token verifies with createRemoteJWKSet + jwtVerify', { skip }, async () => {
  const JWKS = createRemoteJWKSet(url('/oauth2/jwks'));
  const admin = await login('admin', ADMIN_PASSWORD);
  const { payload, protectedHeader } = await jwtVerify(admin.token, JWKS, verifyOptions);
  assert.equal(protectedHeader.alg, 'RS256');
  assert.equal(protectedHeader.typ, 'JWT');
  assert.ok(protectedHeader.kid);
  assert.equal(payload.sub, admin.userId);
  assert.deepEqual(payload.roles, ['ADMIN', 'USER']);
  assert.equal(payload.tier, 'ADMIN');
  assert.equal(payload.exp - payload.iat, 3600);
  assert.equal(new Date(admin.expiresAt).getTime(), payload.exp * 1000);

  // A user registered just now: register's token and login's token both verify.
  const name = `jose${process.pid}x${Date.now() % 100000}`;
  const reg = await postJson('/api/v1/auth/register',
    { username: name, email: `${name}@example.com`, password: 'jose-compat-pw' });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  for (const token of [reg.body.token, (await login(name, 'jose-compat-pw')).token]) {
    const v = await jwtVerify(token, JWKS, verifyOptions);
    assert.equal(v.payload.sub, reg.body.userId);
    assert.deepEqual(v.payload.roles, ['USER']);
    assert.equal(v.payload.tier, 'USER');
  }
  // ... and the server agrees the token is good.
  const me = await fetch(url('/api/v1/auth/me'), { headers: { Authorization: `Bearer ${admin.token}` } });
  assert.equal(me.status, 200);
  assert.equal((await me.json()).userId, admin.userId);
});

test('jose refuses what it should: tampering, wrong issuer, wrong audience', { skip }, async () => {
  const JWKS = createRemoteJWKSet(url('/oauth2/jwks'));
  const { token } = await login('admin', ADMIN_PASSWORD);
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  claims.roles = ['ADMIN', 'ORG_ADMIN', 'USER'];
  const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
  await assert.rejects(jwtVerify(forged, JWKS, verifyOptions), errors.JWSSignatureVerificationFailed);
  await assert.rejects(jwtVerify(token, JWKS, { ...verifyOptions, issuer: 'someone-else' }),
    errors.JWTClaimValidationFailed);
  await assert.rejects(jwtVerify(token, JWKS, { ...verifyOptions, audience: 'someone-else' }),
    errors.JWTClaimValidationFailed);
  // An unknown kid is not in the set.
  const hdr = { ...decodeProtectedHeader(token), kid: 'no-such-kid' };
  const other = `${Buffer.from(JSON.stringify(hdr)).toString('base64url')}.${p}.${s}`;
  await assert.rejects(jwtVerify(other, JWKS, verifyOptions), errors.JWKSNoMatchingKey);
});
