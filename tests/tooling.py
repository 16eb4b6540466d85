"""Test helpers for external tools: a missing tool fails the test under CI=true and skips it elsewhere."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

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


SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"


def require_shared_model(name: str) -> Path:
    """A public reference model from ../shared/models (read in place, never copied into the tree); when it is
    missing, fail under CI and skip elsewhere."""
    path = SHARED_MODELS / name
    if path.is_file():
        return path
    message = f"{path} not found (the public reference models live in ../shared/models, see its README)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
