"""The course's stand-ins, registered with the resolver (see course_utils.hub).

Each entry names the real checkpoint it replaces, a builder that trains a small model of the same
architecture with the course's own code on the course's own data and saves it in the library's
own format, and one line saying what it is. Builders import their heavy dependencies when called,
so importing this module costs nothing.
"""
from __future__ import annotations

from course_utils.hub import register_standin  # noqa: F401  (used by the registrations below)

# Chapters add their registrations here, e.g.
# register_standin("google/vit-base-patch16-224", build=_build_vit, about="...", version="1")
