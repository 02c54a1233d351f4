"""The test kit adapter authors use: its leak check fails a test, its adapter inference picks the folder's adapter."""

from pathlib import Path

import pytest

from app.devkit.pytest_plugin import adapter_of

pytest_plugins = ["pytester"]


@pytest.mark.process
def test_a_secret_reaching_a_response_fails_the_test(pytester: pytest.Pytester):
    pytester.makepyfile("""
        def test_careless(pyea_app):
            app = pyea_app(API_KEY="sekrit-value-123")
            app.add_url_rule("/echo", "echo", lambda: "the key is sekrit-value-123")  # a leaky route
            assert app.test_client().get("/echo").status_code == 200

        def test_careful(pyea_app):
            client = pyea_app(API_KEY="sekrit-value-123").test_client()
            assert client.get("/status").status_code == 200  # shows the key as [REDACTED]
    """)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)  # the careless test passes its body, then errors at teardown
    result.stdout.fnmatch_lines(["*secrets left pyea: 'sekrit-value-123' in response to GET /echo*"])


@pytest.mark.parametrize(("path", "adapter"), [("adapters/tiingo/tests/test_x.py", "tiingo"),
                                               ("adapters/acme/tests/deep/test_x.py", "acme"),
                                               ("tests/test_x.py", None)])
def test_an_adapters_tests_serve_that_adapter(tmp_path: Path, path: str, adapter: str | None):
    assert adapter_of(tmp_path / path) == adapter
