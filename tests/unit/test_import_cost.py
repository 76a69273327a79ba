"""The hot path's start-up cost: the runtime's modules import none of the slow stdlib ones.

docs/architecture.md ("Speed"): run, create, start and delete use _json,
_socket, _signal and annotation-only typing imports.  ``-X importtime``
lists every module a fresh interpreter imports; none of these may be among
them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
HOT_MODULES = ("sampan.cli.runtime", "sampan.runtime.run", "sampan.runtime.init",
               "sampan.runtime.lifecycle")  # fmt: skip
FORBIDDEN = frozenset({"re", "enum", "typing", "json", "dataclasses", "subprocess", "signal",
                       "socket", "argparse", "logging", "pathlib", "inspect"})  # fmt: skip


def imported_modules(*modules: str) -> list[str]:
    python = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import {', '.join(modules)}"
    proc = subprocess.run(
        [python, "-IS", "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    names = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        name = line.rsplit("|", 1)[1].strip()
        if name != "imported package":  # the header line
            names.append(name)
    return names


def test_hot_path_imports_no_slow_modules() -> None:
    names = imported_modules(*HOT_MODULES)
    assert "sampan.runtime.lifecycle" in names  # the measurement works
    slow = sorted(FORBIDDEN.intersection(names))
    assert slow == [], f"the hot path imports {slow}; see docs/architecture.md, Speed"


def test_listing_images_imports_no_slow_modules() -> None:
    """``sampan images`` asks the daemon: no image store, no SQLite, no http.client."""
    names = imported_modules("sampan.cli.main", "sampan.cli.image", "sampan.cli.format")
    assert "sampan.api.client" in names
    never = FORBIDDEN | {"http.client", "sqlite3", "hashlib", "shutil", "tarfile", "zlib",
                         "sampan.image.store", "sampan.image.snapshot", "sampan.image.registry",
                         "sampan.engine"}  # fmt: skip
    slow = sorted(never.intersection(names))
    assert slow == [], f"sampan images imports {slow}"


def test_pull_and_push_import_no_registry_client() -> None:
    """``sampan pull``/``push`` draw the daemon's stream: no registry client, HTTP or TLS."""
    names = imported_modules("sampan.cli.main", "sampan.cli.registry", "sampan.image.progress",
                             "sampan.oci.reference", "sampan.image.dockerconfig")  # fmt: skip
    assert "sampan.image.progress" in names
    never = FORBIDDEN | {"http.client", "ssl", "sqlite3", "hashlib", "urllib.parse",
                         "sampan.image.registry", "sampan.image.store"}  # fmt: skip
    slow = sorted(never.intersection(names))
    assert slow == [], f"sampan pull imports {slow}"


def test_container_commands_import_no_slow_modules() -> None:
    """``sampan ps``/``run`` talk to the daemon: no image store, no http.client."""
    names = imported_modules("sampan.cli.main", "sampan.cli.container", "sampan.api.client")
    assert "sampan.api.client" in names
    never = FORBIDDEN | {"http.client", "sqlite3", "sampan.image.store", "hashlib"}
    slow = sorted(never.intersection(names))
    assert slow == [], f"the container commands import {slow}"
