"""Storage: the data directory, leaky.db (WAL, migrations), the schema guard."""

import json
import os
import re
import sqlite3
import stat

from conftest import LEAKYCTL, LEAKYD, ROOT, clean_env, render_config, base_config, run

EX_DATAERR = 65


def migrations_in_schema():
    with open(os.path.join(ROOT, "schema.sql")) as f:
        nums = [int(n) for n in re.findall(r"^-- migration (\d+):", f.read(), re.M)]
    assert nums == list(range(1, len(nums) + 1)), nums
    return len(nums)


def ro(path):
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def test_data_dir_and_db(shared):
    d = shared.data_dir
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    db = os.path.join(d, "leaky.db")
    assert os.path.isfile(db)
    assert os.path.isdir(os.path.join(d, "buckets"))
    c = ro(db)
    try:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("PRAGMA user_version").fetchone()[0] == migrations_in_schema()
        meta = dict(c.execute("SELECT key, value FROM meta"))
        assert re.match(r"^[0-9a-f]{32}$", meta["instance_id"])
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", meta["created_at"])
    finally:
        c.close()


def test_nested_data_dir_created_0700(leakyd_factory, tmp_path):
    nested = tmp_path / "a" / "b" / "data"
    srv = leakyd_factory({"storage": {"data_dir": str(nested)}})
    for p in (tmp_path / "a", tmp_path / "a" / "b", nested):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o700, p
    srv.wait_log(lambda r: r["msg"] == f"leaky.db migrated from schema 0 to "
                 f"{migrations_in_schema()}", "the migration line")


def test_restart_keeps_data_and_does_not_migrate_again(leakyd_factory, tmp_path):
    data = str(tmp_path / "keep")
    a = leakyd_factory({"storage": {"data_dir": data}})
    a.stop()
    c = ro(os.path.join(data, "leaky.db"))
    iid = c.execute("SELECT value FROM meta WHERE key='instance_id'").fetchone()[0]
    c.close()
    b = leakyd_factory({"storage": {"data_dir": data}})
    b.stop()
    assert not any("migrated" in r["msg"] for r in b.records())
    c = ro(os.path.join(data, "leaky.db"))
    assert c.execute("SELECT value FROM meta WHERE key='instance_id'").fetchone()[0] == iid
    c.close()


def test_newer_schema_refused(tmp_path):
    data = str(tmp_path / "data")
    assert run([LEAKYCTL, "-d", data, "init"]).returncode == 0
    latest = migrations_in_schema()
    c = sqlite3.connect(os.path.join(data, "leaky.db"))
    c.execute(f"PRAGMA user_version = {latest + 1}")
    c.commit()
    c.close()
    cfg = base_config(tmp_path)
    cfg["storage"]["data_dir"] = data
    conf = tmp_path / "leakyd.conf"
    conf.write_text(render_config(cfg))
    p = run([LEAKYD, "-c", str(conf)], timeout=60)
    assert p.returncode == EX_DATAERR, (p.returncode, p.stderr)
    recs = [json.loads(l) for l in p.stderr.splitlines()]
    errs = [r for r in recs if r["level"] == "error"]
    assert len(errs) == 1, recs
    assert (f"database schema version {latest + 1} is newer than this build knows ({latest})"
            in errs[0]["msg"])
    assert "ready" not in [r["msg"] for r in recs]
    # The database was not touched.
    c = ro(os.path.join(data, "leaky.db"))
    assert c.execute("PRAGMA user_version").fetchone()[0] == latest + 1
    c.close()
    # leakyctl refuses it too.
    p = run([LEAKYCTL, "-d", data, "check"])
    assert p.returncode == EX_DATAERR
    assert "newer than this build" in p.stdout
    p = run([LEAKYCTL, "-d", data, "init"])
    assert p.returncode == EX_DATAERR
    assert "newer than this build" in p.stderr


def test_data_dir_not_a_directory(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    cfg = base_config(tmp_path)
    cfg["storage"]["data_dir"] = str(f)
    conf = tmp_path / "leakyd.conf"
    conf.write_text(render_config(cfg))
    p = run([LEAKYD, "-c", str(conf)], timeout=60)
    assert p.returncode == 73, (p.returncode, p.stderr)          # EX_CANTCREAT
    assert "is not a directory" in p.stderr
