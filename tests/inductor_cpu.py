"""Skip, rather than fail, where inductor's CPU code generation cannot work.

Measured on an AVX-512 AMD EPYC with the torch 2.13 CPU wheel: under `ATEN_CPU_CAPABILITY=default` the C++ that
inductor generates does not compile (`'at::vec' has not been declared`). On an AVX2 machine the same configuration
compiles and the tests pass. So a test that compiles runs everywhere, and only a C++ compile failure under the
`default` capability turns into a skip; any other error (or that error under another capability) still fails."""

import functools

import pytest
import torch


def _is_cpp_compile_error(e: BaseException) -> bool:
    "True if `e` or an exception it was raised from is inductor's C++ compile failure."
    while e is not None:
        if type(e).__name__ == "CppCompileError" or "at::vec" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def skip_if_inductor_cannot_compile(test):
    "Decorator: turn inductor's C++ compile failure under ATEN_CPU_CAPABILITY=default into a skip."

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        try:
            return test(*args, **kwargs)
        except Exception as e:
            if torch.backends.cpu.get_cpu_capability() == "DEFAULT" and _is_cpp_compile_error(e):
                pytest.skip("inductor's CPU C++ does not compile under ATEN_CPU_CAPABILITY=default here")
            raise

    return wrapper
