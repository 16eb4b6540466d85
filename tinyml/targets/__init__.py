"""Targets that run the model: serial boards, the CPU reference, Coral. The interface is tinyml/targets/base.py."""
