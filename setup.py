"""Only the optional C extension lives here; everything else is in pyproject.toml.

``optional=True``: where no C compiler is available the build goes on without it, and
the package runs on its pure-Python twins (see src/cs457p2p/core/speedups.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "cs457p2p.core._speedups",
            sources=["src/cs457p2p/core/_speedups.c"],
            optional=True,
        )
    ]
)
