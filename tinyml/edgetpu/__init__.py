"""Coral Edge TPU: the op-mapping pre-check (precheck), the compiler's report parser (compiler_log), running
edgetpu_compiler (compiler), and opening compiled models on libedgetpu (runtime). tools/edgetpu.py is the build
step; tinyml/targets/coral.py is the stream target on the runtime, tools/classify.py its one-shot user.
"""
