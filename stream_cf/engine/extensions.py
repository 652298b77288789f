"""The engine's optional C extensions (``_item_kernel``, ``_rank_kernel``, ``_select_kernel``),
found at import.

They are built by ``pip install -e .`` (``[[tool.setuptools.ext-modules]]``, optional: a machine
without a C compiler installs without them); each kernel's wrapper keeps the numpy path as its
reference and fallback, and with ``CI=true`` the tests require the extensions.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def compiled(name: str, function: str) -> ModuleType | None:
    """``stream_cf.engine.<name>`` if it is built and has ``function`` (an extension built from
    an older source may lack it), else None."""
    try:
        module = importlib.import_module(f"stream_cf.engine.{name}")
    except ImportError:
        return None
    return module if hasattr(module, function) else None
