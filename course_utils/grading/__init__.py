"""Exercises and their grading: ``exercises`` (writes exercises/ from solutions/), ``checker`` (re-runs a
student's notebook on a copy and compares it with the solution), ``checks`` (one module per chapter)."""
