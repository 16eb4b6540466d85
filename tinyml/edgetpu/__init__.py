"""Coral Edge TPU: the op-mapping pre-check (precheck), the compiler's report parser (compiler_log), running
edgetpu_compiler (compiler) and opening a compiled model on a device (runtime). tools/edgetpu.py is the build step,
tinyml/targets/coral.py the stream target.
"""
