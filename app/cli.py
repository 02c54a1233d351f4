"""``pyea``: operator commands that need no running server.

``serve`` runs gunicorn with pyea's gunicorn settings (``app/gunicorn_conf.py``), ``check`` validates the
environment the way startup does, ``settings`` prints the settings reference, ``supervise`` runs the
out-of-process adapters for gunicorn's master, ``fake-provider`` serves a fake CoinGecko on loopback for trying
pyea without credentials or network.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _check() -> int:
    from app.host import load_config
    from app.settings import SettingsError

    try:
        config = load_config()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 1
    names = ", ".join(cfg.adapter.name for cfg in config.adapters)
    print(f"OK: settings valid; adapters: {names}")
    return 0


def _settings_table() -> str:
    from app.host import CMD_SPEC
    from app.settings import Settings

    rows = ["| setting | default | allowed | description |", "|---|---|---|---|"]
    for spec in Settings.specs():
        default = "" if spec.default in (None, "", ()) else f"`{spec.default}`"
        rows.append(f"| `{spec.name}` | {default} | {spec.allowed()} | {spec.description} |")
    rows.append(f"| `<NAME>_CMD` |  | {CMD_SPEC.allowed()} | {CMD_SPEC.description}; see docs/hosting.md |")
    rows.append("| `<NAME>_RATE_LIMIT_*` |  | as `RATE_LIMIT_*` | That adapter's rate limit, when several share a "
                "host |")
    return "\n".join(rows)


def _serve() -> int:
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_conf"])
    return 0  # not reached: exec replaces this process


def _fake_provider(port: int) -> int:
    from app.testing import FakeProvider

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
    commands.add_parser("check", help="validate the environment's settings and exit")
    commands.add_parser("settings", help="print the settings reference as a Markdown table")
    commands.add_parser("supervise", help="run the out-of-process adapters (started by gunicorn's master)")
    fake = commands.add_parser("fake-provider", help="serve a fake CoinGecko on 127.0.0.1 for demos")
    fake.add_argument("--port", type=int, default=8999)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve()
    if args.command == "check":
        return _check()
    if args.command == "supervise":
        from app.supervisor import run_supervisor

        return run_supervisor()
    if args.command == "settings":
        print(_settings_table())
        return 0
    return _fake_provider(args.port)


if __name__ == "__main__":
    sys.exit(main())
