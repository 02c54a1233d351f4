"""How the host and an out-of-process adapter agree: the ``<NAME>_CMD`` setting, the ports table the master hands
its workers, and checking a command line. Pure functions: the master, ``app.config`` and the supervisor read them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping

from app.core.setting_specs import Spec

CMD_SPEC = Spec("CMD", "", "Command that serves this adapter as its own process (unset: in the host)", "host")


#: Set by the master before workers fork, so every process agrees on each adapter's port: ``name=port,...``.
PORTS_ENV = "PYEA_ADAPTER_PORTS"


#: Set for a worker whose adapter is not the host's first: it reads only ``<NAME>_X`` settings, as in the host.
PREFIXED_ONLY_ENV = "PYEA_PREFIXED_SETTINGS_ONLY"


def encode_ports(ports: Mapping[str, int]) -> str:
    return ",".join(f"{name}={port}" for name, port in ports.items())


def decode_ports(text: str) -> dict[str, int]:
    """Raises ValueError on anything but ``name=port`` pairs (the variable is pyea's own, but may be hand-set)."""
    ports = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, port = item.partition("=")
        if not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"name=port pairs, got {item!r}")
        ports[name.strip().lower()] = int(port)
    return ports


def command_path() -> str:
    """PATH with this interpreter's directory first, so ``pyea serve`` finds the virtualenv's own script even
    under systemd, whose PATH does not include it."""
    return os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", os.defpath)])


def parse_command(cmd: str) -> list[str]:
    """The command's argv, or ValueError saying why it cannot run."""
    try:
        argv = shlex.split(cmd)
    except ValueError as exc:
        raise ValueError(f"a shell-style command line ({exc})") from None
    if not argv:
        raise ValueError("a command line")
    if shutil.which(argv[0], path=command_path()) is None:
        raise ValueError(f"a command that exists ({argv[0]!r} is not an executable on PATH)")
    return argv
