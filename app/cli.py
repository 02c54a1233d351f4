"""``pyea``: the operator's and the adapter author's commands.

``serve`` runs gunicorn with pyea's gunicorn settings (``app/hosting/gunicorn_conf.py``); ``check`` validates the
environment the way startup does, plus limits.json and every adapter package and schema, reporting every problem
at once; ``settings`` prints the settings reference (``--write`` regenerates the docs from it); ``new`` writes a
working adapter with its tests; ``call`` sends a request to a running instance; ``supervise`` runs the
out-of-process adapters for gunicorn's master; ``fake-provider`` serves a fake CoinGecko on loopback for trying
pyea without credentials or network.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

SETTINGS_DOC = Path("docs") / "configuration.md"
#: The checkout (or site-packages) holding the ``app`` package: where ``settings --write`` writes the docs.
ROOT = Path(__file__).resolve().parent.parent


def _check() -> int:
    from app.config import available_adapters, load_config
    from app.core.setting_specs import SettingsError
    from app.devkit.check import wiring_problems

    problems, notes = wiring_problems()
    config = None
    try:
        config = load_config()
    except SettingsError as exc:
        problems += exc.problems
    for note in notes:
        print(f"note: {note}")
    if problems:
        print(SettingsError(dict.fromkeys(problems)), file=sys.stderr)  # one line per problem, repeats dropped
        return 1
    names = ", ".join(cfg.adapter.name for cfg in config.adapters)
    print(f"OK: settings valid; serving: {names}; adapter packages checked: {', '.join(available_adapters())}")
    return 0


def _write_settings_docs(root: Path) -> list[Path]:
    """The README's settings table and docs/configuration.md, regenerated from the declarations."""
    import re

    from app.config import declared_adapters
    from app.core.settings_reference import configuration_doc, settings_table

    readme = root / "README.md"
    text = readme.read_text()
    text = re.sub(r"(<!-- settings-table.*?-->\n).*?(\n<!-- /settings-table -->)",
                  lambda m: m.group(1) + settings_table() + m.group(2), text, flags=re.S)
    readme.write_text(text)
    (root / SETTINGS_DOC).write_text(configuration_doc(declared_adapters()))
    return [readme, root / SETTINGS_DOC, *_write_twin_tables(root)]


def _write_twin_tables(root: Path) -> list[Path]:
    """Each adapter README's table of how it matches its TypeScript twin (``app/devkit/twins.py``)."""
    from app.config import available_adapters
    from app.devkit.twins import compatibility_table, declared, with_table

    written = []
    for name in available_adapters():
        adapter, schemas, twin = declared(name)
        readme = root / "adapters" / name / "README.md"
        if twin is None or not readme.exists():
            continue
        text = readme.read_text()
        new = with_table(text, compatibility_table(adapter, schemas, twin))
        if new != text:
            readme.write_text(new)
            written.append(readme)
    return written


def _new(name: str, transport: str, root: Path) -> int:
    from app.devkit.scaffold import ScaffoldError, new_adapter

    try:
        written = new_adapter(root, name, transport)
    except ScaffoldError as exc:
        print(f"pyea new: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path.relative_to(root)}")
    print(f"\nNext: python -m pytest adapters/{name}; then replace the example API in adapters/{name}/transports.py "
          f"with the provider's (docs/adapters.md walks through it), and check with: ADAPTERS={name} pyea check")
    return 0


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` gives a string, ``key:=json`` a JSON value (``amount:=5``, ``symbols:='["A","B"]'``)."""
    data: dict[str, Any] = {}
    for pair in pairs:
        if ":=" in pair:
            key, raw = pair.split(":=", 1)
            try:
                data[key] = json.loads(raw)
            except ValueError:
                raise SystemExit(f"pyea call: {pair!r}: the part after := must be JSON") from None
        elif "=" in pair:
            key, value = pair.split("=", 1)
            data[key] = value
        else:
            raise SystemExit(f"pyea call: {pair!r}: give key=value, or key:=json for numbers, lists and objects")
    return data


def _call(endpoint: str, pairs: list[str], url: str | None, adapter: str | None, job_id: str,
          timeout_s: float) -> int:
    import requests

    from app.core.settings import Settings
    from app.web.discovery import WILDCARD_HOSTS

    data = parse_pairs(pairs)
    settings = Settings.parse()[0]
    if url is None:
        host = "127.0.0.1" if settings.EA_HOST in WILDCARD_HOSTS else settings.EA_HOST
        host = f"[{host}]" if ":" in host else host
        url = f"http://{host}:{settings.EA_PORT}{settings.BASE_URL}" + (f"{adapter}/" if adapter else "")
    headers = {"authorization": f"Bearer {settings.EA_AUTH_TOKEN}"} if settings.EA_AUTH_TOKEN else {}
    try:
        response = requests.post(url, json={"id": job_id, "endpoint": endpoint, "data": data}, headers=headers,
                                 timeout=timeout_s)
    except requests.RequestException as exc:
        print(f"pyea call: no answer from {url} ({type(exc).__name__}); is pyea running there?", file=sys.stderr)
        return 1
    try:
        print(json.dumps(response.json(), indent=2))
    except ValueError:
        print(response.text)
    return 0 if response.ok else 1


def _serve() -> int:
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "-c", "python:app.hosting.gunicorn_conf"])
    return 0  # not reached: exec replaces this process


def _fake_provider(port: int) -> int:
    from app.devkit.fake_http import FakeProvider

    with FakeProvider(port=port) as fake:
        print(f"fake CoinGecko at {fake.url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyea", description="Chainlink External Adapter host")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run gunicorn with pyea's gunicorn settings")
    commands.add_parser("check", help="validate settings, limits.json and every adapter and schema, then exit")
    settings = commands.add_parser("settings", help="print the settings reference as a Markdown table")
    settings.add_argument("--write", action="store_true",
                          help=f"regenerate the README's settings table and {SETTINGS_DOC} instead")
    new = commands.add_parser("new", help="write a new adapter package with its schema, README and tests")
    new.add_argument("name", help="the adapter's name: a Python package name, lower case")
    new.add_argument("--transport", choices=("http", "ws"), default="http",
                     help="http: polled REST API (default); ws: websocket stream with a REST fallback")
    new.add_argument("--root", type=Path, default=Path.cwd(), help="the pyea checkout (default: here)")
    call = commands.add_parser("call", help="send a request to a running pyea and print the answer")
    call.add_argument("endpoint", help="the endpoint (or alias) to ask")
    call.add_argument("pairs", nargs="*", metavar="key=value", help="data parameters; key:=json for non-strings")
    call.add_argument("--url", help="pyea's URL (default: http://EA_HOST:EA_PORT{BASE_URL} from the environment)")
    call.add_argument("--adapter", help="the adapter, when the host serves several")
    call.add_argument("--id", default="1", help="the job run id sent")
    call.add_argument("--timeout", type=float, default=35.0, help="seconds to wait for the answer")
    commands.add_parser("supervise", help="run the out-of-process adapters (started by gunicorn's master)")
    fake = commands.add_parser("fake-provider", help="serve a fake CoinGecko on 127.0.0.1 for demos")
    fake.add_argument("--port", type=int, default=8999)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve()
    if args.command == "check":
        return _check()
    if args.command == "new":
        return _new(args.name, args.transport, args.root.resolve())
    if args.command == "call":
        return _call(args.endpoint, args.pairs, args.url, args.adapter, args.id, args.timeout)
    if args.command == "supervise":
        from app.hosting.supervisor import run_supervisor

        return run_supervisor()
    if args.command == "settings":
        if args.write:
            for path in _write_settings_docs(ROOT):
                print(f"wrote {path}")
        else:
            from app.core.settings_reference import settings_table

            print(settings_table())
        return 0
    return _fake_provider(args.port)


if __name__ == "__main__":
    sys.exit(main())
