"""pytest configuration shared by the unit tests and nbval's notebook runs.

Notebook kernels must draw with the inline backend, so that every figure becomes the
``display_data`` output stored in the notebook. An ``MPLBACKEND`` in the caller's environment
(``Agg`` is a common setting on servers and in CI) would be inherited by the kernels and make
every ``plt.show()`` print nothing, so each figure cell would fail nbval's comparison.
"""
import os


def pytest_configure(config):
    os.environ.pop("MPLBACKEND", None)  # kernels start after this and inherit the environment
