"""Benchmark scripts (``python bench/NAME.py``) that print the figures docs/benchmarks.md records.

A package so the tests reuse a bench's harness (``from bench import fuzz_protocol``) instead of copying it.
"""
