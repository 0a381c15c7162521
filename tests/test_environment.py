"""requirements.txt and environment.yml must pin exactly the same packages and versions."""
from __future__ import annotations

import re

import yaml

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;#]+)$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse_pins(lines, source):
    pins = {}
    for raw in lines:
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#") or line.startswith("-e") or line.startswith("-"):
            continue
        m = PIN.match(line)
        assert m, f"{source}: {line!r} is not an exact pin (name==version)"
        name = _normalise(m.group(1)) + (m.group(2) or "").lower()
        assert name not in pins, f"{source}: {name} pinned twice"
        pins[name] = m.group(3)
    return pins


def _requirements(repo_root):
    return _parse_pins((repo_root / "requirements.txt").read_text().splitlines(), "requirements.txt")


def _environment(repo_root):
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    return env, pip_sections[0]


def test_requirements_and_environment_pins_agree(repo_root):
    req = _requirements(repo_root)
    _, pip_section = _environment(repo_root)
    env = _parse_pins(pip_section, "environment.yml")
    missing_in_env = sorted(set(req) - set(env))
    missing_in_req = sorted(set(env) - set(req))
    assert not missing_in_env, f"pinned in requirements.txt but not in environment.yml: {missing_in_env}"
    assert not missing_in_req, f"pinned in environment.yml but not in requirements.txt: {missing_in_req}"
    differ = {k: (req[k], env[k]) for k in req if req[k] != env[k]}
    assert not differ, f"pins differ (requirements.txt, environment.yml): {differ}"


def test_environment_yml_installs_the_package(repo_root):
    env, pip_section = _environment(repo_root)
    assert env["name"] == "mfbook"
    assert "pip" in env["dependencies"]
    assert any(str(d).startswith("python=") for d in env["dependencies"])
    assert "-e ." in [str(x).strip() for x in pip_section]


def test_requirements_agree_with_constraints(repo_root):
    """Every direct pin must also be the version recorded in the full freeze."""
    req = _requirements(repo_root)
    cons = _parse_pins((repo_root / "constraints.txt").read_text().splitlines(), "constraints.txt")
    for name, version in req.items():
        base = name.split("[")[0]
        assert base in cons, f"{base} missing from constraints.txt"
        assert cons[base] == version, f"{base}: requirements.txt {version} != constraints.txt {cons[base]}"
