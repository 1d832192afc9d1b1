"""
conftest.py — the integration harness: a real leakyd on an ephemeral port.

Every test talks to the real binary over a real socket (STYLE.md: "tests drive
the real binary over its real protocol").  The pieces:

  Leakyd            one leakyd process: writes its config into a temp dir,
                    starts it with stderr going to a log file, finds the bound
                    port from the JSON "listening" line, waits for /readyz 200;
                    stop() sends SIGTERM and checks the exit code and the log.
  leakyd_factory    fixture: start servers with a given config; on teardown
                    every server still running is stopped and checked (exit 0,
                    valid JSON-lines log, no "level":"error" unless the test
                    said it expects errors, no sanitizer report).
  shared            session fixture: one plain server reused by the read-only
                    HTTP tests (saves the ~2 s civetweb needs to stop).
  run()             run a short-lived command (leakyd --check-config,
                    leakyctl ...) and check it printed no sanitizer report.

Binaries come from $LEAKYD_BIN and $LEAKYCTL_BIN (default build/rel/...).
Nothing here sleeps for a fixed time: waits poll with a deadline.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Absolute: leakyd runs with its temp dir as cwd, so a relative $LEAKYD_BIN
# (as in "LEAKYD_BIN=build/rel/leakyd pytest ...") would not be found.
LEAKYD = os.path.abspath(os.environ.get("LEAKYD_BIN") or os.path.join(ROOT, "build/rel/leakyd"))
LEAKYCTL = os.path.abspath(os.environ.get("LEAKYCTL_BIN") or
                           os.path.join(ROOT, "build/rel/leakyctl"))

# Sanitizer builds start and stop more slowly; deadlines are generous, and
# only ever reached when something is wrong.
START_DEADLINE = 30.0
STOP_DEADLINE = 30.0

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")

ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "geolocation=(), microphone=(), camera=()",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}


def assert_no_sanitizer(text, what):
    for m in SANITIZER_MARKERS:
        assert m not in text, f"{what}: sanitizer report ({m!r}):\n{text[-6000:]}"


def clean_env(**extra):
    """The environment for a child: ours without LEAKYD_* (a developer's shell
    must not change what a test sees), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKYD_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(args, env=None, timeout=60, input=None):
    """Run a short-lived command; returns CompletedProcess (text)."""
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                       env=env if env is not None else clean_env(), input=input)
    assert_no_sanitizer(p.stdout + p.stderr, " ".join(map(str, args)))
    return p


def render_config(sections):
    """{"http": {"threads": 16}, ...} -> INI text."""
    out = []
    for sec, keys in sections.items():
        out.append(f"[{sec}]")
        for k, v in keys.items():
            if isinstance(v, bool):
                v = "yes" if v else "no"
            out.append(f"{k} = {v}")
        out.append("")
    return "\n".join(out)


def merge(base, over):
    res = {s: dict(k) for s, k in base.items()}
    for s, keys in (over or {}).items():
        res.setdefault(s, {}).update(keys)
    return res


def base_config(tmp):
    return {
        "http": {"listen": "127.0.0.1:0", "threads": 16, "keep_alive_timeout_ms": 1000,
                 "drain_timeout_ms": 10000},
        "storage": {"data_dir": os.path.join(str(tmp), "data"), "lmdb_map_size": "8M",
                    "busy_timeout_ms": 5000, "checkpoint_interval_ms": 3600000},
        "log": {"level": "info", "access": True},
        # The suite makes thousands of calls from one address; the default
        # 120 per minute per client would throttle it.  Tests of the request
        # limit set their own.
        "limits": {"request_limit": 1_000_000},
    }


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers          # http.client.HTTPMessage (case-insensitive)
        self.body = body                # bytes

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels.items())): float}."""
    out = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        assert m, f"unparseable metrics line: {line!r}"
        labels = frozenset(label_re.findall(m.group(3) or ""))
        v = m.group(4)
        out[(m.group(1), labels)] = float(v.replace("+Inf", "inf"))
    return out


def metric(parsed, name, **labels):
    """Value of one series, or None."""
    return parsed.get((name, frozenset((k, str(v)) for k, v in labels.items())))


class Leakyd:
    """One leakyd process.  See the module comment."""

    def __init__(self, tmp, config=None, *, args=(), env=None, config_text=None,
                 use_config_flag=True, expect_errors=False, name="leakyd"):
        self.tmp = str(tmp)
        os.makedirs(self.tmp, exist_ok=True)
        self.config = merge(base_config(self.tmp), config)
        self.config_path = os.path.join(self.tmp, f"{name}.conf")
        self.log_path = os.path.join(self.tmp, f"{name}.log")
        self.config_text = config_text if config_text is not None else render_config(self.config)
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        self.args = ([LEAKYD, "-c", self.config_path] if use_config_flag else [LEAKYD]) + list(args)
        self.env = clean_env(**(env or {}))
        self.expect_errors = expect_errors
        self.proc = None
        self.host = None
        self.port = None
        self.returncode = None

    # ---- lifecycle ----

    @property
    def data_dir(self):
        return self.config["storage"]["data_dir"]

    def start(self, wait_ready=True):
        self._logf = open(self.log_path, "ab")     # O_APPEND: threads write whole lines
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=self._logf, env=self.env, cwd=self.tmp)
        deadline = time.monotonic() + START_DEADLINE
        while self.port is None:
            exited = self.proc.poll() is not None    # before reading: no lost line
            for rec in self._records_lenient():
                if "port" in rec and "listening on" in rec.get("msg", ""):
                    self.port = int(rec["port"])
                    m = re.search(r"listening on (\S+) ", rec["msg"])
                    hostport = m.group(1) if m else "127.0.0.1:0"
                    host = hostport.rsplit(":", 1)[0].strip("[]")
                    self.host = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
            if self.port is not None:
                break
            if exited:
                raise AssertionError(f"leakyd exited with {self.proc.returncode} before "
                                     f"listening:\n{self.log_text()}")
            assert time.monotonic() < deadline, f"leakyd never logged its port:\n{self.log_text()}"
            time.sleep(0.02)
        assert self.port > 0, self.log_text()
        if wait_ready:
            self.wait_status("/readyz", 200)
        return self

    def wait_status(self, path, status, deadline_s=START_DEADLINE):
        deadline = time.monotonic() + deadline_s
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.get(path)
                if last.status == status:
                    return last
            except OSError as e:
                last = e
            if self.proc.poll() is not None:
                raise AssertionError(f"leakyd exited ({self.proc.returncode}) while waiting for "
                                     f"{path} -> {status}:\n{self.log_text()}")
            time.sleep(0.02)
        raise AssertionError(f"{path} never answered {status} (last: {last!r})\n{self.log_text()}")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, deadline_s=STOP_DEADLINE):
        try:
            self.returncode = self.proc.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"leakyd did not exit within {deadline_s}s:\n{self.log_text()}")
        self._logf.close()
        return self.returncode

    def _poke_until_exit(self, deadline_s):
        """Wait for the process, connecting (and hanging up) to its port
        meanwhile: civetweb's listener thread only notices mg_stop when its
        poll() returns, which takes up to 2 s (more under load) unless a
        connection arrives.  The shutdown tests wait without this."""
        deadline = time.monotonic() + deadline_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
            except OSError:
                pass
            time.sleep(0.02)

    def stop(self, expect_rc=0):
        """SIGTERM, wait, check the exit code and the log."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            if self.port:
                self._poke_until_exit(STOP_DEADLINE)
        rc = self.wait_exit()
        self.check_log()
        assert rc == expect_rc, f"leakyd exited {rc}, expected {expect_rc}:\n{self.log_text()}"
        return rc

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # ---- log ----

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def _records_lenient(self):
        for line in self.log_text().splitlines():
            try:
                yield json.loads(line)
            except ValueError:
                pass

    def records(self):
        """Every log line parsed as JSON; fails on a line that is not (the
        last line may be partial while the server runs: it is left out)."""
        text = self.log_text()
        assert_no_sanitizer(text, "leakyd log")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        elif self.running and lines:
            lines.pop()       # being written right now
        out = []
        for i, line in enumerate(lines, 1):
            try:
                rec = json.loads(line)
            except ValueError:
                raise AssertionError(f"log line {i} is not JSON: {line!r}")
            assert isinstance(rec, dict), f"log line {i} is not an object: {line!r}"
            for k in ("time", "level", "msg"):
                assert k in rec, f"log line {i} lacks {k!r}: {line!r}"
            assert ISO_MS_Z.match(rec["time"]), f"log line {i} time: {line!r}"
            assert rec["level"] in ("debug", "info", "warn", "error"), line
            out.append(rec)
        return out

    def check_log(self):
        recs = self.records()
        if not self.expect_errors:
            errs = [r for r in recs if r["level"] == "error"]
            assert not errs, f"unexpected error lines in the log: {errs}"
        return recs

    def wait_log(self, pred, what, deadline_s=10.0):
        """Poll the log until a record satisfies pred; return it."""
        deadline = time.monotonic() + deadline_s
        while True:
            for r in self._records_lenient():
                if pred(r):
                    return r
            assert time.monotonic() < deadline, f"log never showed {what}:\n{self.log_text()}"
            time.sleep(0.02)

    # ---- HTTP ----

    def connection(self, timeout=15):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=15):
        c = self.connection(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return Response(r.status, r.reason, r.headers, data)
        finally:
            c.close()

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post_json(self, path, obj=None, raw=None, headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        body = raw if raw is not None else json.dumps(obj).encode()
        return self.request("POST", path, body=body, headers=h)

    def raw(self, data, timeout=10):
        """Send bytes on a fresh socket; read until the server closes."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            s.sendall(data)
            out = b""
            while True:
                try:
                    b = s.recv(65536)
                except ConnectionResetError:
                    break
                if not b:
                    break
                out += b
            return out
        finally:
            s.close()

    def metrics(self, path="/metrics"):
        r = self.get(path)
        assert r.status == 200, r
        return r.text, parse_metrics(r.text)

    def eventually(self, check, deadline_s=5.0, path="/metrics"):
        """Scrape until check(parsed_metrics) stops raising AssertionError.
        Counters are bumped just after the response is written, so the
        last request before a scrape may not be counted yet."""
        deadline = time.monotonic() + deadline_s
        while True:
            text, m = self.metrics(path)
            try:
                check(m)
                return text, m
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(0.02)

    def assert_idle(self, deadline_s=5.0):
        """The in-flight gauge settles at 1 (the scrape itself) when nothing
        else runs.  Polled: the previous request's count is dropped just
        after its response is written."""
        deadline = time.monotonic() + deadline_s
        while True:
            r = self.get("/metrics")
            v = r.status      # 503 too, when max_inflight is 1
            if r.status == 200:
                text, m = r.text, parse_metrics(r.text)
                v = metric(m, "leaky_http_inflight_requests")
                if v == 1:
                    return text, m
            assert time.monotonic() < deadline, f"in-flight gauge stuck at {v}"
            time.sleep(0.02)


def parse_raw_response(data):
    """Bytes of one HTTP/1.1 response -> (status, {lower-name: value}, body)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no end of headers in {data[:500]!r}"
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"^HTTP/1\.[01] (\d{3}) ", lines[0])
    assert m, f"bad status line {lines[0]!r}"
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(m.group(1)), headers, body


@pytest.fixture
def leakyd_factory(tmp_path):
    """Start leakyd servers; every one still running at teardown is stopped
    and must exit 0 with a clean log."""
    servers = []
    counter = [0]

    def make(config=None, *, start=True, wait_ready=True, **kw):
        counter[0] += 1
        kw.setdefault("name", f"leakyd{counter[0]}")
        d = tmp_path / f"srv{counter[0]}"
        srv = Leakyd(d, config, **kw)
        servers.append(srv)
        if start:
            srv.start(wait_ready=wait_ready)
        return srv

    yield make
    failures = []
    for srv in servers:
        if srv.proc is None:
            continue
        if srv.returncode is None:
            try:
                srv.stop()
            except AssertionError as e:
                failures.append(str(e))
        else:
            # The test stopped it itself; still check the log.
            try:
                srv.check_log()
            except AssertionError as e:
                failures.append(str(e))
    if failures:
        pytest.fail("\n\n".join(failures))


SHARED_CONFIG = {
    "http": {"max_body": "2K", "max_header": "4K", "keep_alive_timeout_ms": 500},
    "debug": {"manual_clock": False, "test_endpoints": False},
}


@pytest.fixture(scope="session")
def shared(tmp_path_factory):
    """One plain leakyd for the read-only HTTP tests: max_body 2K, max_header
    4K, manual clock and test endpoints off."""
    srv = Leakyd(tmp_path_factory.mktemp("shared"), SHARED_CONFIG, name="shared")
    srv.start()
    yield srv
    srv.stop()


def assert_common_headers(r, correlation_id=None):
    """X-Correlation-Id and the security headers, on every response."""
    cid = r.header("X-Correlation-Id")
    assert cid, f"no X-Correlation-Id on {r}"
    if correlation_id is not None:
        assert cid == correlation_id
    for k, v in SECURITY_HEADERS.items():
        assert r.header(k) == v, f"{k}: {r.header(k)!r} on {r}"
    return cid


def assert_error_body(r, status, path, message_re=None):
    """The {message,timestamp,status,path,correlationId} envelope."""
    assert r.status == status, r
    assert r.header("Content-Type") == "application/json", r.header("Content-Type")
    b = r.json()
    assert set(b) == {"message", "timestamp", "status", "path", "correlationId"}, b
    assert b["status"] == status
    assert b["path"] == path
    assert isinstance(b["message"], str) and b["message"]
    assert ISO_MS_Z.match(b["timestamp"]), b["timestamp"]
    assert b["correlationId"] == r.header("X-Correlation-Id")
    if message_re:
        assert re.search(message_re, b["message"]), b["message"]
    return b


# ---- identity helpers (API.md §1): used by test_identity, test_jwt_negative,
# test_compat_jose.  Plain functions over a Leakyd; nothing above changes. ----

import base64        # noqa: E402  (kept with the helpers that use them)
import hashlib       # noqa: E402
import itertools     # noqa: E402

ADMIN_PASSWORD = "Adm1n-integration-pw!"   # LEAKYD_ADMIN_PASSWORD for the identity servers
UUID_ANY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
APIKEY_RE = re.compile(r"^(lt_[a-z0-9]{12})_([A-Za-z0-9]{43})$")

_user_seq = itertools.count(1)


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    assert re.match(r"^[A-Za-z0-9_-]*$", s), f"not base64url: {s!r}"
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_decode(token):
    """(header, claims, signature bytes) of a compact JWS, unverified."""
    parts = token.split(".")
    assert len(parts) == 3, f"not a compact JWS: {token!r}"
    return (json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1])),
            b64url_decode(parts[2]))


def jwt_encode(header, claims, signature=b""):
    """Compact JWS from parts; header/claims as dicts (or str for raw JSON)."""
    h = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    c = claims if isinstance(claims, str) else json.dumps(claims, separators=(",", ":"))
    return f"{b64url(h)}.{b64url(c)}.{b64url(signature)}"


def rs256_verify(n, e, signing_input, sig):
    """RSASSA-PKCS1-v1_5 with SHA-256, with nothing but pow(): True if valid."""
    k = (n.bit_length() + 7) // 8
    if len(sig) != k:
        return False
    s = int.from_bytes(sig, "big")
    if s >= n:
        return False
    em = pow(s, e, n).to_bytes(k, "big")
    t = bytes.fromhex("3031300d060960864801650304020105000420") + \
        hashlib.sha256(signing_input).digest()
    return em == b"\x00\x01" + b"\xff" * (k - 3 - len(t)) + b"\x00" + t


def jwk_int(s):
    return int.from_bytes(b64url_decode(s), "big")


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def new_username(prefix="u"):
    return f"{prefix}{os.getpid() % 10000}x{next(_user_seq)}"


def register(srv, username=None, password="correct-horse-9", email=None, expect=201):
    """POST /api/v1/auth/register; returns (body, password)."""
    username = username or new_username()
    email = email or f"{username.lower()}@example.com"
    r = srv.post_json("/api/v1/auth/register",
                      {"username": username, "email": email, "password": password})
    assert r.status == expect, r
    return r.json(), password


def login(srv, username, password, expect=200):
    r = srv.post_json("/api/v1/auth/login", {"username": username, "password": password})
    assert r.status == expect, r
    return r.json()


def admin_token(srv, password=ADMIN_PASSWORD):
    return login(srv, "admin", password)["token"]


def jwks(srv):
    r = srv.get("/oauth2/jwks")
    assert r.status == 200, r
    return r.json()


def assert_unauthorized(r, path, message=None):
    """401 with WWW-Authenticate: Bearer and the error envelope."""
    assert r.status == 401, r
    www = r.header("WWW-Authenticate")
    assert www is not None and re.match(r"^Bearer\b", www), f"WWW-Authenticate: {www!r} on {r}"
    b = assert_error_body(r, 401, path)
    if message is not None:
        assert b["message"] == message, b
    return b


def assert_validation_error(r, path, field=None, message=None):
    """400 envelope; with field: an "errors" entry naming it."""
    assert r.status == 400, r
    assert r.header("Content-Type") == "application/json", r.header("Content-Type")
    b = r.json()
    assert {"message", "timestamp", "status", "path", "correlationId"} <= set(b), b
    assert set(b) - {"message", "timestamp", "status", "path", "correlationId", "errors"} == set(), b
    assert b["status"] == 400 and b["path"] == path, b
    assert isinstance(b["message"], str) and b["message"], b
    if message is not None:
        assert b["message"] == message, b
    if field is not None:
        errs = b.get("errors")
        assert isinstance(errs, list) and errs, f"no errors[] in {b}"
        for e in errs:
            assert set(e) == {"field", "message"}, e
            assert isinstance(e["message"], str) and e["message"], e
        assert field in [e["field"] for e in errs], b
    return b


def assert_secrets_not_logged(srv, secrets):
    """None of the secret strings appears anywhere in the server's log."""
    text = srv.log_text()
    for s in secrets:
        if s:
            if s in text:
                line = [ln for ln in text.splitlines() if s in ln][0]
                raise AssertionError(f"a secret ({len(s)} chars, starting {s[:6]!r}) appears in "
                                     f"the log: {line.replace(s, '<SECRET>')[:600]}")
