"""The autograder: grade a submission folder task by task, in subprocesses, with time limits.

    report = grade(load_assignment("tutorials/assignments/a2_layers"), "submissions/alice")
    print(format_report(report))

For a submission it

1. reads the submission's module: a missing file or a syntax error fails every task at once, with
   the message (no process is started);
2. checks each task statically for minialex's own implementations (``leak.static_violations``):
   a task that imports them is rejected, with the line;
3. computes the expected values that hidden checks ask ``ref`` for, by running the instructor's
   reference solution in a process of its own (``oracle.py``); they are cached (keyed by the
   assignment's files, the options and the versions of Python, NumPy and minialex), so a class of
   submissions computes them once;
4. runs each task's checks in a fresh ``python -m minialex.assignments.runner`` process with the
   task's time limit (``time_limit`` in the manifest): an infinite loop, a crash or a ``sys.exit``
   costs that task only; the process group is killed when the time is up;
5. returns a ``Report``: per task the points, the status (pass, FAIL, timeout, rejected, skipped,
   error), the checks passed, and the first failing check with its explanation and the task's hint.

Scoring: a task earns its points when all its checks pass, else 0. A task whose checks cannot run
on this machine (``Skip``: no GPU and no compiler for a CUDA kernel) is *skipped*: it is left out of
both the score and the maximum, and the report says why. ``error`` means a problem of the grader or
the assignment (the reference solution fails its own check): the CLI then exits with code 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from minialex.assignments import authoring
from minialex.assignments.authoring import Assignment, AuthoringError, Task
from minialex.assignments.leak import static_violations

__all__ = ["grade", "Report", "TaskResult", "format_report", "default_cache_dir", "parse_overrides"]

REFERENCE_SLACK = 2.0      # the reference process gets this times the sum of its tasks' limits
RECORDING_FORMAT = 1       # part of the cache key of the reference's recordings


@dataclass
class CheckResult:
    name: str
    hidden: bool
    status: str                 # pass, fail, skipped, timeout, not run, error
    message: str = ""
    detail: str = ""
    time_s: float = 0.0


@dataclass
class TaskResult:
    name: str
    title: str
    max_points: float
    points: float = 0.0
    status: str = "fail"        # pass, fail, timeout, rejected, skipped, error
    checks_passed: int = 0
    checks_total: int = 0
    time_s: float = 0.0
    hint: str = ""
    first_failure: dict | None = None
    checks: list = field(default_factory=list)
    output: str = ""            # the tail of the process's output, when it crashed or timed out


@dataclass
class Report:
    assignment: str
    title: str
    submission: str
    tasks: list
    public_only: bool
    elapsed_s: float = 0.0

    @property
    def score(self) -> float:
        return sum(t.points for t in self.tasks)

    @property
    def max_score(self) -> float:
        return sum(t.max_points for t in self.tasks if t.status != "skipped")

    @property
    def grader_errors(self) -> bool:
        return any(t.status == "error" for t in self.tasks)

    def to_dict(self) -> dict:
        import numpy

        import minialex

        return {"assignment": self.assignment, "title": self.title, "submission": self.submission,
                "score": self.score, "max_score": self.max_score, "public_only": self.public_only,
                "tasks": [asdict(t) for t in self.tasks],
                "grader": {"minialex": minialex.__version__, "python": platform.python_version(),
                           "numpy": numpy.__version__, "elapsed_s": round(self.elapsed_s, 2)}}


# =============================================================================================
# Options and cache
# =============================================================================================


def parse_overrides(items) -> dict:
    """``["train.target_accuracy=0.3"]`` -> ``{"train": {"target_accuracy": 0.3}}`` (values are
    read as JSON when they parse, else kept as strings). ``$MINIALEX_GRADER_SET`` adds more,
    separated by ``;``."""
    items = list(items or [])
    env = os.environ.get("MINIALEX_GRADER_SET", "")
    items = [s for s in env.split(";") if s.strip()] + items
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        task, dot, option = key.strip().partition(".")
        if not sep or not dot or not task or not option:
            raise ValueError(f"--set {item!r}: expected TASK.OPTION=VALUE, e.g. train.target_accuracy=0.3")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.setdefault(task, {})[option] = parsed
    return out


def default_cache_dir() -> Path:
    if os.environ.get("MINIALEX_GRADER_CACHE"):
        return Path(os.environ["MINIALEX_GRADER_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "minialex" / "grader"


def _recording_key(assignment: Assignment, task: Task) -> str:
    import numpy

    import minialex

    h = hashlib.sha256()
    for rel in sorted(set(assignment.files) | {authoring.MANIFEST}):
        h.update(rel.encode())
        h.update((assignment.path / rel).read_bytes())
    h.update(json.dumps([task.name, task.options, task.rtol, task.atol, task.backend], sort_keys=True).encode())
    h.update(f"{RECORDING_FORMAT}/{minialex.__version__}/{numpy.__version__}/{platform.python_version()}".encode())
    return h.hexdigest()[:20]


# =============================================================================================
# Subprocesses
# =============================================================================================

_running: set = set()
_running_lock = threading.Lock()


def _child_env(task: Task) -> dict:
    env = dict(os.environ)
    env.pop("MINIALEX_GRADER_SET", None)
    env["MINIALEX_BACKEND"] = _usable_backend(task.backend)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONHASHSEED"] = "0"
    threads = task.options.get("threads")
    if threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[var] = str(threads)
    if not _installed():
        # running from a checkout without pip install: the child must find this minialex
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _installed() -> bool:
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        distribution("minialex")
        return True
    except (ImportError, PackageNotFoundError):
        return False


def _usable_backend(name: str) -> str:
    """The task's backend if this machine has it, else numpy (numba missing, or no GPU)."""
    import importlib.util

    if name == "numba" and importlib.util.find_spec("numba") is None:
        return "numpy"
    if name == "cupy":
        try:
            from minialex.backend import cuda

            return "cupy" if cuda.gpu_available() else "numpy"
        except Exception:  # noqa: BLE001
            return "numpy"
    return name


def _kill(proc):
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _run_process(spec: dict, workdir: Path, env: dict, timeout: float):
    """Run the runner on ``spec``; returns (events, return code, timed out, output tail, seconds)."""
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec))
    Path(spec["results"]).write_text("")
    output = tempfile.TemporaryFile(dir=workdir)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "minialex.assignments.runner", str(spec_path)],
                            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, cwd=workdir,
                            env=env, start_new_session=(os.name == "posix"))
    with _running_lock:
        _running.add(proc)
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill(proc)
        proc.wait()
    finally:
        _kill(proc)                       # whatever the student's code left running in the group
        with _running_lock:
            _running.discard(proc)
    elapsed = time.perf_counter() - started
    output.seek(0, os.SEEK_END)
    size = output.tell()
    output.seek(max(0, size - 3000))
    tail = output.read().decode("utf-8", "replace")
    output.close()
    events = []
    for line in Path(spec["results"]).read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return events, proc.returncode, timed_out, tail, elapsed


def kill_running():
    """Kill every grading process still running (Ctrl-C in the CLI)."""
    with _running_lock:
        for proc in list(_running):
            _kill(proc)


def _signal_name(code):
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# =============================================================================================
# Grading
# =============================================================================================


def _task_spec(task: Task, recording: str | None) -> dict:
    return {"name": task.name, "rtol": task.rtol, "atol": task.atol, "hint": task.hint, "functions": task.functions,
            "options": task.options, "forbid": task.forbid, "time_limit": task.time_limit,
            "backend": _usable_backend(task.backend), "recording": recording}


def _validate_tests(assignment: Assignment, checks):
    names = {t.name for t in assignment.tasks}
    where = assignment.path / assignment.tests
    for c in checks:
        if c.task not in names:
            raise AuthoringError(f"{where}: check {c.name} belongs to task {c.task!r}, which the manifest does not list")
    if any(c.hidden for c in checks) and assignment.hidden_seed is None:
        raise AuthoringError(f"{assignment.path / authoring.MANIFEST}: the tests have hidden checks but the manifest "
                             "has no [hidden] seed = ... (the seed of the hidden checks' random inputs)")
    module_stem = Path(assignment.module).stem
    import ast

    for node in ast.walk(ast.parse((assignment.path / assignment.tests).read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names_ = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if module_stem in {n.split(".")[0] for n in names_}:
                raise AuthoringError(f"{where} line {node.lineno}: the tests import {module_stem}; they must reach the "
                                     "submission through the argument m (and the reference through ref), never by import")


def _fail_all(tasks, checks_by_task, message, status="fail", detail="") -> list:
    out = []
    for task in tasks:
        infos = checks_by_task.get(task.name, [])
        out.append(TaskResult(task.name, task.title, task.points, status=status, checks_total=len(infos), hint=task.hint,
                              first_failure={"check": None, "hidden": False, "message": message, "detail": detail},
                              checks=[asdict(CheckResult(c.name, c.hidden, "not run")) for c in infos]))
    return out


def _syntax_problem(path: Path) -> str | None:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        return f"cannot read {path.name}: {err}"
    if path.suffix == ".ipynb":
        try:
            text = authoring.notebook_to_python(text)
        except (ValueError, KeyError) as err:
            return f"{path.name} is not a readable notebook: {err}"
    try:
        compile(text, str(path), "exec", dont_inherit=True)
    except SyntaxError as err:
        line = (err.text or "").rstrip("\n")
        pointer = f"\n    {line}" if line.strip() else ""
        return f"{path.name} has a syntax error at line {err.lineno}: {err.msg}{pointer}"
    except ValueError as err:       # null bytes
        return f"{path.name} cannot be compiled: {err}"
    return None


def _source_text(path: Path) -> str:
    text = path.read_text()
    return authoring.notebook_to_python(text) if path.suffix == ".ipynb" else text


def _result_from_events(task: Task, infos, events, returncode, timed_out, tail, elapsed, limit) -> TaskResult:
    result = TaskResult(task.name, task.title, task.points, hint=task.hint, checks_total=len(infos), time_s=round(elapsed, 2))
    by_name = {}
    running = None
    for e in events:
        if e.get("event") == "begin":
            running = e["check"]
        elif e.get("event") == "check":
            running = None
            status = ("pass" if e["passed"] else "skipped" if e.get("skipped") else
                      "error" if e.get("grader_error") else "fail")
            by_name[e["check"]] = CheckResult(e["check"], False, status, e.get("message", ""), e.get("detail", ""),
                                              round(e.get("time", 0.0), 3))
    done = any(e.get("event") == "done" for e in events)
    fatal = next((e["message"] for e in events if e.get("event") == "fatal"), None)
    if fatal:
        by_name = {info.name: CheckResult(info.name, info.hidden, "error", f"grader error: {fatal}") for info in infos}
    checks = []
    for info in infos:
        c = by_name.get(info.name)
        if c is None:
            if running == info.name and timed_out:
                c = CheckResult(info.name, info.hidden, "timeout",
                                f"time limit of {limit:g} s reached while this check was running (an infinite loop, or "
                                "far too slow?); the process was stopped")
            elif running == info.name:
                c = CheckResult(info.name, info.hidden, "fail",
                                f"the grading process ended during this check ({_signal_name(returncode)}): your code "
                                "crashed Python or exited (os._exit, a segmentation fault, memory?)")
            elif timed_out and not events:
                c = CheckResult(info.name, info.hidden, "timeout",
                                f"time limit of {limit:g} s reached before the checks could start (importing your "
                                "module takes too long: code at module level that loops?)")
            else:
                c = CheckResult(info.name, info.hidden, "not run")
        c.hidden = info.hidden
        checks.append(c)
    result.checks = [asdict(c) for c in checks]
    result.checks_passed = sum(c.status == "pass" for c in checks)
    if any(c.status == "error" for c in checks):
        result.status = "error"
    elif timed_out:
        result.status = "timeout"
    elif checks and all(c.status == "pass" for c in checks):
        result.status = "pass"
    elif checks and all(c.status in ("pass", "skipped") for c in checks) and any(c.status == "skipped" for c in checks):
        result.status = "skipped"
    else:
        result.status = "fail"
    if not done and not timed_out and result.status == "pass":
        result.status = "fail"      # every check passed, but the process did not finish cleanly
    result.points = task.points if result.status == "pass" else 0.0
    first = next((c for c in checks if c.status in ("fail", "timeout", "error")), None)
    if first is None and result.status == "skipped":
        first = next(c for c in checks if c.status == "skipped")
    if first is None and result.status in ("fail", "timeout"):
        why = f"the time limit of {limit:g} s was reached" if timed_out else _signal_name(returncode)
        first = CheckResult(None, False, result.status, f"the grading process did not finish ({why})")
    if first is not None:
        result.first_failure = {"check": first.name, "hidden": first.hidden, "message": first.message,
                                "detail": first.detail}
    if result.status in ("fail", "timeout", "error") and (not done or returncode not in (0, None)):
        result.output = tail[-1500:]
    return result


def grade(assignment: Assignment, submission_dir, *, only=None, timeout: float | None = None, jobs: int = 1,
          cache_dir=None, use_cache: bool = True, overrides: dict | None = None, progress=None) -> Report:
    """Grade ``submission_dir`` against ``assignment`` (see the module docstring).

    ``only``: task names to grade (default all); ``timeout``: seconds per task, overriding the
    manifest; ``jobs``: tasks graded at once; ``overrides``: ``{task: {option: value}}`` (e.g. a
    lower target accuracy for a quick test); ``progress``: called with each TaskResult when done.
    """
    started = time.perf_counter()
    submission_dir = Path(submission_dir).resolve()
    tasks = []
    for task in assignment.tasks:
        if only and task.name not in only:
            continue
        options = dict(task.options)
        options.update((overrides or {}).get(task.name, {}))
        tasks.append(Task(**{**asdict(task), "options": options}))
    tests_text = (assignment.path / assignment.tests).read_text()
    infos = authoring.collect_checks(tests_text, str(assignment.path / assignment.tests))
    _validate_tests(assignment, infos)
    checks_by_task = {t.name: [c for c in infos if c.task == t.name] for t in tasks}
    for t in tasks:
        if not checks_by_task[t.name]:
            raise AuthoringError(f"{assignment.path / assignment.tests}: task {t.name!r} has no check (@task({t.name!r}))")
    instructor = assignment.is_instructor_source
    report = Report(assignment.name, assignment.title, str(submission_dir), [], public_only=not instructor)
    module_path = submission_dir / assignment.module

    def finish(results):
        order = {t.name: i for i, t in enumerate(tasks)}
        report.tasks = sorted(results, key=lambda r: order[r.name])
        report.elapsed_s = time.perf_counter() - started
        return report

    results, pending = [], []
    needs_module = {t.name: any(c.uses_module for c in checks_by_task[t.name]) for t in tasks}
    module_tasks = [t for t in tasks if needs_module[t.name]]
    problem = source = None
    if not module_path.is_file():
        problem, detail = f"{assignment.module} is not in {submission_dir}: nothing to grade", ""
    else:
        problem = _syntax_problem(module_path)
        detail = ("Python could not read the file, so none of its functions could run; fix the line shown (and "
                  "check the lines just above it)")
    if problem:
        for r in _fail_all(module_tasks, checks_by_task, problem, detail=detail):
            results.append(r)
            if progress:
                progress(r)
    else:
        source = _source_text(module_path)
    for task in tasks:
        if not needs_module[task.name]:
            pending.append(task)
            continue
        if problem:
            continue
        violations = static_violations(source, task.forbid, module_path.name)
        if violations:
            r = _fail_all([task], checks_by_task, f"rejected: {module_path.name} uses minialex's own implementation: "
                          + "; ".join(violations), status="rejected",
                          detail=f"task {task.name} asks you to write {', '.join(task.functions) or 'it'} yourself; "
                                 f"minialex's modules {', '.join(task.forbid)} may not be used in it")[0]
            results.append(r)
            if progress:
                progress(r)
        else:
            pending.append(task)

    with tempfile.TemporaryDirectory(prefix="minialex-grade-") as tmp:
        tmp = Path(tmp)
        recordings, reference_errors = _reference_phase(assignment, pending, checks_by_task, instructor, tmp,
                                                        cache_dir, use_cache, timeout)
        to_run = []
        for task in pending:
            if task.name in reference_errors:
                r = _fail_all([task], checks_by_task, reference_errors[task.name], status="error")[0]
                results.append(r)
                if progress:
                    progress(r)
            else:
                to_run.append(task)
        hidden_names = [c.name for c in infos if c.hidden]

        def run_task(task):
            workdir = tmp / f"task-{task.name}"
            workdir.mkdir()
            spec = {"mode": "submission", "module_path": str(module_path), "module_name": Path(assignment.module).stem,
                    "submission_dir": str(submission_dir), "tests_path": str(assignment.path / assignment.tests),
                    "tasks": [_task_spec(task, recordings.get(task.name))], "hidden_checks": hidden_names,
                    "hidden_seed": assignment.hidden_seed, "results": str(workdir / "results.jsonl")}
            limit = float(timeout if timeout is not None else task.time_limit)
            events, code, timed_out, tail, elapsed = _run_process(spec, workdir, _child_env(task), limit)
            r = _result_from_events(task, checks_by_task[task.name], events, code, timed_out, tail, elapsed, limit)
            if progress:
                progress(r)
            return r

        if jobs <= 1 or len(to_run) <= 1:
            results.extend(run_task(t) for t in to_run)
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                results.extend(pool.map(run_task, to_run))
    return finish(results)


def _reference_phase(assignment, tasks, checks_by_task, instructor, tmp, cache_dir, use_cache, timeout):
    """{task: recording path} for the tasks whose checks use ``ref``, and {task: error message}."""
    needing = [t for t in tasks if any(c.uses_reference for c in checks_by_task[t.name])]
    if not needing or not instructor:
        return {}, {}
    cache = None
    if use_cache:
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError:
            cache = None
    where = cache if cache is not None else tmp
    recordings, missing = {}, []
    for task in needing:
        path = where / f"{assignment.name}-{task.name}-{_recording_key(assignment, task)}.npz"
        recordings[task.name] = str(path)
        if not (cache is not None and path.is_file()):
            missing.append(task)
    errors = {}
    if missing:
        workdir = tmp / "reference"
        workdir.mkdir()
        partial = {t.name: str(workdir / f"{t.name}.npz") for t in missing}
        spec = {"mode": "reference", "module_path": str(assignment.path / assignment.module), "module_name": Path(assignment.module).stem,
                "submission_dir": str(assignment.path), "tests_path": str(assignment.path / assignment.tests),
                "tasks": [_task_spec(t, partial[t.name]) for t in missing],
                "hidden_checks": [c.name for cs in checks_by_task.values() for c in cs if c.hidden],
                "hidden_seed": assignment.hidden_seed, "results": str(workdir / "results.jsonl")}
        limit = REFERENCE_SLACK * sum(float(timeout if timeout is not None else t.time_limit) for t in missing)
        env = _child_env(missing[0])
        events, code, timed_out, tail, _ = _run_process(spec, workdir, env, limit)
        failures = {}
        fatal = next((e["message"] for e in events if e.get("event") == "fatal"), None)
        for e in events:
            if e.get("event") == "check" and not e.get("passed") and not e.get("skipped"):
                failures.setdefault(e["task"], f"the reference solution fails its own check {e['check']}: {e.get('message')}")
        for task in missing:
            if fatal:
                errors[task.name] = f"grader error: {fatal}"
            elif task.name in failures:
                errors[task.name] = f"grader error: {failures[task.name]}"
            elif not Path(partial[task.name]).is_file():
                why = "timed out" if timed_out else _signal_name(code)
                errors[task.name] = (f"grader error: the reference solution could not compute the expected values "
                                     f"({why}); {tail.strip().splitlines()[-1] if tail.strip() else ''}")
            else:       # copy next to its final name, then rename: another grader never sees half a file
                staging = f"{recordings[task.name]}.{os.getpid()}-{threading.get_ident()}.tmp"
                shutil.copyfile(partial[task.name], staging)
                os.replace(staging, recordings[task.name])
    return {k: v for k, v in recordings.items() if k not in errors}, errors


# =============================================================================================
# The table
# =============================================================================================

_STATUS = {"pass": "pass", "fail": "FAIL", "timeout": "TIMEOUT", "rejected": "REJECTED", "skipped": "skipped",
           "error": "ERROR"}


def _wrap(text, indent, width=100):
    import textwrap

    lines = []
    for paragraph in str(text).splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, width=width, initial_indent=indent, subsequent_indent=indent + "  ",
                                   break_long_words=False, break_on_hyphens=False) or [indent])
    return lines


def format_report(report: Report) -> str:
    lines = [f"{report.title}", f"submission: {report.submission}",
             ("public checks only (the instructor's grader also runs hidden checks)" if report.public_only
              else "public and hidden checks"), ""]
    w = max([len("task")] + [len(t.name) for t in report.tasks])
    lines.append(f"  {'task'.ljust(w)}  {'points':>9}  {'result':<9}  {'checks':>6}  {'time':>7}")
    for t in report.tasks:
        points = f"{t.points:g} / {t.max_points:g}" if t.status != "skipped" else f"- / {t.max_points:g}"
        checks = f"{t.checks_passed}/{t.checks_total}"
        lines.append(f"  {t.name.ljust(w)}  {points:>9}  {_STATUS.get(t.status, t.status):<9}  "
                     f"{checks:>6}  {t.time_s:>5.1f} s")
        f = t.first_failure
        if t.status != "pass" and f:
            label = ("" if f.get("check") is None else
                     f"check {f['check']}{' (hidden)' if f.get('hidden') else ''}: ")
            lines.extend(_wrap(label + (f.get("message") or ""), "      "))
            if f.get("detail"):
                lines.extend(_wrap(f["detail"], "      "))
            if t.status == "skipped":
                lines.append("      not counted: this task's points are left out of the total on this machine")
            elif t.hint:
                lines.extend(_wrap(f"hint: {t.hint}", "      "))
            if t.output.strip():
                lines.append("      last output of the process:")
                lines.extend("        " + line for line in t.output.strip().splitlines()[-8:])
    lines.append("")
    total = f"{report.score:g} / {report.max_score:g}"
    lines.append(f"  {'total'.ljust(w)}  {total:>9}")
    skipped = [t.name for t in report.tasks if t.status == "skipped"]
    if skipped:
        lines.append(f"  ({', '.join(skipped)} skipped on this machine: not counted)")
    return "\n".join(lines)
