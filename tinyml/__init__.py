"""The library both CLIs stand on: datasets, the .tflite reader, the engine's code generator, firmware builds,
local boards, the wire protocol and its transport, and the targets that run a model (boards, CPU, Coral).

tools/ (the build steps) and host/ (stream.py) import from here and from models/; nothing here imports them.
docs/architecture.md draws the layers; the import-linter contracts in pyproject.toml enforce them.
"""
