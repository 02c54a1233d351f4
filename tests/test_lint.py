"""The code base stays ruff-clean: checked by the same command that runs the tests."""

import subprocess
import sys

import pytest

from app.devkit.testing import REPO

pytestmark = pytest.mark.process  # every test here starts gunicorn, Redis, Prometheus or the CLI


def test_ruff_reports_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
