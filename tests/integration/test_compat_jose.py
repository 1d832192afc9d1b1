"""Compatibility with the `jose` npm package (tests/compat/): a real leakyd,
its /oauth2/jwks and a login token verified by createRemoteJWKSet + jwtVerify
under node's built-in test runner."""

import os
import shutil
import subprocess

import pytest

from conftest import ADMIN_PASSWORD, ROOT, assert_secrets_not_logged, clean_env

COMPAT = os.path.join(ROOT, "tests", "compat")


def test_jose_verifies_leakyd_tokens(leakyd_factory):
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed: the jose compatibility test needs Node.js >= 20")
    npm = shutil.which("npm")
    if not os.path.isdir(os.path.join(COMPAT, "node_modules", "jose")):
        assert npm, "node is installed but npm is not: cannot install tests/compat"
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=COMPAT,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"npm ci failed:\n{p.stdout}\n{p.stderr}"
    # The real clock: jose checks exp/nbf against the time it runs at.
    srv = leakyd_factory({"debug": {"manual_clock": False}},
                         env={"LEAKYD_ADMIN_PASSWORD": ADMIN_PASSWORD})
    env = clean_env(LEAKYD_URL=f"http://{srv.host}:{srv.port}",
                    LEAKYD_ADMIN_PASSWORD=ADMIN_PASSWORD, NODE_NO_WARNINGS="1")
    p = subprocess.run([node, "--test", "--test-reporter=spec", "jwks.test.mjs"], cwd=COMPAT, env=env,
                       capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"node --test failed ({p.returncode}):\n{out}"
    assert "# pass 3" in out or "pass 3" in out, out
    assert "# skipped 0" in out or "skipped 0" in out, out
    assert_secrets_not_logged(srv, [ADMIN_PASSWORD, "jose-compat-pw"])
