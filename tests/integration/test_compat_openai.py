"""Compatibility with the official `openai` npm SDK (tests/compat/openai.test.mjs):
a real gateway in front of the built-in stubs, run as their own process
(`leakyd --stubs-only`), with three providers — openai, gemini (translated),
qwen — and the SDK driving /v1 under node's built-in test runner."""

import json
import os
import shutil
import signal
import subprocess
import time

from conftest import (ADMIN_PASSWORD, LEAKYD, ROOT, START_DEADLINE, STOP_DEADLINE,
                      assert_no_sanitizer, assert_secrets_not_logged, bearer, clean_env, login,
                      render_config)
from stubs_fixture import GENEROUS_LIMITS, fund

COMPAT = os.path.join(ROOT, "tests", "compat")

# Tests in openai.test.mjs, all of which must pass (none skipped): 3 non-stream,
# 3 x (stream with usage, stream without, stream() helper), embeddings,
# models.list, models.retrieve, 401, 404, 429.
NODE_TESTS = 3 + 3 * 3 + 6

# retry_attempts of [provider.openai]; the 429 plan queued by the JS test
# (count 5) outlasts it, so the gateway gives the 429 back to the client.
OPENAI_RETRY_ATTEMPTS = 2


def npm_ci_if_needed(npm):
    """`npm ci` when node_modules is missing, lacks a package, or is older
    than package-lock.json (npm writes node_modules/.package-lock.json)."""
    with open(os.path.join(COMPAT, "package.json")) as f:
        wanted = json.load(f)["devDependencies"]
    nm = os.path.join(COMPAT, "node_modules")
    hidden = os.path.join(nm, ".package-lock.json")
    stale = not os.path.isfile(hidden) or \
        os.path.getmtime(hidden) < os.path.getmtime(os.path.join(COMPAT, "package-lock.json"))
    for name, version in wanted.items():
        try:
            with open(os.path.join(nm, name, "package.json")) as f:
                if json.load(f).get("version") != version:
                    stale = True
        except (OSError, ValueError):
            stale = True
    if not stale:
        return
    assert npm, "node is installed but npm is not: cannot install tests/compat"
    p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=COMPAT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"npm ci failed:\n{p.stdout}\n{p.stderr}"


class Stubs:
    """`leakyd --stubs-only`: the provider stubs alone, on an ephemeral port
    read from the JSON line that carries "stubs_port"."""

    def __init__(self, tmp):
        os.makedirs(tmp, exist_ok=True)
        self.conf = os.path.join(tmp, "stubs.conf")
        self.log_path = os.path.join(tmp, "stubs.log")
        with open(self.conf, "w") as f:
            f.write(render_config({
                "stubs": {"enabled": True, "listen": "127.0.0.1:0"},
                "storage": {"data_dir": os.path.join(tmp, "data")},
                "log": {"level": "info"},
            }))
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([LEAKYD, "--stubs-only", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=self._logf, env=clean_env(), cwd=tmp)
        self.port = None
        try:
            self._wait_port()
        except BaseException:
            self.kill()
            raise
        self.url = f"http://127.0.0.1:{self.port}"

    def _wait_port(self):
        deadline = time.monotonic() + START_DEADLINE
        while self.port is None:
            exited = self.proc.poll() is not None     # before reading: no lost line
            for line in self.log_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("stubs_port"), int) \
                        and rec["stubs_port"] > 0:
                    self.port = rec["stubs_port"]
                    break
            if self.port is None:
                assert not exited, \
                    f"leakyd --stubs-only exited {self.proc.returncode}:\n{self.log_text()}"
                assert time.monotonic() < deadline, \
                    f"leakyd --stubs-only never logged stubs_port:\n{self.log_text()}"
                time.sleep(0.02)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        """SIGTERM; must exit 0 with a JSON-lines log free of errors."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"leakyd --stubs-only ignored SIGTERM:\n{self.log_text()}")
        finally:
            self._logf.close()
        text = self.log_text()
        assert_no_sanitizer(text, "leakyd --stubs-only")
        assert rc == 0, f"leakyd --stubs-only exited {rc}:\n{text}"
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                raise AssertionError(f"stubs log line is not JSON: {line!r}")
            assert rec.get("level") != "error", f"stubs logged an error: {line}"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._logf.closed:
            self._logf.close()


def gateway_config(stubs_port):
    stub = f"http://127.0.0.1:{stubs_port}"
    prices = {"price_input": 150000, "price_cached_input": 75000, "price_output": 600000}
    return {
        "debug": {"manual_clock": False},
        "limits": GENEROUS_LIMITS,
        "provider.openai": {"base_url": f"{stub}/openai/v1", "format": "openai",
                            "retry_attempts": OPENAI_RETRY_ATTEMPTS, "retry_backoff_ms": 1,
                            "retry_max_backoff_ms": 10},
        "provider.gemini": {"base_url": f"{stub}/gemini/v1beta", "format": "gemini"},
        "provider.qwen": {"base_url": f"{stub}/qwen/compatible-mode/v1", "format": "qwen"},
        "model.gpt-4o-mini": {"provider": "openai", **prices},
        "model.text-embedding-3-small": {"provider": "openai", "kind": "embedding",
                                         "price_input": 20000, "price_output": 0},
        "model.gemini-2.0-flash": {"provider": "gemini", **prices},
        "model.qwen-plus": {"provider": "qwen", **prices},
    }


def test_openai_sdk_against_leakyd(leakyd_factory, tmp_path):
    node = shutil.which("node")
    assert node, "node is not installed: the openai SDK compatibility test needs Node.js >= 20"
    npm_ci_if_needed(shutil.which("npm"))

    stubs = Stubs(str(tmp_path / "stubs"))
    try:
        srv = leakyd_factory(gateway_config(stubs.port),
                             env={"LEAKYD_ADMIN_PASSWORD": ADMIN_PASSWORD})
        admin = login(srv, "admin", ADMIN_PASSWORD)
        fund(srv, admin["userId"])
        r = srv.post_json("/api/v1/auth/api-keys",
                          {"userId": admin["userId"], "name": "openai-sdk"},
                          headers=bearer(admin["token"]))
        assert r.status == 201, r
        api_key = r.json()["apiKey"]

        env = clean_env(LEAKYD_URL=f"http://{srv.host}:{srv.port}", LEAKYD_API_KEY=api_key,
                        LEAKYD_STUB_URL=stubs.url,
                        LEAKYD_OPENAI_RETRY_ATTEMPTS=OPENAI_RETRY_ATTEMPTS, NODE_NO_WARNINGS="1")
        p = subprocess.run([node, "--test", "--test-reporter=spec", "openai.test.mjs"],
                           cwd=COMPAT, env=env, capture_output=True, text=True, timeout=600)
        out = p.stdout + p.stderr
        assert p.returncode == 0, f"node --test openai.test.mjs failed ({p.returncode}):\n{out}"
        for want in (f"pass {NODE_TESTS}", "fail 0", "skipped 0", "todo 0", "cancelled 0"):
            assert f"ℹ {want}\n" in out or f"# {want}\n" in out, f"expected '{want}':\n{out}"
        assert_secrets_not_logged(srv, [api_key, ADMIN_PASSWORD])
        srv.stop()
        stubs.stop()
    finally:
        stubs.kill()    # only if a failure above left it running
