"""The models, paper-shaped: ``attention``, ``transformer``, ``vit``, ``clip``, ``diffusion``, ``sd``,
``classifiers`` (chapter 04's stand-in families) and ``judges``. No I/O, no hub, no training loops:
a model module imports only ``course_utils.models`` and ``course_utils.data``."""
