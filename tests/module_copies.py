"""Fresh copies of library modules, untouched by the agent's replacements."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def fresh_copy(module: ModuleType) -> ModuleType:
    """Load ``module`` again from its file, as a new module that nothing has changed."""
    assert module.__file__ is not None
    spec = importlib.util.spec_from_file_location(f"{module.__name__}_copy", Path(module.__file__))
    assert spec is not None and spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    return copy
