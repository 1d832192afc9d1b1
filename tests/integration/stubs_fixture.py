"""
stubs_fixture.py — the built-in provider stubs as a test fixture, and the
gateway configuration and client helpers shared by test_v1.py and
test_resilience.py.

  StubServer        one `leakyd --stubs-only` process: [stubs] listen on an
                    ephemeral port (and tls_listen with a certificate when
                    asked); the ports come from the JSON log line carrying
                    "stubs_port".  Its control API (/_stub/faults,
                    /_stub/requests) is wrapped: fault(), clear_faults(),
                    requests(), clear_requests(), reset().
  MODELS            the models the gateway is configured with, their
                    provider and prices (micro-dollars per 1M tokens).
  gateway_config()  the [provider.*] / [model.*] sections pointing at a
                    StubServer, plus any extra providers a test needs.
  make_ca() /       a CA and a server certificate for DNS:localhost signed
  make_server_cert() by it, made with the openssl CLI at test time.
  chat() / sse_*    client helpers: one /v1 call, SSE frames parsed,
  dechunk()         a raw chunked body decoded (and whether it terminated).
  cost_micros()     the cost rule of src/provider/usage.c, for assertions.

Nothing here sleeps for a fixed time: waits poll with a deadline.
"""

import json
import os
import subprocess
import time

from conftest import ADMIN_PASSWORD, Leakyd, admin_token, bearer, register

# ---- the stubs ----


class StubServer(Leakyd):
    """`leakyd --stubs-only -c CONF`.  Lifecycle, log checks and HTTP
    helpers are Leakyd's; only start() differs (no /readyz, the port is in
    the "stubs_port" log line)."""

    def __init__(self, tmp, stubs=None, *, name="stubs", expect_errors=False):
        cfg = {"stubs": {"listen": "127.0.0.1:0"}}
        cfg["stubs"].update(stubs or {})
        super().__init__(tmp, cfg, args=("--stubs-only",), name=name,
                         expect_errors=expect_errors)
        self.tls_port = None

    def start(self, wait_ready=True):
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=self._logf, env=self.env, cwd=self.tmp)
        deadline = time.monotonic() + 30.0
        while self.port is None:
            exited = self.proc.poll() is not None
            for rec in self._records_lenient():
                if rec.get("stubs_port"):
                    self.port = int(rec["stubs_port"])
                    self.tls_port = int(rec.get("stubs_tls_port") or 0) or None
                    break
            if self.port is not None:
                break
            if exited:
                raise AssertionError(f"stubs exited with {self.proc.returncode} before "
                                     f"listening:\n{self.log_text()}")
            assert time.monotonic() < deadline, f"stubs never logged a port:\n{self.log_text()}"
            time.sleep(0.02)
        self.host = "127.0.0.1"
        if wait_ready:
            r = self.get("/_stub/health")
            assert r.status == 200 and r.json() == {"status": "ok"}, r
        return self

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    # ---- control API ----

    def fault(self, match, count=1, **kw):
        """Queue a fault plan: status, retry_after_s, delay_ms, drop_after,
        malformed."""
        plan = {"match": match, "count": count}
        plan.update(kw)
        r = self.post_json("/_stub/faults", plan)
        assert r.status == 200, r
        b = r.json()
        assert b["queued"] is True and b["count"] == count, b
        return b

    def clear_faults(self):
        r = self.request("DELETE", "/_stub/faults")
        assert r.status == 200, r

    def requests(self, prefix=None):
        r = self.get("/_stub/requests")
        assert r.status == 200, r
        reqs = r.json()["requests"]
        if prefix is not None:
            reqs = [q for q in reqs if q["path"].startswith(prefix)]
        return reqs

    def clear_requests(self):
        r = self.request("DELETE", "/_stub/requests")
        assert r.status == 200, r

    def reset(self):
        self.clear_faults()
        self.clear_requests()

    def wait_requests(self, n, prefix=None, deadline_s=10.0):
        """Poll the request log until it holds at least n (matching) entries."""
        deadline = time.monotonic() + deadline_s
        while True:
            reqs = self.requests(prefix)
            if len(reqs) >= n:
                return reqs
            assert time.monotonic() < deadline, f"the stubs saw {len(reqs)} requests, not {n}"
            time.sleep(0.02)


def start_stubs(tmp, stubs=None, **kw):
    return StubServer(tmp, stubs, **kw).start()


# ---- the gateway's configuration ----

# name -> provider, kind, prices (micro-dollars per 1M tokens), max_output
MODELS = {
    "gpt-4o-mini": dict(provider="openai", kind="chat", price_input=150000,
                        price_cached_input=75000, price_output=600000, max_output=16384),
    "o4-mini": dict(provider="openai", kind="chat", price_input=1100000,
                    price_cached_input=275000, price_output=4400000, max_output=100000),
    "text-embedding-3-small": dict(provider="openai", kind="embedding", price_input=20000,
                                   price_cached_input=0, price_output=0, max_output=1),
    "gemini-2.0-flash": dict(provider="gemini", kind="chat", price_input=100000,
                             price_cached_input=25000, price_output=400000, max_output=8192),
    "gemini-2.5-flash": dict(provider="gemini", kind="chat", price_input=300000,
                             price_cached_input=75000, price_output=2500000, max_output=65536),
    "qwen-plus": dict(provider="qwen", kind="chat", price_input=400000,
                      price_cached_input=80000, price_output=1200000, max_output=8192),
}

STUB_LABEL = {"openai": "OpenAI", "gemini": "Gemini", "qwen": "Qwen"}
BASE_PATH = {"openai": "/openai/v1", "gemini": "/gemini/v1beta",
             "qwen": "/qwen/compatible-mode/v1"}
FORMAT = {"openai": "openai", "gemini": "gemini", "qwen": "qwen"}
DEFAULT_MODEL = {"openai": "gpt-4o-mini", "gemini": "gemini-2.0-flash", "qwen": "qwen-plus"}

GATEWAY_ENV = {"LEAKYD_ADMIN_PASSWORD": ADMIN_PASSWORD}


def provider_section(stub_port, kind, **extra):
    """A [provider.*] section for one of the stub's three APIs."""
    sec = {"base_url": f"http://127.0.0.1:{stub_port}{BASE_PATH[kind]}",
           "format": FORMAT[kind], "default_model": DEFAULT_MODEL[kind]}
    sec.update(extra)
    return sec


def model_section(name, **extra):
    m = MODELS[name]
    sec = {"provider": m["provider"], "kind": m["kind"], "price_input": m["price_input"],
           "price_cached_input": m["price_cached_input"], "price_output": m["price_output"],
           "max_output": m["max_output"]}
    sec.update(extra)
    return sec


def gateway_config(stub_port, *, providers=None, models=None, extra=None, threads=32,
                   manual_clock=False, limits=None):
    """The gateway config: openai, gemini, qwen on the stubs with every
    model of MODELS; `providers` / `models` add or override sections
    ({"brk": {...}} -> [provider.brk]); `extra` merges other sections;
    `limits` is the [limits] section (None: the reference defaults)."""
    cfg = {"http": {"threads": threads},
           "log": {"level": "info", "access": True},
           "debug": {"manual_clock": manual_clock}}
    for kind in ("openai", "gemini", "qwen"):
        cfg[f"provider.{kind}"] = provider_section(stub_port, kind)
    for name in MODELS:
        cfg[f"model.{name}"] = model_section(name)
    for name, sec in (providers or {}).items():
        cfg.setdefault(f"provider.{name}", {}).update(sec)
    for name, sec in (models or {}).items():
        cfg.setdefault(f"model.{name}", {}).update(sec)
    if limits:
        cfg["limits"] = dict(limits)
    for sec, keys in (extra or {}).items():
        cfg.setdefault(sec, {}).update(keys)
    return cfg


def start_gateway(tmp, stub_port, *, env=None, expect_errors=False, name="gw", **kw):
    e = dict(GATEWAY_ENV)
    e.update(env or {})
    srv = Leakyd(tmp, gateway_config(stub_port, **kw), env=e, expect_errors=expect_errors,
                 name=name)
    return srv.start()


# Token buckets large enough never to bind: the /v1 tests check translation,
# streaming and resilience, not rate limits (test_v1_billing.py does those).
GENEROUS_LIMITS = {"token_capacity": 1_000_000_000, "token_rate": 1_000_000_000}

# What user_token grants on every provider: /v1 calls are billed against
# real pools (quota enforcement is on), never short in these tests.
FUNDS = 1_000_000_000


def fund(gw, user_id, tokens=FUNDS, providers=None, money=None):
    """Grant `tokens` on each provider (default: every [provider.*] of the
    gateway's config) and, when `money` is given, a money budget ("$", in
    micro-dollars) to user_id, as the admin."""
    h = getattr(gw, "_admin_h", None)
    if h is None:
        h = gw._admin_h = bearer(admin_token(gw))
    if providers is None:
        providers = [k.split(".", 1)[1] for k in gw.config if k.startswith("provider.")]
    grants = [(p, tokens) for p in providers] + ([("$", money)] if money else [])
    for p, n in grants:
        r = gw.post_json("/admin/v1/quotas/grant",
                         {"userId": user_id, "provider": p, "tokens": n, "reason": "test funds"},
                         headers=h)
        assert r.status == 200, r


def user_token(gw, tokens=FUNDS):
    """A fresh USER's JWT, funded with `tokens` on every provider (0: no
    pools at all)."""
    me = register(gw)[0]
    if tokens:
        fund(gw, me["userId"], tokens)
    return me["token"]


def admin(gw):
    return bearer(admin_token(gw))


# ---- certificates ----

def _openssl(args, cwd):
    p = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"openssl {' '.join(args)}:\n{p.stderr}"


def make_ca(d, name):
    """A self-signed CA: (cert path, key path)."""
    key, crt = os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.pem")
    _openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
              "-days", "2", "-subj", f"/CN={name}",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    return crt, key


def make_server_cert(d, ca_crt, ca_key, dns="localhost", name="server"):
    """A certificate for DNS:dns signed by the CA; returns the path of one
    PEM file holding the certificate followed by its key (the stubs'
    tls_cert)."""
    key, csr = os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.csr")
    crt, ext = os.path.join(d, f"{name}.crt"), os.path.join(d, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=DNS:{dns}\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    _openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
              "-subj", f"/CN={dns}"], d)
    _openssl(["x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
              "-out", crt, "-days", "2", "-sha256", "-extfile", ext], d)
    pem = os.path.join(d, f"{name}-bundle.pem")
    with open(pem, "w") as out:
        for p in (crt, key):
            with open(p) as f:
                out.write(f.read())
    return pem


# ---- client helpers ----

def chat_body(model, text="Say something short.", *, stream=None, include_usage=None,
              messages=None, **extra):
    b = {"model": model, "messages": messages or [{"role": "user", "content": text}]}
    if stream is not None:
        b["stream"] = stream
    if include_usage is not None:
        b["stream_options"] = {"include_usage": include_usage}
    b.update(extra)
    return b


def v1_post(gw, token, path, body, headers=None, timeout=30):
    h = {"Content-Type": "application/json"}
    if token:
        h.update(bearer(token))
    h.update(headers or {})
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return gw.request("POST", path, body=raw, headers=h, timeout=timeout)


def chat(gw, token, body, **kw):
    return v1_post(gw, token, "/v1/chat/completions", body, **kw)


def sse_events(body):
    """SSE body bytes -> the list of data payloads (str), in order.  Every
    event must be a single "data: " line terminated by a blank line."""
    text = body.decode("utf-8")
    assert text.endswith("\n\n"), f"the stream does not end with a blank line: {text[-200:]!r}"
    out = []
    for ev in text.split("\n\n")[:-1]:
        lines = [ln for ln in ev.split("\n") if ln and not ln.startswith(":")]
        assert len(lines) == 1 and lines[0].startswith("data: "), f"bad SSE event {ev!r}"
        out.append(lines[0][6:])
    return out


def sse_json(events):
    """Data payloads -> parsed JSON, [DONE] excluded (it must be last)."""
    if "[DONE]" in events:
        assert events.index("[DONE]") == len(events) - 1, events
    return [json.loads(e) for e in events if e != "[DONE]"]


def dechunk(data):
    """An HTTP/1.1 chunked body -> (payload, terminated)."""
    out = b""
    while True:
        line, sep, rest = data.partition(b"\r\n")
        if not sep:
            return out, False
        size = int(line.split(b";")[0].strip() or b"x", 16)
        if size == 0:
            return out, rest.startswith(b"\r\n")
        if len(rest) < size + 2:
            return out + rest[:size], False
        out += rest[:size]
        assert rest[size:size + 2] == b"\r\n", f"bad chunk framing near {rest[size:size + 20]!r}"
        data = rest[size + 2:]


def cost_micros(usage, model):
    """src/provider/usage.c lt_cost_micros for one call's OpenAI usage."""
    m = MODELS[model]
    inp = usage["prompt_tokens"]
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    out = usage.get("completion_tokens", 0)
    num = (inp - cached) * m["price_input"] + cached * m["price_cached_input"] + \
        out * m["price_output"]
    return -(-num // 1_000_000)


def ceil4(n):
    return (n + 3) // 4


def stub_cached(prompt_tokens):
    """The stubs' cached-token rule."""
    return (prompt_tokens // 2 // 128) * 128 if prompt_tokens >= 1024 else 0

