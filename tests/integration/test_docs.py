"""Documentation coverage: every config key, leakyctl command and leakyd flag
is in its man page, and every config key is in the sample etc/leakyd.conf;
so is every key of the named sections [provider.NAME] and [model.NAME].

The lists come from the binaries themselves (`leakyctl config dump`,
`leakyctl -c etc/leakyd.conf config dump` for the named sections, `leakyctl
help`, `leakyd --help`), so a new key, command or flag without
documentation fails here.  Man pages are rendered with mandoc so that mdoc
markup (`.Fl \\-config`, `.Cm config check`) reads as the user sees it.
"""

import os
import re
import shutil
import subprocess

import pytest

from conftest import LEAKYCTL, LEAKYD, ROOT, clean_env, run

MAN = os.path.join(ROOT, "man")
SAMPLE = os.path.join(ROOT, "etc", "leakyd.conf")


def dump_keys(config=None):
    """[(section, key)] from `leakyctl [-c config] config dump`; a named
    section keeps its whole name ("provider.openai")."""
    args = [LEAKYCTL] + (["-c", config] if config else []) + ["config", "dump"]
    p = run(args, env=clean_env())
    assert p.returncode == 0, p.stderr
    keys, section = [], None
    for line in p.stdout.splitlines():
        m = re.match(r"^\[([^\]\s]+)\]$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^(\w+)\s*=", line)
        if m:
            assert section, line
            keys.append((section, m.group(1)))
    return keys


def config_keys():
    """[(section, key)] of the fixed sections, from `leakyctl config dump`."""
    keys = [(s, k) for s, k in dump_keys() if "." not in s]
    assert len(keys) >= 20, keys
    return keys


DYN_KINDS = ("provider", "model")


def dyn_keys():
    """{"provider": [keys], "model": [keys]}: the keys of the [provider.NAME]
    and [model.NAME] sections, from `leakyctl -c etc/leakyd.conf config dump`
    (the dump renders every key of every named section it has)."""
    out = {kind: [] for kind in DYN_KINDS}
    for section, key in dump_keys(SAMPLE):
        kind, dot, _ = section.partition(".")
        if dot and key not in out.setdefault(kind, []):
            out[kind].append(key)
    assert set(out) == set(DYN_KINDS), f"unexpected named sections: {sorted(out)}"
    assert len(out["provider"]) >= 20 and len(out["model"]) >= 8, out
    return out


def sample_keys():
    """{(section, key)} set or shown (commented) in etc/leakyd.conf."""
    if not os.path.exists(SAMPLE):
        pytest.fail("etc/leakyd.conf is missing")
    seen, section = set(), None
    with open(SAMPLE) as f:
        for line in f:
            m = re.match(r"^\s*[#;]?\s*\[([^\]\s]+)\]\s*$", line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r"^\s*[#;]?\s*(\w+)\s*=", line)
            if m and section:
                seen.add((section, m.group(1)))
    return seen


def ctl_commands():
    p = run([LEAKYCTL, "help"], env=clean_env())
    assert p.returncode == 0
    body = p.stdout.split("commands:", 1)[1]
    cmds = []
    for line in body.splitlines():
        if line.startswith("  ") and line.strip():
            # "  NAME  ARGS  HELP": the name ends at the first run of two spaces.
            cmds.append(re.split(r"\s{2,}", line.strip())[0])
    assert {"init", "check", "version", "config check", "config dump", "help"} <= set(cmds), cmds
    return cmds


def leakyd_flags():
    p = run([LEAKYD, "--help"], env=clean_env())
    assert p.returncode == 0
    flags = sorted(set(re.findall(r"(--[a-z][a-z-]+)", p.stdout)))
    assert {"--config", "--data-dir", "--listen", "--check-config", "--version",
            "--help"} <= set(flags), flags
    return flags


def render(page):
    path = os.path.join(MAN, page)
    if not os.path.exists(path):
        pytest.fail(f"man/{page} is missing")
    mandoc = shutil.which("mandoc")
    if not mandoc:
        pytest.fail("mandoc not installed (tools/deps.sh test)")
    p = subprocess.run([mandoc, "-Tascii", path], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    text = re.sub(r".\x08", "", p.stdout.decode("utf-8", "replace"))   # overstrike
    text = text.replace("\u2010", "-")
    return re.sub(r"[ \t]+", " ", text)


def words_re(phrase):
    return re.compile(r"(?<![\w-])" + r"\s+".join(map(re.escape, phrase.split())) + r"(?![\w-])")


def test_config_keys_in_leakyd_conf_5():
    text = render("leakyd.conf.5")
    keys = config_keys()
    sections = list(dict.fromkeys(s for s, _ in keys))
    # Where the page has a heading line "[section]" for every section, each
    # key must be described under its own section's heading.
    found = [(m.group(1), m.start()) for m in re.finditer(r"^ *\[(\w+)\] *$", text, re.M)]
    starts = [pos for _, pos in found] + [len(text)]
    heads = {}
    for name, pos in found:
        heads.setdefault(name, pos)        # the first: the reference, not an example
    regions = {}
    if all(s in heads for s in sections):
        for s in sections:
            i = starts.index(heads[s])
            regions[s] = text[heads[s]:starts[i + 1]]
    missing = []
    for section, key in keys:
        if not words_re(key).search(regions.get(section, text)):
            missing.append(f"[{section}] {key}")
    for section in sorted({s for s, _ in config_keys()}):
        if not re.search(rf"\[{section}\]|(?<![\w-]){section}(?![\w-])", text):
            missing.append(f"section [{section}]")
    assert not missing, f"not in man/leakyd.conf.5: {missing}"


def test_config_keys_in_sample_conf():
    seen = sample_keys()
    missing = [f"[{s}] {k}" for s, k in config_keys() if (s, k) not in seen]
    assert not missing, f"not in etc/leakyd.conf: {missing}"


def test_provider_and_model_keys_in_leakyd_conf_5():
    """Each key of [provider.NAME] and [model.NAME] is described under the
    page's heading for that kind of section."""
    text = render("leakyd.conf.5")
    missing = []
    for kind, keys in dyn_keys().items():
        m = re.search(rf"^ *\[{kind}\.NAME\] *$", text, re.M)
        if not m:
            missing.append(f"heading [{kind}.NAME]")
            continue
        # The region ends at the next subsection heading ("[...]") or section (column 0).
        end = re.compile(r"^( *\[[\w.]+\] *$|\S)", re.M).search(text, m.end())
        region = text[m.end():end.start() if end else len(text)]
        missing += [f"[{kind}.NAME] {k}" for k in keys if not words_re(k).search(region)]
    assert not missing, f"not in man/leakyd.conf.5: {missing}"


def test_provider_and_model_keys_in_sample_conf():
    """Each key of [provider.NAME] and [model.NAME] is shown at least once in
    a section of that kind in etc/leakyd.conf."""
    seen = {}
    for section, key in sample_keys():
        kind, dot, _ = section.partition(".")
        if dot:
            seen.setdefault(kind, set()).add(key)
    missing = [f"[{kind}.*] {k}" for kind, keys in dyn_keys().items() for k in keys
               if k not in seen.get(kind, set())]
    assert not missing, f"not in etc/leakyd.conf: {missing}"


def test_sample_conf_is_valid():
    if not os.path.exists(SAMPLE):
        pytest.fail("etc/leakyd.conf is missing")
    p = run([LEAKYD, "--check-config", "-c", SAMPLE], env=clean_env())
    assert p.returncode == 0, p.stderr


def test_leakyctl_commands_in_leakyctl_1():
    text = render("leakyctl.1")
    missing = [c for c in ctl_commands() if not words_re(c).search(text)]
    assert not missing, f"not in man/leakyctl.1: {missing}"


def test_leakyd_flags_in_leakyd_8():
    text = render("leakyd.8")
    missing = [f for f in leakyd_flags() if not words_re(f).search(text)]
    assert not missing, f"not in man/leakyd.8: {missing}"


def test_man_pages_lint_clean():
    mandoc = shutil.which("mandoc")
    if not mandoc:
        pytest.fail("mandoc not installed (tools/deps.sh test)")
    for page in ("leakyd.8", "leakyctl.1", "leakyd.conf.5"):
        path = os.path.join(MAN, page)
        if not os.path.exists(path):
            pytest.fail(f"man/{page} is missing")
        p = subprocess.run([mandoc, "-Tlint", "-W", "warning", path], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, f"{page}:\n{p.stdout}{p.stderr}"
