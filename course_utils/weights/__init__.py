"""Where weights come from: the ``resolver`` (real checkpoint or stand-in), the course ``cache`` and its
manifests, the ``standins``, the ``recipes`` (and the committed weights beside them: ``miniclip/``,
``sd/``, ``judge/``, chapter 04's ``classifiers/``), the recorded ``experiments`` (three seeds of each comparison a
lecture draws a conclusion from, in ``experiments/``), ``prepare`` and ``doctor`` for a classroom, and ``rehearse``,
which runs the notebooks on the real path against ``published/`` configurations with random weights."""
