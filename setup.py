"""Build ``mailscale._hot._core`` with Cython; everything else lives in pyproject.toml.

``MAILSCALE_NO_EXTENSIONS=1`` (or a non-CPython interpreter) skips the
extension: the pure-Python twin is used at run time.
"""

import os
import sys

from setuptools import Extension, setup

ext_modules = []
if not os.environ.get("MAILSCALE_NO_EXTENSIONS") and sys.implementation.name == "cpython":
    from Cython.Build import cythonize

    ext_modules = cythonize(
        [
            Extension(
                "mailscale._hot._core",
                ["src/mailscale/_hot/_core.pyx"],
                # _core_dkim.pxi includes the SIMD scans from _core_dkim_scan.h.
                include_dirs=["src/mailscale/_hot"],
                depends=["src/mailscale/_hot/_core_dkim_scan.h"],
                extra_compile_args=["-O3"],
            )
        ],
        compiler_directives={"language_level": 3, "boundscheck": True, "wraparound": False},
    )

setup(ext_modules=ext_modules)
