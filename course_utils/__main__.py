"""The course's command line: one program, ``python -m course_utils COMMAND [OPTIONS]``, on argparse.

Every command's options are declared here, so that ``--help`` answers at once (nothing heavy is
imported); the command itself runs in its module's ``run(args)``, which returns the exit status.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# name: (the module whose run(args) does it, one line of help)
COMMANDS = {
    "doctor": ("course_utils.weights.doctor", "the environment report: versions, device, hub, checkpoints"),
    "prepare": ("course_utils.weights.prepare",
                "download the real checkpoints, or build the stand-ins offline, before a class (instructors)"),
    "check": ("course_utils.grading.checker", "check an exercise notebook against its solution (on a copy)"),
    "generate": ("course_utils.grading.exercises", "write exercises/ from solutions/ (course authors)"),
    "slides": ("course_utils.teaching.slides", "export every lecture as an HTML slide deck (reveal.js), into slides/"),
    "recipe": ("course_utils.weights.experiments", "re-run a recipe, writing course_utils/weights/NAME/ (course authors)"),
    "rehearse": ("course_utils.weights.rehearse",
                 "run the notebooks on the real-weights path against a local cache of random weights"),
}
ROOT = Path(__file__).resolve().parents[1]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m course_utils",
                                  description="The command line of 'Vision Transformers, from attention to Stable Diffusion'.")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add = {name: commands.add_parser(name, help=about, description=about) for name, (_, about) in COMMANDS.items()}

    add["prepare"].add_argument("--offline", action="store_true", help="build the stand-ins even when the hub answers")
    add["prepare"].add_argument("--only", action="append", metavar="NAME",
                                help="only this checkpoint (repeatable), e.g. google/vit-base-patch16-224")

    add["check"].add_argument("notebook", help="your exercise notebook, e.g. exercises/01_attention.ipynb")
    add["check"].add_argument("--timeout", type=float, default=600, metavar="SECONDS",
                              help="the longest one cell may run (default: 600; the training exercises run minutes)")
    add["check"].add_argument("--solutions", default=None, metavar="DIR",
                              help="the solution notebooks (default: $COURSE_SOLUTIONS_DIR or the course's solutions/)")

    add["generate"].add_argument("--solutions", default="solutions", metavar="DIR",
                                 help="the solution notebooks (default: ./solutions)")
    add["generate"].add_argument("--exercises", default="exercises", metavar="DIR",
                                 help="where the exercise notebooks go (default: ./exercises)")
    add["generate"].add_argument("--check", action="store_true",
                                 help="write nothing; list the exercise files that differ, exit 1 if any")

    add["slides"].add_argument("--out", default=str(ROOT / "slides"), metavar="DIR",
                               help="folder for the decks (default: slides/)")
    add["slides"].add_argument("--notebooks", default=str(ROOT / "notebooks"), metavar="DIR",
                               help="folder of the lectures")
    add["slides"].add_argument("--reveal-prefix", default=None, metavar="URL",
                               help="where the decks load reveal.js from (default: nbconvert's, "
                                    "https://unpkg.com/reveal.js@4.0.2), e.g. a copy on your own server")

    add["recipe"].add_argument("name", choices=["miniclip", "judge", "sd", "classifiers", "norm-warmup", "cnn-vs-vit", "finetuning", "clip-stems", "samplers", "guidance"],
                               help="miniclip: chapter 05's mini-CLIP (about 16 min); judge: the judge of generated "
                                    "shapes (a few minutes); sd: chapter 07's small Stable Diffusion (about 80 min); "
                                    "classifiers: chapter 04's Swin, BEiT, DeiT and ConvNeXt stand-ins (about 2 min); "
                                    "norm-warmup, cnn-vs-vit, finetuning, clip-stems, samplers and guidance: chapter 02's, 03's, 04's, 05's, 06's and 07's "
                                    "comparisons over three seeds, "
                                    "recorded in course_utils/weights/experiments/ (about 10 min each)")
    add["recipe"].add_argument("--out", type=Path, metavar="DIR",
                               help="write there instead of course_utils/weights/NAME/")
    add["recipe"].add_argument("--measure", action="store_true",
                               help="sd only: measure the weights already there, train nothing")

    rehearse = add["rehearse"]
    rehearse.add_argument("--full", action="store_true", help="the published sizes (about 8 GB) instead of reduced widths")
    rehearse.add_argument("--hf-cache", type=Path, metavar="DIR", help="run against this Hugging Face cache; build nothing")
    rehearse.add_argument("--only", action="append", metavar="TEXT",
                          help="only notebooks whose path contains TEXT (repeatable)")
    rehearse.add_argument("--real-only", action="store_true",
                          help="only what the real path reaches: the notebooks that resolve a real checkpoint, and in them the "
                               "cells that resolve one, use what those made or make what those use (the rest runs the "
                               "same either way)")
    rehearse.add_argument("--course-cache", type=Path, metavar="DIR",
                          help="the course cache the notebooks use (default: a fresh one, so stand-ins are rebuilt; "
                               "its trained/ links to your course cache's, so live trainings run before are reused)")
    rehearse.add_argument("--keep", type=Path, metavar="DIR", help="build into DIR and keep it (default: a temporary folder)")
    rehearse.add_argument("--timeout", type=int, default=900, help="seconds one cell may take (default 900)")
    rehearse.add_argument("--jobs", type=int, default=1, metavar="N",
                          help="notebooks run at once, each in its own kernel (default 1)")
    rehearse.add_argument("--save", type=Path, metavar="DIR", help="write the executed notebooks into DIR, to read them")
    return top


def main(argv: list[str] | None = None) -> int:
    top = parser()
    try:
        args = top.parse_args(sys.argv[1:] if argv is None else argv)
        if args.command == "check" and not args.timeout > 0:
            top.error(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    except SystemExit as e:  # --help, or an argument error argparse has already explained
        return int(e.code or 0)
    return importlib.import_module(COMMANDS[args.command][0]).run(args)


if __name__ == "__main__":
    sys.exit(main())
