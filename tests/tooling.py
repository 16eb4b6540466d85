"""Test helpers for external tools: a missing tool fails the test under CI=true and skips it elsewhere."""
from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str, hint: str = "run `make test` as root, or install it with apt-get") -> str:
    """Return the path of executable ``name``; when it is missing, fail under CI and skip elsewhere."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found on PATH ({hint})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
