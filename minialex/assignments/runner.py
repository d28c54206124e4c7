"""The grading subprocess: ``python -m minialex.assignments.runner SPEC.json``.

The grader (``grader.py``) starts one of these per task, with a time limit, so that an infinite
loop or a crash costs that task only. It

1. limits the size of files it writes (a print loop cannot fill the disk);
2. installs the guard against minialex's own implementations (``leak.py``);
3. imports the submission's module from its path (``reference`` mode: the instructor's solution,
   used only to record the expected values, in a process of its own);
4. loads the instructor's tests file by path and runs the checks of the task, one after another,
   each in its own ``try``: an exception in one check does not stop the others;
5. writes one JSON line per event to the results file (``begin`` before each check, so that the
   grader knows which check was running when the time ran out).

The results go to a file, not to stdout: the student's prints cannot be mistaken for results.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
import time
import traceback
import zlib
from pathlib import Path


class _Results:
    def __init__(self, path):
        self.file = open(path, "a", buffering=1)

    def write(self, **event):
        self.file.write(json.dumps(event) + "\n")
        self.file.flush()


def _limit_file_size(nbytes):
    try:
        import resource
    except ImportError:  # Windows
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        if hard == resource.RLIM_INFINITY or hard > nbytes:
            resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    except (ValueError, OSError):
        pass


def _where(err, module_path):
    """' (assignment.py, line 57, in im2col; raised in numpy)': the innermost frame of the submission
    in the traceback, and the library the exception finally came from, if any (never a line of the
    tests file: hidden checks stay hidden)."""
    frames = traceback.extract_tb(err.__traceback__)
    mine = [f for f in frames if module_path and os.path.abspath(f.filename) == module_path]
    parts = []
    if mine:
        f = mine[-1]
        parts.append(f"{Path(f.filename).name}, line {f.lineno}, in {f.name}")
        if f.line and not f.line.strip().startswith("raise "):
            parts[-1] += f": {f.line.strip()}"
    if frames and not (mine and frames[-1] is mine[-1]):
        origin = Path(frames[-1].filename).parts
        library = next((name for name in ("numpy", "minialex", "numba", "cupy") if name in origin), None)
        if library:
            parts.append(f"raised in {library}")
    return f" ({'; '.join(parts)})" if parts else ""


def _load_module(name, path: Path, guard=None):
    path = Path(path)
    if path.suffix == ".ipynb":
        from minialex.assignments.authoring import notebook_to_python

        source = notebook_to_python(path.read_text())
        import linecache

        linecache.cache[str(path)] = (len(source), None, source.splitlines(True), str(path))   # for tracebacks
        module = type(sys)(name)
        module.__file__ = str(path)
        sys.modules[name] = module
        code = compile(source, str(path), "exec")
        if guard is not None:
            with guard.student_import():
                exec(code, module.__dict__)
        else:
            exec(code, module.__dict__)
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    if guard is not None:
        with guard.student_import():
            spec.loader.exec_module(module)
    else:
        spec.loader.exec_module(module)
    return module


class _TaskInfo:
    """What a check sees as ``task``: the manifest entry, with options overridden."""

    def __init__(self, spec):
        self.name = spec["name"]
        self.rtol = spec["rtol"]
        self.atol = spec["atol"]
        self.hint = spec.get("hint", "")
        self.functions = spec.get("functions", [])
        self.options = spec.get("options", {})
        self.time_limit = spec.get("time_limit")
        self.backend = spec.get("backend", "numpy")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    results = _Results(spec["results"])
    started = time.perf_counter()
    if spec["mode"] == "submission":
        _limit_file_size(spec.get("fsize_limit", 16 * 2**20))
    sys.dont_write_bytecode = True

    import numpy as np

    from minialex.assignments import checks as checks_module
    from minialex.assignments import oracle
    from minialex.assignments.leak import Guard, LeakError

    module_path = os.path.abspath(spec["module_path"])
    submission_dir = Path(spec["submission_dir"])
    if spec["mode"] == "submission" and str(submission_dir) not in sys.path:
        sys.path.insert(0, str(submission_dir))      # the student's own helper modules, if any

    tasks = spec["tasks"]
    guard = None
    if spec["mode"] == "submission":
        assert len(tasks) == 1, "one task per student process"
        guard = Guard(tasks[0]["forbid"], tasks[0]["name"]).install()

    try:
        tests_module = _load_module("minialex_assignment_tests", Path(spec["tests_path"]))
    except BaseException as err:  # noqa: BLE001 - the instructor's tests file is broken
        results.write(event="fatal", message=f"the tests file {Path(spec['tests_path']).name} fails when imported: "
                                             f"{type(err).__name__}: {err}")
        return 3
    task_names = {t["name"] for t in tasks}
    needs_module = any("m" in inspect.signature(fn).parameters for fn in vars(tests_module).values()
                       if callable(fn) and getattr(fn, "__minialex_task__", None) in task_names)
    import_error = None
    module = None
    if needs_module:
        try:
            module = _load_module(spec["module_name"], Path(module_path), guard)
        except BaseException as err:  # noqa: BLE001 - SyntaxError, ImportError, SystemExit, anything at import
            if isinstance(err, KeyboardInterrupt):
                raise
            import_error = (f"your {Path(module_path).name} fails when imported: {type(err).__name__}: {err}"
                            f"{_where(err, module_path)}")
        if guard is not None and module is not None:
            guard.wrap_submission(module)
    results.write(event="ready", time=time.perf_counter() - started)

    hidden = set(spec.get("hidden_checks", []))
    for task_spec in tasks:
        info = _TaskInfo(task_spec)
        checks_module._context.task = info
        try:
            import minialex

            minialex.set_backend(info.backend)
        except Exception:  # noqa: BLE001 - the grader already chose a backend this machine has
            pass
        checks = [fn for fn in vars(tests_module).values()
                  if callable(fn) and getattr(fn, "__minialex_task__", None) == info.name]
        checks.sort(key=lambda fn: fn.__code__.co_firstlineno)
        if spec["mode"] == "reference":
            ref = oracle.Recorder(module)
        elif task_spec.get("recording"):
            ref = oracle.Replayer(task_spec["recording"])
        else:
            ref = oracle.NoReference()
        for fn in checks:
            name = fn.__name__
            results.write(event="begin", task=info.name, check=name)
            t0 = time.perf_counter()
            if import_error is not None and "m" in inspect.signature(fn).parameters:
                results.write(event="check", task=info.name, check=name, passed=False, skipped=False,
                              message=import_error, detail="", time=0.0)
                continue
            seed_root = (spec.get("hidden_seed") or 0) if name in hidden else 0
            available = {"m": module, "ref": ref, "task": info, "submission_dir": submission_dir,
                         "secret": spec.get("hidden_seed") or 0,
                         "rng": np.random.default_rng([seed_root, zlib.crc32(name.encode())])}
            try:
                params = inspect.signature(fn).parameters
                kwargs = {p: available[p] for p in params}
            except KeyError as err:
                results.write(event="check", task=info.name, check=name, passed=False, skipped=False, grader_error=True,
                              message=f"the check {name} asks for an unknown argument {err}; checks may take "
                                      f"{', '.join(available)}", detail="", time=0.0)
                continue
            ref.start(name)
            if guard is not None:
                guard.violations.clear()
            event = {"event": "check", "task": info.name, "check": name, "passed": True, "skipped": False,
                     "message": "", "detail": ""}
            try:
                outcome = fn(**kwargs)
                if isinstance(outcome, str):
                    event["message"] = outcome
            except checks_module.Skip as err:
                event.update(passed=False, skipped=True, message=str(err))
            except checks_module.CheckFailed as err:
                event.update(passed=False, message=err.message, detail=err.detail)
            except oracle.OracleError as err:
                event.update(passed=False, grader_error=True, message=f"grader problem: {err}")
            except LeakError as err:
                event.update(passed=False, message=str(err))
            except AssertionError as err:
                event.update(passed=False, message=str(err) or f"assertion failed in check {name}")
            except BaseException as err:  # noqa: BLE001 - the student's code raised (even SystemExit)
                if isinstance(err, KeyboardInterrupt):
                    raise
                text = str(err)
                if isinstance(err, AttributeError) and module is not None and "'module'" in text:
                    text += f" (is it defined in your {Path(module_path).name}?)"
                if isinstance(err, OSError) and getattr(err, "errno", None) == 27:    # EFBIG
                    text = "your code wrote too much output (the grader's limit is 16 MB)"
                event.update(passed=False, message=f"{type(err).__name__}: {text}{_where(err, module_path)}")
            if guard is not None and guard.violations and not event.get("grader_error"):
                event.update(passed=False, skipped=False, message=guard.violations[0], detail="")
            event["time"] = time.perf_counter() - t0
            results.write(**event)
        if spec["mode"] == "reference" and task_spec.get("recording"):
            ref.save(task_spec["recording"])
    results.write(event="done", time=time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
