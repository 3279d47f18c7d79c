"""Data that needs no download: ``digits`` (scikit-learn's), ``photos`` (scikit-image's) and the
procedural captioned ``shapes``. Imports nothing else of the course."""
