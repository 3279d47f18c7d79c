"""course_utils: the helpers behind "Vision Transformers, from attention to Stable Diffusion"."""
from course_utils.device import get_device, seed_everything

__all__ = ["get_device", "seed_everything"]
__version__ = "0.1.0"
