"""``python -m minialex.assignments``: list, hand out and grade the classroom assignments.

    python -m minialex.assignments list                          the assignments, their tasks and points
    python -m minialex.assignments make a2_layers handout/a2     the student version (stubs, no hidden tests)
    python -m minialex.assignments grade a2_layers submissions/alice [--json alice.json]

Exit codes: 0 done (for ``grade``: the submission was graded, whatever its score); 1 ``grade``
hit a grader error (the reference solution failed its own check or could not run: a problem of the
assignment, not of the submission); 2 bad usage or bad input (an unknown assignment, a missing
folder, a broken manifest): one line ``error: ...`` on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from minialex.assignments import authoring
from minialex.assignments.authoring import AuthoringError


class UsageError(Exception):
    """Reported as one line ``error: ...``, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m minialex.assignments",
                     description="Classroom assignments for minialex: the instructor writes one solution; "
                                 "students get a version with the solutions cut out; the autograder (no server, "
                                 "no Jupyter, no internet) says task by task what is right.",
                     epilog="Assignment sources are folders with an assignment.toml; by default those of the "
                            "repository's tutorials/assignments (or $MINIALEX_ASSIGNMENTS).")
    sub = parser.add_subparsers(dest="command", metavar="{list,make,grade}", parser_class=_Parser)

    def source_arg(p):
        p.add_argument("--source", metavar="DIR", action="append",
                       help="a folder of assignments, or one assignment folder (repeatable; default: the "
                            "repository's tutorials/assignments)")

    p = sub.add_parser("list", help="show the assignments, their tasks and points")
    source_arg(p)
    p = sub.add_parser("make", help="write the student version of an assignment")
    p.add_argument("name", metavar="NAME", help="the assignment (as `list` shows it, or a unique prefix: a1)")
    p.add_argument("dir", metavar="DIR", help="the folder to write (must be empty or new)")
    p.add_argument("--force", action="store_true", help="write into DIR even if it is not empty (overwrites files)")
    source_arg(p)
    p = sub.add_parser("grade", help="grade a submission and print a table of the tasks")
    p.add_argument("name", metavar="NAME", help="the assignment")
    p.add_argument("submission", metavar="SUBMISSION_DIR", help="the folder holding the student's files")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON for a gradebook ('-' for stdout, "
                                                  "then no table)")
    p.add_argument("--task", metavar="TASK", action="append", help="grade only this task (repeatable)")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="time limit per task, instead of the manifest's")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="tasks graded at once (default 1)")
    p.add_argument("--set", metavar="TASK.OPTION=VALUE", action="append", default=[],
                   help="override a task option of the manifest, e.g. train.target_accuracy=0.3")
    p.add_argument("--no-cache", action="store_true", help="recompute the reference's expected values")
    p.add_argument("--cache-dir", metavar="DIR", help="where expected values are cached (default: "
                                                      "$MINIALEX_GRADER_CACHE or ~/.cache/minialex/grader)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    source_arg(p)
    return parser


def _sources(args) -> list[Path]:
    if args.source:
        for s in args.source:
            if not Path(s).is_dir():
                raise UsageError(f"--source {s}: no such folder")
        return [Path(s) for s in args.source]
    return authoring.default_sources()


def _all_assignments(sources) -> list[Path]:
    found = []
    for s in sources:
        found.extend(authoring.find_assignments(s))
    return found


def _not_found(sources) -> UsageError:
    where = ", ".join(str(s) for s in sources) if sources else "(no tutorials/assignments folder found)"
    return UsageError(f"no assignments found in {where}; run from a minialex checkout, or pass --source DIR "
                      "(a folder of assignment folders, each with an assignment.toml)")


def _find(name, sources, submission=None) -> authoring.Assignment:
    folders = _all_assignments(sources)
    loaded = []
    for folder in folders:
        try:
            loaded.append(authoring.load_assignment(folder))
        except AuthoringError as err:
            if folder.name == name:
                raise
            print(f"warning: skipping {folder}: {err}", file=sys.stderr)
    exact = [a for a in loaded if a.name == name or a.path.name == name]
    if not exact:
        exact = [a for a in loaded if a.name.startswith(name)]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        raise UsageError(f"{name!r} matches several assignments ({', '.join(a.name for a in exact)}); give the full name")
    if submission is not None and (Path(submission) / authoring.MANIFEST).is_file():
        # a student checking their own work: the student version is its own (public) source
        own = authoring.load_assignment(Path(submission))
        if own.name == name or own.name.startswith(name):
            return own
    if not loaded:
        raise _not_found(sources)
    raise UsageError(f"no assignment {name!r}; the assignments are {', '.join(a.name for a in loaded)} "
                     "(python -m minialex.assignments list)")


def cmd_list(args) -> int:
    sources = _sources(args)
    folders = _all_assignments(sources)
    if not folders:
        raise _not_found(sources)
    for folder in folders:
        try:
            a = authoring.load_assignment(folder)
        except AuthoringError as err:
            print(f"{folder.name}: cannot be read: {err}")
            continue
        kind = "instructor source" if a.is_instructor_source else "student version"
        print(f"{a.name}  ({a.total_points:g} points, {kind}; {a.path})")
        print(f"  {a.title}")
        for t in a.tasks:
            what = t.title or ", ".join(t.functions)
            print(f"    {t.name:<24} {t.points:>4g} pt   {t.time_limit:>4g} s   {what}")
    return 0


def cmd_make(args) -> int:
    a = _find(args.name, _sources(args))
    dest = Path(args.dir)
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} is a file; give a folder")
    if dest.is_dir() and any(dest.iterdir()) and not args.force:
        raise UsageError(f"{dest} is not empty; choose a new folder, or pass --force to overwrite its files")
    if dest.resolve() == a.path.resolve():
        raise UsageError("DIR is the assignment's own source folder; choose another folder")
    if not a.is_instructor_source:
        print(f"warning: {a.path} has no solution markers (is it already a student version?)", file=sys.stderr)
    files = authoring.student_files(a)            # everything is checked before anything is written
    dest.mkdir(parents=True, exist_ok=True)
    written = authoring.write_student_version(a, dest)
    print(f"wrote the student version of {a.name} to {dest}: {', '.join(sorted(p.name for p in written))}")
    print(f"  {len(a.tasks)} tasks, {a.total_points:g} points; solutions replaced by stubs, hidden tests and the "
          f"[hidden] seed removed ({len(files)} files)")
    print(f"  students check their work with: python -m minialex.assignments grade {a.name} <their folder>")
    return 0


def cmd_grade(args) -> int:
    from minialex.assignments import grader

    submission = Path(args.submission)
    if not submission.is_dir():
        raise UsageError(f"{submission}: no such folder (SUBMISSION_DIR is the folder holding the student's files)")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    try:
        overrides = grader.parse_overrides(args.set)
    except ValueError as err:
        raise UsageError(str(err)) from err
    a = _find(args.name, _sources(args), submission)
    names = {t.name for t in a.tasks}
    for t in args.task or []:
        if t not in names:
            raise UsageError(f"--task {t}: {a.name} has no such task; its tasks are {', '.join(sorted(names))}")
    for t in overrides:
        if t not in names:
            raise UsageError(f"--set {t}...: {a.name} has no task {t!r}; its tasks are {', '.join(sorted(names))}")

    def progress(r):
        if not args.quiet:
            print(f"  {r.name}: {grader._STATUS.get(r.status, r.status)} ({r.time_s:.1f} s)", file=sys.stderr, flush=True)

    if not args.quiet:
        print(f"grading {a.name} in {submission} ...", file=sys.stderr, flush=True)
    try:
        report = grader.grade(a, submission, only=args.task, timeout=args.timeout, jobs=args.jobs,
                              cache_dir=args.cache_dir, use_cache=not args.no_cache, overrides=overrides,
                              progress=progress)
    except KeyboardInterrupt:
        grader.kill_running()
        print("\ninterrupted: grading stopped", file=sys.stderr)
        return 130
    data = report.to_dict()
    if args.json == "-":
        print(json.dumps(data, indent=2))
    else:
        print(grader.format_report(report), flush=True)
        if args.json:
            try:
                Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
            except OSError as err:
                raise UsageError(f"--json {args.json}: cannot write ({err.strerror or err})") from err
    if report.grader_errors:
        print("error: some tasks could not be graded (ERROR above): a problem of the assignment or the grader, "
              "not of the submission", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return {"list": cmd_list, "make": cmd_make, "grade": cmd_grade}[args.command](args)
    except (UsageError, AuthoringError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
