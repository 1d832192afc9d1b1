"""Configuration: rejection with file:line (exit 78), --check-config, the
precedence flags > environment > file, and the command line itself."""

import json
import os
import re
import signal
import socket

import pytest

from conftest import LEAKYD, Leakyd, clean_env, metric, render_config, run

EX_USAGE, EX_CONFIG = 64, 78

GOOD = """\
# a comment
; another comment
[http]
listen = 127.0.0.1:0
threads = 16

[storage]
data_dir = {tmp}/data
"""

# (name, text, line, message regex)
BAD = [
    ("unknown key", "[http]\nlisten = 127.0.0.1:0\nbogus = 1\n", 3,
     r"unknown key 'bogus' in section \[http\]"),
    ("unknown section", "[http]\nthreads = 8\n\n[nope]\nx = 1\n", 4, r"unknown section \[nope\]"),
    ("empty unknown section", "[http]\nthreads = 8\n[htpp]\n", 3, r"unknown section \[htpp\]"),
    ("bad int", "[http]\nthreads = lots\n", 2, r"'lots' is not a number"),
    ("int with junk", "[http]\nthreads = 16x\n", 2, r"'16x' is not a whole number"),
    ("out of range low", "[http]\nthreads = 1\n", 2, r"threads must be between 2 and 4096"),
    ("out of range high", "[log]\n[http]\nmax_body = 65G\n", 3,
     r"max_body must be between 1024 and 67108864"),
    ("bad size suffix", "[http]\nmax_body = 10T\n", 2, r"is not a size"),
    ("duplicate key", "[http]\nthreads = 8\nthreads = 9\n", 3,
     r"duplicate key 'threads' \(first set on line 2\)"),
    ("duplicate across sections", "[http]\nthreads = 8\n[log]\nlevel = info\n[http]\nthreads = 9\n",
     6, r"duplicate key 'threads'"),
    ("bad bool", "[log]\naccess = maybe\n", 2, r"access must be yes or no"),
    ("bad enum", "[log]\nlevel = loud\n", 2, r"level must be one of debug, info, warn, error"),
    ("bad listen", "[http]\nlisten = nohost\n", 2, r"expected HOST:PORT"),
    ("bad port", "[http]\nlisten = 127.0.0.1:70000\n", 2, r"port must be 0-65535"),
    ("ipv6 listen", "[http]\nlisten = [::1]:0\n", 2, r"IPv6 addresses are not supported"),
    ("continuation line", "[http]\nthreads = 8\n  9\n", 3, r"syntax error"),
    ("key outside section", "threads = 8\n", 1, r"outside any section"),
    ("syntax error", "[http]\nthreads = 8\nthis line has no equals sign\n", 3, r"syntax error"),
    ("empty data dir", "[storage]\ndata_dir =\n", 2, r"data_dir must be"),
    ("tiers without USER", "[auth]\ntiers = GOLD:1,ADMIN:2\n", 2,
     r"\[auth\] tiers: USER must be one of the tiers"),
    ("bad tier priority", "[auth]\ntiers = USER:0,GOLD:high\n", 2,
     r"priority of GOLD must be a whole number 0-1000, got 'high'"),
    ("long line", "[http]\nlisten = " + "1" * 5000 + "\n", 2, r"line longer than"),
]


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("name,text,line,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_config_exits_78_with_file_line(tmp_path, name, text, line, msg):
    path = write(tmp_path, "bad.conf", text)
    for extra in ([], ["--check-config"]):
        p = run([LEAKYD, "-c", path] + extra)
        assert p.returncode == EX_CONFIG, (p.returncode, p.stderr)
        first = p.stderr.strip().splitlines()[0]
        m = re.search(re.escape(path) + r":(\d+): (.*)$", first)
        assert m, f"no file:line: in {p.stderr!r}"
        assert int(m.group(1)) == line, p.stderr
        assert re.search(msg, m.group(2)), p.stderr
    # Nothing was created: the config is checked before anything else.
    assert not os.path.exists(tmp_path / "var")


def test_missing_config_file(tmp_path):
    p = run([LEAKYD, "-c", str(tmp_path / "nope.conf"), "--check-config"])
    assert p.returncode == EX_CONFIG
    assert "nope.conf" in p.stderr and "cannot open" in p.stderr


def test_check_config_ok(tmp_path):
    path = write(tmp_path, "good.conf", GOOD.format(tmp=tmp_path))
    p = run([LEAKYD, "-c", path, "--check-config"])
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout and path in p.stdout
    # It does not start anything or create the data dir.
    assert not os.path.exists(tmp_path / "data")
    # Built-in defaults are valid too.
    p = run([LEAKYD, "--check-config"], env=clean_env())
    assert p.returncode == 0 and "built-in defaults" in p.stdout


def test_check_config_env_and_flag_values(tmp_path):
    path = write(tmp_path, "good.conf", GOOD.format(tmp=tmp_path))
    p = run([LEAKYD, "-c", path, "--check-config"], env=clean_env(LEAKYD_LISTEN="bogus"))
    assert p.returncode == EX_CONFIG
    assert "LEAKYD_LISTEN" in p.stderr and "HOST:PORT" in p.stderr
    p = run([LEAKYD, "-c", path, "-l", "127.0.0.1:99999", "--check-config"])
    assert p.returncode == EX_CONFIG
    assert "--listen" in p.stderr and "0-65535" in p.stderr
    p = run([LEAKYD, "-c", path, "-d", "", "--check-config"])
    assert p.returncode == EX_CONFIG and "--data-dir" in p.stderr
    # LEAKYD_CONFIG names the file when -c is absent.
    bad = write(tmp_path, "bad.conf", "[http]\nthreads = 0\n")
    p = run([LEAKYD, "--check-config"], env=clean_env(LEAKYD_CONFIG=bad))
    assert p.returncode == EX_CONFIG and f"{bad}:2:" in p.stderr
    # ... and -c wins over LEAKYD_CONFIG.
    p = run([LEAKYD, "-c", path, "--check-config"], env=clean_env(LEAKYD_CONFIG=bad))
    assert p.returncode == 0, p.stderr


def test_version_and_help():
    p = run([LEAKYD, "--version"])
    assert p.returncode == 0
    assert re.match(r"^leakyd \d+\.\d+\.\d+ \(\S+\)$", p.stdout.strip()), p.stdout
    for flag in ("--help", "-h"):
        p = run([LEAKYD, flag])
        assert p.returncode == 0
        assert p.stdout.startswith("usage: leakyd")
        for opt in ("--config", "--data-dir", "--listen", "--stubs-listen", "--check-config",
                    "--version", "--help"):
            assert opt in p.stdout, opt


@pytest.mark.parametrize("args", [["--bogus"], ["-x"], ["extra-argument"], ["-c"]])
def test_bad_command_line_exits_64(args):
    p = run([LEAKYD] + args)
    assert p.returncode == EX_USAGE, (p.returncode, p.stderr)
    assert "usage: leakyd" in p.stderr


# ---- precedence: flags > environment > file ----

def _listen_host(srv):
    return srv.host


def test_env_overrides_file(leakyd_factory, tmp_path):
    file_dir = str(tmp_path / "file-dir")
    env_dir = str(tmp_path / "env-dir")
    srv = leakyd_factory(
        {"http": {"listen": "127.0.0.2:0"}, "storage": {"data_dir": file_dir}},
        start=False, use_config_flag=False)
    srv.env.update(LEAKYD_CONFIG=srv.config_path, LEAKYD_DATA_DIR=env_dir,
                   LEAKYD_LISTEN="127.0.0.3:0")
    srv.start(wait_ready=False)
    assert srv.host == "127.0.0.3"
    assert srv.get("/readyz").status in (200, 503)
    srv.wait_status("/readyz", 200)
    assert os.path.exists(os.path.join(env_dir, "leaky.db"))
    assert not os.path.exists(file_dir)
    # The file still counts for what the environment does not override.
    srv.wait_log(lambda r: "listening on 127.0.0.3:0" in r.get("msg", ""), "env listen")


def test_flags_override_env(leakyd_factory, tmp_path):
    file_dir = str(tmp_path / "file-dir")
    env_dir = str(tmp_path / "env-dir")
    flag_dir = str(tmp_path / "flag-dir")
    bad_conf = tmp_path / "bad.conf"
    bad_conf.write_text("[http]\nthreads = 0\n")
    srv = leakyd_factory(
        {"http": {"listen": "127.0.0.2:0"}, "storage": {"data_dir": file_dir}},
        start=False, args=["-d", flag_dir, "--listen", "127.0.0.4:0"],
        env={"LEAKYD_CONFIG": str(bad_conf), "LEAKYD_DATA_DIR": env_dir,
             "LEAKYD_LISTEN": "127.0.0.3:0"})
    srv.start()
    assert srv.host == "127.0.0.4"
    assert os.path.exists(os.path.join(flag_dir, "leaky.db"))
    assert os.path.isdir(os.path.join(flag_dir, "buckets"))
    assert not os.path.exists(env_dir)
    assert not os.path.exists(file_dir)
    # A reload applies the same overrides again: nothing "changed".
    srv.signal(signal.SIGHUP)

    def reloaded(m):
        assert metric(m, "leaky_config_reloads_total", outcome="ok") == 1
    srv.eventually(reloaded)
    recs = srv.records()
    assert "reload: configuration reloaded (0 changes)" in [r["msg"] for r in recs]
    assert not [r for r in recs if "changed from" in r["msg"]], recs


def test_listen_address_in_use_exits_69(tmp_path):
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        conf = tmp_path / "c.conf"
        conf.write_text(render_config({"http": {"listen": f"127.0.0.1:{port}"},
                                       "storage": {"data_dir": str(tmp_path / "data")}}))
        p = run([LEAKYD, "-c", str(conf)], timeout=60)
        assert p.returncode == 69, (p.returncode, p.stderr)          # EX_UNAVAILABLE
        recs = [json.loads(l) for l in p.stderr.splitlines()]
        errs = [r for r in recs if r["level"] == "error"]
        assert errs and f"cannot listen on 127.0.0.1:{port}" in errs[0]["msg"], recs
        assert not (tmp_path / "data").exists()        # it stopped before storage
    finally:
        busy.close()
