"""The ``pyea`` console commands: what an operator runs before starting, and what an adapter author starts with."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import parse_pairs
from app.devkit.fake_http import FakeProvider
from app.devkit.testing import REPO, GunicornProcess

pytestmark = pytest.mark.process  # every test here starts gunicorn, Redis, Prometheus or the CLI


def pyea(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the project's source, to change without touching the real one."""
    copy = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", ".git", "cache", ".pytest_cache", "results")
    for part in ("app", "adapters", "schemas"):
        shutil.copytree(REPO / part, copy / part, ignore=ignore)
    for part in ("limits.json", "pyproject.toml", "setup.cfg"):
        shutil.copy(REPO / part, copy / part)
    return copy


def test_check_accepts_defaults_and_lists_problems(tmp_path):
    ok = pyea("check", env={"CACHE_DIR": str(tmp_path)})
    assert ok.returncode == 0 and "coingecko" in ok.stdout
    bad = pyea("check", env={"EA_PORT": "abc", "RETRY": "-1", "CACHE_DIR": str(tmp_path)})
    assert bad.returncode == 1
    assert "EA_PORT='abc'" in bad.stderr and "RETRY='-1'" in bad.stderr and "Traceback" not in bad.stderr


def test_check_reports_a_broken_schema_an_unknown_tier_and_a_bad_setting_in_one_run(checkout):
    # The broken schema belongs to an adapter that is not even configured: every adapter package is checked.
    (checkout / "schemas" / "coinmarketcap" / "volume.json").write_text('{"type": "object", "required": "base"}')
    result = pyea("check", cwd=checkout, env={"RATE_LIMIT_API_TIER": "platinum", "EA_WORKERS": "0",
                                              "CACHE_DIR": str(checkout / "cache")})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Invalid configuration (3 problems)" in result.stderr
    assert "schema coinmarketcap/volume: must be a usable schema" in result.stderr
    assert "RATE_LIMIT_API_TIER='platinum': must be a coingecko tier in limits.json: demo, basic" in result.stderr
    assert "EA_WORKERS='0': must be an integer >= 1" in result.stderr


def test_check_reports_broken_wiring_and_limits(checkout):
    init = checkout / "adapters" / "pyth" / "__init__.py"
    init.write_text(init.read_text().replace('default_endpoint="price"', 'default_endpoint="prise"'))
    (checkout / "schemas" / "coingecko" / "orphan.json").write_text("{}")
    limits = json.loads((checkout / "limits.json").read_text())
    limits["coingecko"]["http"]["demo"]["rateLimit1m"] = "thirty"
    (checkout / "limits.json").write_text(json.dumps(limits))
    result = pyea("check", cwd=checkout, env={"CACHE_DIR": str(checkout / "cache")})
    assert result.returncode == 1
    assert "adapters/pyth default_endpoint='prise': must be one of its endpoints: price" in result.stderr
    assert "schemas/coingecko/orphan.json: must be an endpoint named 'orphan' in adapters/coingecko" in result.stderr
    assert "limits.json coingecko.http.demo.rateLimit1m='thirty': must be a positive number" in result.stderr


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_a_new_adapter_passes_its_own_tests_lint_and_check(checkout, transport):
    made = pyea("new", "demo", "--transport", transport, cwd=checkout)
    assert made.returncode == 0, made.stderr
    assert "wrote adapters/demo/transports.py" in made.stdout and "wrote schemas/demo/price.json" in made.stdout
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "adapters/demo"],
                           cwd=checkout, capture_output=True, text=True, timeout=120)
    assert tests.returncode == 0 and " passed" in tests.stdout and "skipped" not in tests.stdout, tests.stdout
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "adapters/demo"], cwd=checkout,
                          capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout
    check = pyea("check", cwd=checkout, env={"ADAPTERS": "demo", "CACHE_DIR": str(checkout / "cache")})
    assert check.returncode == 0 and "serving: demo" in check.stdout, check.stderr


@pytest.mark.parametrize(("name", "says"), [("Demo", "lower-case"), ("health", "not one of"), ("1x", "starting"),
                                            ("coingecko", "adapters/coingecko exists already")])
def test_new_refuses_a_bad_or_taken_name(checkout, name, says):
    result = pyea("new", name, cwd=checkout)
    assert result.returncode == 1 and says in result.stderr
    assert sorted(p.name for p in (checkout / "adapters").iterdir()) == sorted(
        p.name for p in (REPO / "adapters").iterdir() if p.name != "__pycache__")


def test_call_prints_the_answer_of_a_running_pyea(tmp_path):
    with FakeProvider() as provider, GunicornProcess({"API_ENDPOINT": provider.url, "CACHE_DIR": str(tmp_path),
                                                      "EA_WORKERS": "1"}) as server:
        env = {**server.env}
        ok = pyea("call", "crypto", "base=ETH", "quote=USD", "--id", "42", env=env)
        assert ok.returncode == 0, ok.stderr
        answer = json.loads(ok.stdout)
        assert answer["jobRunID"] == "42" and answer["result"] == 3021.5
        assert ok.stdout.startswith("{\n  ")  # pretty-printed for a person
        bad = pyea("call", "crypto", "base=ETH", env=env)
        assert bad.returncode == 1 and json.loads(bad.stdout)["error"]["message"].startswith("data.quote")
    gone = pyea("call", "crypto", "base=ETH", "quote=USD", env=env)
    assert gone.returncode == 1 and "is pyea running there?" in gone.stderr


def test_call_parameters_are_strings_unless_given_as_json():
    assert parse_pairs(["base=ETH", "amount:=5", "path:=[\"a\", 1]", "note=a=b"]) == {
        "base": "ETH", "amount": 5, "path": ["a", 1], "note": "a=b"}
    with pytest.raises(SystemExit, match="give key=value"):
        parse_pairs(["base"])
    with pytest.raises(SystemExit, match="must be JSON"):
        parse_pairs(["amount:=five"])


def test_settings_table_covers_every_setting():
    from app.core.settings import Settings

    table = pyea("settings").stdout
    for spec in Settings.specs():
        assert f"`{spec.name}`" in table
