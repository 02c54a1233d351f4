"""``pyea new``: a working adapter package, its schema, README and passing tests, from the templates in
``app/devkit/templates/``, so an author starts from green tests and changes one thing at a time."""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).parent / "templates"
NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class ScaffoldError(Exception):
    pass


def new_adapter(root: Path, name: str, transport: str = "http") -> list[Path]:
    """Write ``adapters/<name>/`` and ``schemas/<name>/`` under ``root`` (a pyea checkout); the files written."""
    from app.config import RESERVED_ROUTES

    if not NAME.match(name) or keyword.iskeyword(name) or name in RESERVED_ROUTES:
        raise ScaffoldError(f"adapter name {name!r}: use 2-40 lower-case letters, digits or _, starting with a "
                            f"letter (it is a Python package and a URL path), not one of {sorted(RESERVED_ROUTES)}")
    if not (root / "adapters" / "__init__.py").exists():
        raise ScaffoldError(f"{root} has no adapters/ package: run pyea new from the root of a pyea checkout")
    package, schemas = root / "adapters" / name, root / "schemas" / name
    for existing in (package, schemas):
        if existing.exists():
            raise ScaffoldError(f"{existing.relative_to(root)} exists already: pick another name")
    title = name.replace("_", " ").title().replace(" ", "")
    streamed = transport == "ws"
    values = {
        "name": name, "NAME": name.upper(), "title": title,
        "description": "streamed over a websocket, polled over REST as a fallback" if streamed else
                       "prices polled over its REST API",
        "imports": "PriceStreamTransport, PriceTransport" if streamed else "PriceTransport",
        "transport": "PriceStreamTransport(fallback=PriceTransport())" if streamed else "PriceTransport()",
        "ws_setting": f'\n        Spec("WS_API_ENDPOINT", "wss://stream.{name}.example/v1",\n             "Websocket '
                      'URL; a comma-separated list adds failover URLs"),' if streamed else "",
        "ws_row": f"\n| `WS_API_ENDPOINT` | `wss://stream.{name}.example/v1` | Websocket URL (with `WS_ENABLED=true`) |"
                  if streamed else "",
        "transport_flag": " --transport ws" if streamed else "",
    }
    files = {
        package / "__init__.py": "adapter_init.py.tmpl",
        package / "transports.py": f"{transport}/transports.py.tmpl",
        package / "overrides.json": "overrides.json.tmpl",
        package / "README.md": "README.md.tmpl",
        package / "tests" / "__init__.py": None,
        package / "tests" / f"test_{name}.py": f"{transport}/test_adapter.py.tmpl",
        schemas / "price.json": "schema.json.tmpl",
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = Template((TEMPLATES / template).read_text()).substitute(values) if template else ""
        path.write_text(text)
    return list(files)
