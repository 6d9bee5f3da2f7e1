"""Every module imports on its own, first: no import cycle hides behind an import order."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import pytest

PACKAGES = ("agent", "collector", "remediation", "exporters", "runbooks")


def project_modules() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if ".migrations" not in info.name and ".project" not in info.name:
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", project_modules())
def test_module_imports_first(name: str) -> None:
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in PACKAGES}
    for key in saved:
        del sys.modules[key]
    try:
        module = importlib.import_module(name)
        assert module.__name__ == name
    finally:
        for key in [k for k in sys.modules if k.split(".")[0] in PACKAGES]:
            del sys.modules[key]
        sys.modules.update(saved)
