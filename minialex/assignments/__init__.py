"""Classroom assignments: an instructor writes one solution; students get a version with the
solutions cut out; an autograder that needs no server, no Jupyter and no internet tells each
student, task by task, what is right.

    python -m minialex.assignments list
    python -m minialex.assignments make a2_layers handout/a2          # the student version
    python -m minialex.assignments grade a2_layers submissions/alice  # a table; --json for a gradebook

This package is the tool only. The assignments -- reference solutions and hidden tests -- live in
the repository, under ``tutorials/assignments/<name>/``, and are never installed:

    assignment.toml   the manifest: tasks, points, time limits, tolerances, hints, forbidden modules,
                      and a [hidden] table (the seed of the hidden checks) that students never get
    assignment.py     the code students complete (a Jupytext percent-format notebook), the reference
                      solution inside ``# BEGIN SOLUTION`` / ``# END SOLUTION`` markers
    tests.py          the checks: ``@task("name")`` functions; the hidden ones inside
                      ``# BEGIN HIDDEN TESTS`` / ``# END HIDDEN TESTS`` (otter-grader's markers)
    (other files)     listed in the manifest (``files = ["maxpool.cu"]``), markers in ``//`` comments

The modules: ``authoring`` (markers, manifest, student version), ``checks`` (what a tests file
uses), ``grader`` (the orchestration and the table), ``runner`` (the grading subprocess),
``oracle`` (expected values from the reference, computed in a process of its own), ``leak``
(keeping minialex's own layers out of a submission), ``cuda_tools`` (NVRTC compile check and CPU
emulation of a student's CUDA kernel). ``tutorials/assignments/README.md`` is the instructor's guide.

Not a security sandbox: a submission runs with the grader's permissions. Grade untrusted code in a
container or a throwaway account.
"""

from minialex.assignments.authoring import Assignment, AuthoringError, Task, load_assignment, student_files
from minialex.assignments.grader import Report, TaskResult, format_report, grade

__all__ = ["Assignment", "AuthoringError", "Task", "load_assignment", "student_files", "grade", "Report",
           "TaskResult", "format_report"]
