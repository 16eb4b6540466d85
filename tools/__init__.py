"""The build flow, one module per step: ``python -m tools <step> ...`` (see tools/__main__.py and docs/tools.md)."""
