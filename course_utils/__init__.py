"""course_utils: the helpers behind "Vision Transformers, from attention to Stable Diffusion".

One folder per concern; the arrows run one way (``tests/test_layout.py`` holds them):

    data/      digits, photos, captioned shapes: data that needs no download      imports nothing of the course
    models/    attention, transformer, ViT, CLIP, diffusion, Stable Diffusion,
               classifiers, judges: paper-shaped, no I/O, no hub, no training    data/, models/
    eval/      what the course measures: accuracy, zero-shot, retrieval, adherence   data/, models/
    training/  the training loops, and trainings remembered between runs          data/, models/, eval/
    interop/   weight maps: Hugging Face ViT, openai CLIP, torch.nn               data/, models/
    weights/   the resolver (real checkpoints or stand-ins), the course cache, stand-ins, recipes,
               prepare, doctor, the real-path rehearsal, and the committed weights   all of the above
    teaching/  plotting, explorers, slides                                        data/, models/, eval/
    grading/   the exercise generator, the checker, the checks                    data/, models/, interop/
    device.py  get_device, seed_everything, default_threads; paths.py: course_cache_dir

``import course_utils`` imports no torch: the three names below resolve on first use. The command
line is ``python -m course_utils COMMAND`` (``--help`` lists the commands).
"""
__all__ = ["get_device", "seed_everything", "default_threads"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in __all__:
        from course_utils import device

        return getattr(device, name)
    raise AttributeError(f"module 'course_utils' has no attribute {name!r}")
