"""leakyctl: init, check, version, config check | dump, help, exit codes."""

import os
import re
import sqlite3
import stat

import pytest

from conftest import LEAKYCTL, LEAKYD, clean_env, run

EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_CONFIG = 64, 65, 66, 78


def ctl(*args, env=None):
    return run([LEAKYCTL] + [str(a) for a in args], env=env)


def test_init_creates_and_is_idempotent(tmp_path):
    d = tmp_path / "x" / "data"
    p = ctl("-d", d, "init")
    assert p.returncode == 0, p.stderr
    assert re.search(r"initialised \(schema 0 -> \d+\)", p.stdout), p.stdout
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert (d / "leaky.db").is_file()
    assert (d / "buckets").is_dir()
    c = sqlite3.connect(f"file:{d / 'leaky.db'}?mode=ro", uri=True)
    iid = c.execute("SELECT value FROM meta WHERE key='instance_id'").fetchone()[0]
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    c.close()
    p = ctl("-d", d, "init")
    assert p.returncode == 0, p.stderr
    assert "already initialised" in p.stdout
    c = sqlite3.connect(f"file:{d / 'leaky.db'}?mode=ro", uri=True)
    assert c.execute("SELECT value FROM meta WHERE key='instance_id'").fetchone()[0] == iid
    c.close()


def test_data_dir_precedence(tmp_path):
    flag, env_dir, file_dir = tmp_path / "flag", tmp_path / "env", tmp_path / "file"
    conf = tmp_path / "c.conf"
    conf.write_text(f"[storage]\ndata_dir = {file_dir}\n")
    p = ctl("-c", conf, "-d", flag, "init", env=clean_env(LEAKYD_DATA_DIR=env_dir))
    assert p.returncode == 0, p.stderr
    assert flag.is_dir() and not env_dir.exists() and not file_dir.exists()
    p = ctl("-c", conf, "init", env=clean_env(LEAKYD_DATA_DIR=env_dir))
    assert p.returncode == 0 and env_dir.is_dir() and not file_dir.exists()
    p = ctl("-c", conf, "init")
    assert p.returncode == 0 and file_dir.is_dir()


def test_check_ok_and_missing(tmp_path):
    d = tmp_path / "data"
    assert ctl("-d", d, "init").returncode == 0
    p = ctl("-d", d, "check")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "integrity_check: ok" in p.stdout
    assert "bucket store:" in p.stdout
    assert p.stdout.strip().endswith("check: ok")
    p = ctl("-d", tmp_path / "nothing", "check")
    assert p.returncode == EX_NOINPUT
    assert "no database" in p.stderr and "leakyctl init" in p.stderr
    assert not (tmp_path / "nothing").exists()        # check never creates


def test_check_detects_old_schema(tmp_path):
    d = tmp_path / "data"
    assert ctl("-d", d, "init").returncode == 0
    c = sqlite3.connect(d / "leaky.db")
    c.execute("PRAGMA user_version = 0")
    c.commit()
    c.close()
    p = ctl("-d", d, "check")
    assert p.returncode == EX_DATAERR
    assert "run leakyd or leakyctl init to migrate" in p.stdout


def test_check_while_leakyd_runs(shared):
    p = ctl("-d", shared.data_dir, "check")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "check: ok" in p.stdout
    # and the server is none the worse
    assert shared.get("/readyz").status == 200


def test_version():
    p = ctl("version")
    assert p.returncode == 0
    m = re.match(r"^leakyctl (\d+\.\d+\.\d+) \(\S+\), schema (\d+)$", p.stdout.strip())
    assert m, p.stdout
    d = run([LEAKYD, "--version"]).stdout.split()[1]
    assert m.group(1) == d
    assert ctl("version", "extra").returncode == EX_USAGE


def test_config_check(tmp_path):
    good = tmp_path / "good.conf"
    good.write_text("[http]\nthreads = 8\n[log]\nlevel = warn\n")
    p = ctl("config", "check", good)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"{good}: ok"
    bad = tmp_path / "bad.conf"
    bad.write_text("[http]\nthreads = 8\n\n[log]\nlevel = shouting\n")
    p = ctl("config", "check", bad)
    assert p.returncode == EX_CONFIG
    assert p.stderr.startswith(f"{bad}:5: ")
    assert "level must be one of" in p.stderr
    # -c and LEAKYD_CONFIG name the file when no argument is given.
    assert ctl("-c", bad, "config", "check").returncode == EX_CONFIG
    assert ctl("config", "check", env=clean_env(LEAKYD_CONFIG=bad)).returncode == EX_CONFIG
    assert ctl("config", "check", env=clean_env(LEAKYD_CONFIG=good)).returncode == 0
    p = ctl("config", "check", tmp_path / "missing.conf")
    assert p.returncode == EX_NOINPUT
    assert ctl("config", "check", env=clean_env()).returncode == EX_USAGE
    assert ctl("config", "check", good, "extra").returncode == EX_USAGE


def test_config_dump_reloads(tmp_path):
    p = ctl("config", "dump")
    assert p.returncode == 0, p.stderr
    dump = tmp_path / "dump.conf"
    dump.write_text(p.stdout)
    q = run([LEAKYD, "--check-config", "-c", str(dump)])
    assert q.returncode == 0, q.stderr
    assert ctl("config", "check", dump).returncode == 0
    # Every key is commented: a help line precedes each key line.
    lines = p.stdout.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\w+ = ", line):
            assert lines[i - 1].startswith("#") and lines[i - 2].startswith("#"), line
    # The dump shows the effective values, and re-dumping the dump is stable.
    conf = tmp_path / "c.conf"
    conf.write_text("[http]\nthreads = 24\nmax_body = 3072\n[log]\naccess = off\n")
    p2 = ctl("-c", conf, "config", "dump")
    assert p2.returncode == 0
    assert re.search(r"^threads = 24$", p2.stdout, re.M)
    assert re.search(r"^max_body = 3K$", p2.stdout, re.M)
    assert re.search(r"^access = no$", p2.stdout, re.M)
    conf2 = tmp_path / "c2.conf"
    conf2.write_text(p2.stdout)
    assert ctl("-c", conf2, "config", "dump").stdout == p2.stdout
    # A broken -c file is refused by the commands that load it.
    bad = tmp_path / "bad.conf"
    bad.write_text("[http]\nthreads = x\n")
    p = ctl("-c", bad, "config", "dump")
    assert p.returncode == EX_CONFIG and f"{bad}:2:" in p.stderr


def test_help():
    p = ctl("help")
    assert p.returncode == 0
    for c in ("init", "check", "version", "config check", "config dump", "help"):
        assert re.search(rf"^  {re.escape(c)}\s", p.stdout, re.M), c
    assert ctl("--help").stdout == p.stdout
    assert ctl("-h").returncode == 0


@pytest.mark.parametrize("args", [["bogus"], [], ["config"], ["config", "bogus"],
                                  ["--bogus", "version"], ["init", "extra"]])
def test_usage_errors_exit_64(tmp_path, args):
    p = ctl("-d", tmp_path / "d", *args) if args and args[0] == "init" else ctl(*args)
    assert p.returncode == EX_USAGE, (args, p.returncode, p.stderr)
    assert "usage: leakyctl" in p.stderr or "unexpected argument" in p.stderr
