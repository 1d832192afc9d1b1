"""leakyctl provider list | set-credential | delete-credential.

set-credential reads one line from standard input and stores it encrypted
(libsodium secretbox under DATA_DIR/secrets/master.key) in
DATA_DIR/secrets/provider-NAME.cred; the file is nonce (24 bytes) + MAC
(16 bytes) + the ciphertext, which is as long as the key, so its size tells
what was stored without decrypting it.  leakyd reads the file at start and on
SIGHUP; GET /admin/v1/providers says whether a credential is present.
"""

import os
import signal
import stat

import pytest

from conftest import (ADMIN_PASSWORD, LEAKYCTL, admin_token, assert_secrets_not_logged, bearer,
                      metric, render_config, run)

EX_USAGE, EX_DATAERR = 64, 65
BOX_OVERHEAD = 24 + 16          # crypto_secretbox nonce + MAC
KEY_MAX = 4096                  # LT_CREDENTIAL_VALUE_MAX: what leakyd stores and sends

PROVIDERS = {
    "provider.openai": {"base_url": "http://127.0.0.1:9/openai/v1", "format": "openai",
                        "credential": "secret", "default_model": "gpt-4o-mini"},
    "provider.gemini": {"base_url": "http://127.0.0.1:9/gemini/v1beta", "format": "gemini",
                        "credential": "env:GEMINI_API_KEY"},
    "model.gpt-4o-mini": {"provider": "openai", "price_input": 150000,
                          "price_cached_input": 75000, "price_output": 600000,
                          "context_window": 128000, "max_output": 16384},
    "model.text-embedding-3-small": {"provider": "openai", "kind": "embedding",
                                     "price_input": 20000, "context_window": 8191},
    "model.gemini-2.0-flash": {"provider": "gemini", "upstream": "gemini-2.0-flash-001"},
}


@pytest.fixture
def env(tmp_path):
    """A configuration with providers and its (not yet existing) data dir."""
    data = tmp_path / "data"
    conf = tmp_path / "leakyd.conf"
    sections = {"storage": {"data_dir": str(data)}}
    sections.update(PROVIDERS)
    conf.write_text(render_config(sections))
    return {"conf": str(conf), "data": str(data), "secrets": str(data / "secrets")}


def ctl(env, *args, input=None):
    return run([LEAKYCTL, "-c", env["conf"]] + list(args), input=input)


def ok(p):
    assert p.returncode == 0, (p.args, p.returncode, p.stdout, p.stderr)
    return p.stdout


def cred_path(env, name):
    return os.path.join(env["secrets"], f"provider-{name}.cred")


def listing(env):
    """`provider list` -> {(kind, name): {field: value}}."""
    out = {}
    for line in ok(ctl(env, "provider", "list")).splitlines():
        kind, name, *fields = line.split()
        out[(kind, name)] = dict(f.split("=", 1) for f in fields)
    return out


def test_list_shows_providers_and_models(env):
    ls = listing(env)
    assert set(ls) == {("provider", "openai"), ("provider", "gemini"),
                       ("model", "gpt-4o-mini"), ("model", "text-embedding-3-small"),
                       ("model", "gemini-2.0-flash")}, ls
    assert ls[("provider", "openai")] == {
        "format": "openai", "base_url": "http://127.0.0.1:9/openai/v1", "credential": "secret",
        "stored_secret": "no", "default_model": "gpt-4o-mini", "passthrough_models": "no"}
    g = ls[("provider", "gemini")]
    assert g["format"] == "gemini" and g["credential"] == "env:GEMINI_API_KEY", g
    assert g["default_model"] == "-", g
    assert ls[("model", "gpt-4o-mini")] == {
        "provider": "openai", "upstream": "gpt-4o-mini", "kind": "chat", "input": "150000",
        "cached_input": "75000", "output": "600000", "context_window": "128000",
        "max_output": "16384"}
    e = ls[("model", "text-embedding-3-small")]
    assert e["kind"] == "embedding" and e["input"] == "20000" and e["output"] == "0", e
    assert ls[("model", "gemini-2.0-flash")]["upstream"] == "gemini-2.0-flash-001"
    # Listing reads; it creates nothing.
    assert not os.path.exists(env["data"])


def test_list_without_providers(tmp_path):
    p = run([LEAKYCTL, "-d", str(tmp_path / "d"), "provider", "list"])
    assert p.returncode == 0, p
    assert p.stdout == ""
    assert "no [provider.NAME] sections" in p.stderr, p.stderr


def test_set_credential_stores_it_encrypted(env):
    key = "sk-test-0123456789abcdefghij"
    p = ctl(env, "provider", "set-credential", "openai", input=key + "\n")
    out = ok(p)
    assert key not in p.stdout + p.stderr
    assert "SIGHUP" in out, out
    path = cred_path(env, "openai")
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    data = open(path, "rb").read()
    assert len(data) == BOX_OVERHEAD + len(key)      # the newline was not stored
    assert key.encode() not in data and b"sk-test" not in data
    mk = os.path.join(env["secrets"], "master.key")
    assert stat.S_IMODE(os.lstat(mk).st_mode) == 0o600 and os.path.getsize(mk) == 32
    assert stat.S_IMODE(os.lstat(env["secrets"]).st_mode) == 0o700
    ls = listing(env)
    assert ls[("provider", "openai")]["stored_secret"] == "yes"
    assert ls[("provider", "gemini")]["stored_secret"] == "no"


def test_set_credential_replaces_and_strips_crlf(env):
    ok(ctl(env, "provider", "set-credential", "openai", input="first-key\n"))
    path = cred_path(env, "openai")
    first = open(path, "rb").read()
    ok(ctl(env, "provider", "set-credential", "OpenAI", input="a-longer-second-key\r\n"))
    second = open(path, "rb").read()
    assert len(second) == BOX_OVERHEAD + len("a-longer-second-key")
    assert first != second
    # A last line without a newline is taken whole; only the first line counts.
    ok(ctl(env, "provider", "set-credential", "openai", input="k3"))
    assert os.path.getsize(path) == BOX_OVERHEAD + 2
    ok(ctl(env, "provider", "set-credential", "openai", input="k4\nignored\n"))
    assert os.path.getsize(path) == BOX_OVERHEAD + 2
    assert sorted(os.listdir(env["secrets"])) == ["master.key", "provider-openai.cred"]


def test_set_credential_note_when_not_secret(env):
    out = ok(ctl(env, "provider", "set-credential", "gemini", input="g-key\n"))
    assert "credential = env:GEMINI_API_KEY" in out and "credential = secret" in out, out


@pytest.mark.parametrize("stdin", ["", "\n", "\r\n"])
def test_set_credential_refuses_an_empty_key(env, stdin):
    p = ctl(env, "provider", "set-credential", "openai", input=stdin)
    assert p.returncode == EX_DATAERR, p
    assert "no key on standard input" in p.stderr, p.stderr
    assert not os.path.exists(cred_path(env, "openai"))


@pytest.mark.parametrize("key", ["tab\tinside", "nul\x00inside", "bell\x07"])
def test_set_credential_refuses_control_characters(env, key):
    p = ctl(env, "provider", "set-credential", "openai", input=key + "\n")
    assert p.returncode == EX_DATAERR, p
    assert "control characters" in p.stderr, p.stderr
    assert not os.path.exists(cred_path(env, "openai"))


def test_set_credential_length_limit(env):
    ok(ctl(env, "provider", "set-credential", "openai", input="k" * KEY_MAX + "\n"))
    assert os.path.getsize(cred_path(env, "openai")) == BOX_OVERHEAD + KEY_MAX
    p = ctl(env, "provider", "set-credential", "openai", input="x" * (KEY_MAX + 1) + "\n")
    assert p.returncode == EX_DATAERR and "longer than 4096 bytes" in p.stderr, p
    p = ctl(env, "provider", "set-credential", "openai", input="y" * 100000)
    assert p.returncode == EX_DATAERR, p
    # The stored key is still the first one.
    assert os.path.getsize(cred_path(env, "openai")) == BOX_OVERHEAD + KEY_MAX


@pytest.mark.parametrize("name", ["../evil", "a/b", "has space", "dot.ted", "", "x" * 32,
                                  "caf\u00e9", "UPPER;x"])
def test_bad_provider_names(env, name):
    for args, stdin in ((["set-credential", "--force", "--", name], "key\n"),
                        (["delete-credential", "--", name], None)):
        p = ctl(env, "provider", *args, input=stdin)
        assert p.returncode == EX_DATAERR, (name, args, p)
        assert "invalid provider name" in p.stderr, p.stderr
    assert not os.path.exists(env["secrets"])
    assert not os.path.exists(os.path.join(os.path.dirname(env["data"]), "evil.cred"))


def test_name_rules_match_the_config(env):
    """31 characters of letters, digits, '_' and '-' is a name, as in [provider.NAME]."""
    name = "a-b_C" + "9" * 26
    ok(ctl(env, "provider", "set-credential", "--force", name, input="k\n"))
    assert os.path.exists(cred_path(env, name.lower()))


def test_unconfigured_provider_needs_force(env):
    p = ctl(env, "provider", "set-credential", "mistral", input="m-key\n")
    assert p.returncode == EX_DATAERR and "--force" in p.stderr, p
    assert not os.path.exists(env["secrets"])
    ok(ctl(env, "provider", "set-credential", "Mistral", "--force", input="m-key\n"))
    assert os.path.exists(cred_path(env, "mistral"))       # stored lower-case
    ls = listing(env)
    assert ls[("unconfigured", "mistral")] == {"stored_secret": "yes"}, ls


def test_delete_credential(env):
    ok(ctl(env, "provider", "set-credential", "openai", input="to-delete\n"))
    out = ok(ctl(env, "provider", "delete-credential", "openai"))
    assert "deleted" in out and "SIGHUP" in out, out
    assert not os.path.exists(cred_path(env, "openai"))
    assert listing(env)[("provider", "openai")]["stored_secret"] == "no"
    # The master key stays: other credentials were encrypted with it.
    assert os.path.exists(os.path.join(env["secrets"], "master.key"))
    p = ctl(env, "provider", "delete-credential", "openai")
    assert p.returncode == EX_DATAERR and "no stored credential" in p.stderr, p


def test_usage_errors(env):
    for args in (["provider", "set-credential"], ["provider", "set-credential", "a", "b"],
                 ["provider", "delete-credential"], ["provider", "list", "x"],
                 ["provider", "set-credential", "openai", "--bogus"], ["provider"]):
        p = ctl(env, *args, input="k\n")
        assert p.returncode == EX_USAGE, (args, p)
    assert not os.path.exists(env["secrets"])


# ------------------------------------------------------------- with leakyd --

def providers_view(srv, token):
    r = srv.get("/admin/v1/providers", headers=bearer(token))
    assert r.status == 200, r
    return {p["name"]: p for p in r.json()["providers"]}


def reload(srv, n):
    """SIGHUP, then wait until the n-th reload is counted."""
    srv.signal(signal.SIGHUP)

    def done(m):
        assert metric(m, "leaky_config_reloads_total", outcome="ok") == n
    srv.eventually(done)


def test_leakyd_loads_the_stored_credential_on_start_and_sighup(leakyd_factory):
    srv = leakyd_factory(PROVIDERS, env={"LEAKYD_ADMIN_PASSWORD": ADMIN_PASSWORD}, start=False)
    key = "sk-live-abcdefghijklmnop0123"
    p = run([LEAKYCTL, "-c", srv.config_path, "provider", "set-credential", "openai"],
            input=key + "\n")
    assert p.returncode == 0, p
    srv.start()
    token = admin_token(srv)
    v = providers_view(srv, token)
    assert v["openai"]["credential"]["source"] == "secret"
    assert v["openai"]["credential"]["present"] is True, v["openai"]
    g = v["gemini"]["credential"]
    assert g["source"] == "env" and g["present"] is False, g
    assert "GEMINI_API_KEY" in g["problem"], g
    # Delete it beside the running server, then reload.
    p = run([LEAKYCTL, "-c", srv.config_path, "provider", "delete-credential", "openai"])
    assert p.returncode == 0, p
    assert providers_view(srv, token)["openai"]["credential"]["present"] is True   # not yet
    reload(srv, 1)
    c = providers_view(srv, token)["openai"]["credential"]
    assert c["present"] is False and "set-credential openai" in c.get("problem", ""), c
    # And back.
    p = run([LEAKYCTL, "-c", srv.config_path, "provider", "set-credential", "openai"],
            input=key + "\n")
    assert p.returncode == 0, p
    reload(srv, 2)
    assert providers_view(srv, token)["openai"]["credential"]["present"] is True
    assert_secrets_not_logged(srv, [key])
