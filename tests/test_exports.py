"""The public API: ``__all__`` lists exactly the public names, sorted, importable."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import threadline
import threadline.agent
import threadline.client
import threadline.protocol
import threadline.storage
import threadline.testing


def isort_key(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then everything else (ruff RUF022's isort-style)."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def submodules(*packages: ModuleType) -> list[str]:
    return sorted(
        info.name
        for package in packages
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
    )


MODULES = ["threadline", "threadline.exceptions", "threadline.agent"] + submodules(
    threadline.agent,
    threadline.client,
    threadline.protocol,
    threadline.storage,
    threadline.testing,
)


def test_exports_list_every_public_name():
    """threadline.__all__ holds every public name of the package, and __version__."""
    public = {
        name
        for name, value in vars(threadline).items()
        if not name.startswith("_")
        and name != "annotations"
        and not isinstance(value, ModuleType)
    }
    assert set(threadline.__all__) == public | {"__version__"}


def test_exports_include_every_exception():
    """Every exception of threadline.exceptions can be imported from threadline."""
    assert set(threadline.exceptions.__all__) <= set(threadline.__all__)


@pytest.mark.parametrize("module", MODULES)
def test_exports_are_sorted(module):
    """A module's __all__ is sorted isort-style, with no duplicates."""
    names = importlib.import_module(module).__all__
    assert names == sorted(set(names), key=isort_key)


@pytest.mark.parametrize("module", MODULES)
def test_exports_are_importable(module):
    """Every name in a module's __all__ is defined, so a star import works."""
    namespace: dict[str, object] = {}
    exec(f"from {module} import *", namespace)
    assert set(importlib.import_module(module).__all__) <= set(namespace)
