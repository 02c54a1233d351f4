"""The ``pyea`` console commands an operator runs before starting the service."""

import subprocess
import sys

from app.testing import REPO


def pyea(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=60)


def test_check_accepts_defaults_and_lists_problems(tmp_path):
    ok = pyea("check", env={"CACHE_DIR": str(tmp_path)})
    assert ok.returncode == 0 and "coingecko" in ok.stdout
    bad = pyea("check", env={"EA_PORT": "abc", "RETRY": "-1", "CACHE_DIR": str(tmp_path)})
    assert bad.returncode == 1
    assert "EA_PORT='abc'" in bad.stderr and "RETRY='-1'" in bad.stderr and "Traceback" not in bad.stderr


def test_settings_table_covers_every_setting():
    from app.settings import Settings

    table = pyea("settings").stdout
    for spec in Settings.specs():
        assert f"`{spec.name}`" in table
