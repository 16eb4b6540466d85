"""Coral Edge TPU: the op-mapping pre-check (precheck), the compiler's report parser (compiler_log), running
edgetpu_compiler (compiler). tools/edgetpu.py is the build step; tinyml/targets/coral.py opens compiled models.
"""
