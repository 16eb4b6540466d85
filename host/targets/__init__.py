"""Targets host/stream.py can drive: serial boards, local QEMU/native boards, the CPU reference, Coral.

The interface is in :mod:`host.targets.base`; each target module implements it.
"""
from host.targets.base import DeviceInfo, Event, Lost, Notice, Result, SynchronousTarget, Target, check_compatible

__all__ = ["DeviceInfo", "Event", "Lost", "Notice", "Result", "SynchronousTarget", "Target", "check_compatible"]
