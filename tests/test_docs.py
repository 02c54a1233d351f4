"""The README is what operators read first: its settings table must match the code."""

import re

from app.config import declared_adapters
from app.core.settings_reference import configuration_doc, settings_table
from app.devkit.testing import REPO


def test_readme_settings_table_is_current():
    readme = (REPO / "README.md").read_text()
    table = re.search(r"<!-- settings-table.*?-->\n(.*?)\n<!-- /settings-table -->", readme, re.S).group(1)
    assert table == settings_table(), "regenerate it: pyea settings --write"


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```sh\n{ci}\n```" in readme


def test_configuration_reference_is_current():
    assert (REPO / "docs" / "configuration.md").read_text() == configuration_doc(declared_adapters()), \
        "regenerate it: pyea settings --write"
