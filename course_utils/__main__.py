"""The course's command line: ``python -m course_utils COMMAND``.

    doctor               the environment report (versions, device, hub, checkpoints)
    prepare [--offline] [--only NAME]
                         download the real checkpoints, or build the stand-ins offline (instructors)
    check NOTEBOOK       check an exercise notebook against its solution
    generate [--check]   write exercises/ from solutions/ (course authors)
    slides [--out DIR]   export every lecture as an HTML slide deck (reveal.js), into slides/
    recipe NAME          re-run a recipe (miniclip, judge, sd), writing course_utils/weights/NAME/ (course authors)
    rehearse [--full]    run every notebook on the real-weights path, against a local cache of random weights
"""
from __future__ import annotations

import sys

USAGE = __doc__.split("\n", 2)[2]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print("usage: python -m course_utils COMMAND [ARGS]\n\ncommands:\n" + USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "doctor":
        from course_utils.doctor import main as run
    elif command == "prepare":
        from course_utils.prepare import main as run
    elif command == "check":
        from course_utils.checker import check_main as run
    elif command == "generate":
        from course_utils.exercises import generate_main as run
    elif command == "slides":
        from course_utils.slides import main as run
    elif command == "recipe":
        from course_utils.recipes import main as run
    elif command == "rehearse":
        from course_utils.rehearse import main as run
    else:
        print(f"unknown command {command!r}; expected one of: doctor, prepare, check, generate, slides, recipe, rehearse", file=sys.stderr)
        return 2
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
