"""Training: ``classifier`` (chapters 03 and 04, the judges), ``clip`` (05), ``diffusion`` (06), ``sd`` (07),
and ``remember``, which keeps a live training's result so that the same training is not run twice."""
