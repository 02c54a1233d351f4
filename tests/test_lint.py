"""The code base stays ruff-clean: checked by the same command that runs the tests."""

import subprocess
import sys

from app.devkit.testing import REPO


def test_ruff_reports_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
