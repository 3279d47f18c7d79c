"""For the lecture hall: ``plotting`` (helpers that draw and compute nothing), ``explore`` (ipywidgets
explorers with a static picture where widgets cannot run), ``slides`` (reveal.js decks)."""
