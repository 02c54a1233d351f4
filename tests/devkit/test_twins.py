"""Every adapter with a TypeScript twin accepts each endpoint, alias and parameter name the twin accepts, and
its README shows the match as its declarations are."""

from __future__ import annotations

import pytest

from app.config import available_adapters
from app.devkit.testing import REPO
from app.devkit.twins import MARKERS, compatibility_table, declared, problems

TWINNED = [name for name in available_adapters() if declared(name)[2] is not None]


def test_the_adapters_that_replace_a_typescript_one_say_so():
    assert "coingecko" in TWINNED


@pytest.mark.parametrize("name", TWINNED)
def test_every_name_the_twin_accepts_is_accepted(name):
    adapter, schemas, twin = declared(name)
    assert problems(adapter, schemas, twin) == []


@pytest.mark.parametrize("name", TWINNED)
def test_the_readme_shows_the_match_as_declared(name):
    readme = (REPO / "adapters" / name / "README.md").read_text()
    found = MARKERS.search(readme)
    assert found, f"adapters/{name}/README.md needs <!-- twin-table --> … <!-- /twin-table -->"
    adapter, schemas, twin = declared(name)
    assert found.group(2) == compatibility_table(adapter, schemas, twin) + "\n", \
        "regenerate it: pyea settings --write"


def test_a_missing_endpoint_or_parameter_is_named():
    adapter, schemas, twin = declared("coingecko")
    twin = {"endpoints": {"crypto": {"aliases": ["spot"], "params": {"base": ["asset"]}}}}
    assert problems(adapter, schemas, twin) == ["crypto: parameter 'asset' of the twin is not accepted",
                                                "endpoint 'spot' of the twin is not accepted"]
    assert "| `crypto` (`spot`) |" in compatibility_table(adapter, schemas, twin)
