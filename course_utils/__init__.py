"""course_utils: the helpers behind "Vision Transformers, from attention to Stable Diffusion".

One folder per concern (data, models, eval, training, interop, weights, teaching, grading), importing only from the
folders listed before it in README's "Layout" table, so the arrows run one way (``tests/test_layout.py`` holds them);
``device.py`` and ``paths.py`` sit at the top. ``import course_utils`` imports no torch: the three names below resolve
on first use. The command line is ``python -m course_utils COMMAND`` (``--help`` lists the commands).
"""
__all__ = ["get_device", "seed_everything", "default_threads"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in __all__:
        from course_utils import device

        return getattr(device, name)
    raise AttributeError(f"module 'course_utils' has no attribute {name!r}")
