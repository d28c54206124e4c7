"""Authoring: the markers, the manifest, and the student version of an assignment.

An assignment is a folder of the instructor's sources (``tutorials/assignments/<name>/``)::

    assignment.toml    the manifest: tasks, points, time limits, tolerances, hints, forbidden modules
    assignment.py      the code students complete, with the reference solution inside markers
    tests.py           the checks, public ones and hidden ones (inside markers)
    (other files)      e.g. a CUDA kernel ``maxpool.cu``, with solution markers in ``//`` comments

The markers are those of otter-grader (and nbgrader's ``### BEGIN SOLUTION`` is accepted too: any
number of ``#``, or ``//`` in C/CUDA files)::

    def relu(x):
        # BEGIN SOLUTION   np.maximum, elementwise      <- optional: the TODO hint
        ...the reference solution...
        # END SOLUTION

In the student version the region becomes a stub at the marker's indentation::

        # TODO: np.maximum, elementwise
        raise NotImplementedError("relu: not written yet")

To give students a different stub, put a prompt inside the region (inert in the solution, since it
is a string literal; ``/* BEGIN PROMPT`` ... ``END PROMPT */`` in C/CUDA)::

        # BEGIN SOLUTION
        \"\"\" # BEGIN PROMPT
        cols = np.zeros(...)  # fill me
        \"\"\" # END PROMPT
        ...
        # END SOLUTION

``# BEGIN SOLUTION NO PROMPT`` removes the region with no stub at all, and a line ending in
``# SOLUTION`` (``x = 2 * y  # SOLUTION``) keeps its left-hand side: ``x = ...  # TODO``.

Hidden tests are removed from the student version::

    # BEGIN HIDDEN TESTS
    @task("relu")
    def relu_hidden_shapes(m, ref, rng): ...
    # END HIDDEN TESTS

The manifest's ``[hidden]`` table (the seed of the hidden checks) is removed too; everything else
in it (tasks, points, time limits, tolerances, hints) is public.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "assignment.toml"


class AuthoringError(ValueError):
    """A problem in the instructor's sources (markers, manifest): one line, with file and line."""


# =============================================================================================
# Markers
# =============================================================================================

_C = r"(?:#+|//+)"
BEGIN_SOLUTION = re.compile(rf"^(?P<indent>[ \t]*){_C}[ \t]*BEGIN SOLUTION\b(?P<rest>.*)$")
END_SOLUTION = re.compile(rf"^[ \t]*{_C}[ \t]*END SOLUTION\b.*$")
BEGIN_PROMPT = re.compile(r"^[ \t]*(?:[rRuU]?(?:\"\"\"|''')|/\*)[ \t]*(?:#+|//+)?[ \t]*BEGIN PROMPT\b.*$")
END_PROMPT = re.compile(r"^[ \t]*(?:(?:\"\"\"|''')[ \t]*(?:#+|//+)?[ \t]*END PROMPT\b.*|(?:#+|//+)?[ \t]*END PROMPT[ \t]*\*/.*)$")
BEGIN_HIDDEN = re.compile(rf"^[ \t]*{_C}[ \t]*BEGIN HIDDEN TESTS?\b.*$")
END_HIDDEN = re.compile(rf"^[ \t]*{_C}[ \t]*END HIDDEN TESTS?\b.*$")
ONE_LINE_SOLUTION = re.compile(r"^(?P<lhs>[ \t]*[^=#\n]+?[ \t]*=)(?!=)[ \t]*(?P<rhs>.+?)[ \t]*#[ \t]*SOLUTION[ \t]*$")


def comment_prefix(path) -> str:
    """``#`` for Python (and TOML), ``//`` for C, C++ and CUDA sources."""
    return "//" if Path(path).suffix in (".cu", ".cuh", ".c", ".cc", ".cpp", ".h", ".hpp") else "#"


def has_solution_markers(text: str) -> bool:
    return any(BEGIN_SOLUTION.match(line) for line in text.splitlines())


def hidden_line_ranges(text: str, where: str = "tests") -> list[tuple[int, int]]:
    """[(first, last)] 1-based line numbers of each hidden-tests region, markers included."""
    ranges, start = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if BEGIN_HIDDEN.match(line):
            if start is not None:
                raise AuthoringError(f"{where} line {number}: BEGIN HIDDEN TESTS inside another hidden region "
                                     f"(opened at line {start}); close it with END HIDDEN TESTS first")
            start = number
        elif END_HIDDEN.match(line):
            if start is None:
                raise AuthoringError(f"{where} line {number}: END HIDDEN TESTS without BEGIN HIDDEN TESTS")
            ranges.append((start, number))
            start = None
    if start is not None:
        raise AuthoringError(f"{where} line {start}: BEGIN HIDDEN TESTS is never closed (add # END HIDDEN TESTS)")
    return ranges


def strip_hidden_tests(text: str, where: str = "tests") -> str:
    """The text without its hidden-tests regions (markers included)."""
    lines = text.splitlines(keepends=True)
    drop = set()
    for first, last in hidden_line_ranges(text, where):
        drop.update(range(first, last + 1))
    return "".join(line for number, line in enumerate(lines, 1) if number not in drop)


def _enclosing_name(lines: list[str], index: int, indent: str) -> str | None:
    """``Class.method`` or ``function``: the definitions that enclose line ``index`` (0-based)."""
    width = len(indent.expandtabs())
    names = []
    for j in range(index - 1, -1, -1):
        m = re.match(r"^([ \t]*)(?:async\s+)?(?:def|class)\s+(\w+)", lines[j])
        if m and len(m.group(1).expandtabs()) < width:
            names.append(m.group(2))
            width = len(m.group(1).expandtabs())
            if width == 0:
                break
    return ".".join(reversed(names)) or None


def strip_solutions(text: str, comment: str = "#", where: str = "source") -> str:
    """The student version of ``text``: each solution region replaced by its prompt or a stub."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        begin = BEGIN_SOLUTION.match(line.rstrip("\r\n"))
        if begin:
            indent, rest = begin.group("indent"), begin.group("rest").strip()
            no_prompt = rest.upper().startswith("NO PROMPT")
            hint = rest[len("NO PROMPT"):].strip() if no_prompt else rest
            hint = hint.lstrip(":-").strip()
            if hint.lower().startswith("hint:"):
                hint = hint[5:].strip()
            prompt: list[str] | None = None
            j = i + 1
            while True:
                if j >= len(lines):
                    raise AuthoringError(f"{where} line {i + 1}: BEGIN SOLUTION is never closed (add "
                                         f"{comment} END SOLUTION)")
                inner = lines[j].rstrip("\r\n")
                if BEGIN_SOLUTION.match(inner):
                    raise AuthoringError(f"{where} line {j + 1}: BEGIN SOLUTION inside the solution region "
                                         f"opened at line {i + 1}")
                if END_SOLUTION.match(inner):
                    break
                if BEGIN_PROMPT.match(inner):
                    k = j + 1
                    prompt = []
                    while k < len(lines) and not END_PROMPT.match(lines[k].rstrip("\r\n")):
                        prompt.append(lines[k])
                        k += 1
                    if k >= len(lines):
                        raise AuthoringError(f"{where} line {j + 1}: BEGIN PROMPT is never closed (END PROMPT)")
                    j = k
                j += 1
            if prompt is not None:
                out.extend(prompt)
            elif not no_prompt:
                out.extend(_stub(lines, i, indent, hint, comment))
            i = j + 1
            continue
        if END_SOLUTION.match(line.rstrip("\r\n")):
            raise AuthoringError(f"{where} line {i + 1}: END SOLUTION without BEGIN SOLUTION")
        if comment == "#":
            one = ONE_LINE_SOLUTION.match(line.rstrip("\r\n"))
            if one and not line.lstrip().startswith("#"):
                out.append(f"{one.group('lhs')} ...  # TODO\n")
                i += 1
                continue
        out.append(line)
        i += 1
    return "".join(out)


def _stub(lines, index, indent, hint, comment) -> list[str]:
    todo = f"{indent}{comment} TODO: {hint or 'write this part'}\n"
    if comment != "#":
        return [todo]
    if not indent:          # module level: a raise would stop the import; leave a comment only
        return [todo]
    name = _enclosing_name(lines, index, indent) or "this part"
    return [todo, f'{indent}raise NotImplementedError("{name}: not written yet")\n']


# =============================================================================================
# Notebooks (.ipynb): the same markers, cell by cell
# =============================================================================================


def strip_notebook(text: str, where: str = "notebook", hidden_tests: bool = True) -> str:
    """The student version of a notebook: solution regions stubbed in code cells (replaced by
    "YOUR ANSWER HERE" in markdown cells), hidden tests removed, outputs cleared."""
    nb = json.loads(text)
    for number, cell in enumerate(nb.get("cells", []), 1):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        cell_where = f"{where} cell {number}"
        if hidden_tests:
            source = strip_hidden_tests(source, cell_where)
        if cell.get("cell_type") == "code":
            source = strip_solutions(source, "#", cell_where)
            cell["outputs"], cell["execution_count"] = [], None
        else:
            source = _strip_markdown_solutions(source, cell_where)
        cell["source"] = source.splitlines(keepends=True)
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def _strip_markdown_solutions(text, where):
    stubbed = strip_solutions(text, "#", where)
    return re.sub(r"^[ \t]*# TODO: write this part$", "YOUR ANSWER HERE", stubbed, flags=re.M)


def notebook_to_python(text: str) -> str:
    """The code cells of a notebook as one Python module (IPython magics and shell lines commented
    out), each cell introduced by a ``# %%`` line."""
    nb = json.loads(text)
    parts = []
    for number, cell in enumerate(nb.get("cells", []), 1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        lines = [("# " + line if line.lstrip().startswith(("%", "!")) else line) for line in source.splitlines()]
        parts.append(f"# %% cell {number}\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)


# =============================================================================================
# The manifest
# =============================================================================================


def _toml_loads(text: str, where: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError as err:
            raise AuthoringError(f"{where}: reading assignment.toml needs Python >= 3.11 (tomllib) or "
                                 "'pip install tomli'") from err
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise AuthoringError(f"{where}: not valid TOML ({err})") from err


@dataclass
class Task:
    name: str
    points: float
    title: str = ""
    time_limit: float = 30.0
    hint: str = ""
    functions: list = field(default_factory=list)   # the graded names, as the messages call them
    forbid: list = field(default_factory=list)      # dotted module prefixes the submission must not use
    rtol: float = 1e-8
    atol: float = 0.0
    backend: str = "numpy"
    options: dict = field(default_factory=dict)     # task-specific settings the checks read


@dataclass
class Assignment:
    name: str
    title: str
    path: Path                      # the folder
    module: str                     # the file students complete, graded as a Python module
    tests: str                      # the checks
    files: list                     # every file handed out (module, tests, extras), manifest excluded
    tasks: list
    hidden_seed: int | None         # None in a student version
    manifest_text: str

    @property
    def total_points(self) -> float:
        return sum(t.points for t in self.tasks)

    @property
    def is_instructor_source(self) -> bool:
        """True for the instructor's sources (solutions inside markers), False for a student version."""
        for f in self.files:
            path = self.path / f
            if f == self.tests or not path.is_file():
                continue
            text = path.read_text()
            if f.endswith(".ipynb"):
                text = "\n".join("".join(c.get("source", "")) for c in json.loads(text).get("cells", []))
            if has_solution_markers(text):
                return True
        return False

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)


_TASK_KEYS = {"name", "points", "title", "time_limit", "hint", "functions", "forbid", "rtol", "atol", "backend",
              "options"}
_TOP_KEYS = {"name", "title", "module", "tests", "files", "tasks", "hidden", "time_limit", "forbid", "rtol", "atol",
             "backend", "description"}


def load_assignment(folder) -> Assignment:
    """Read and check ``folder/assignment.toml``; raises AuthoringError with a one-line reason."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    where = str(manifest_path)
    if not manifest_path.is_file():
        raise AuthoringError(f"{folder} is not an assignment: it has no {MANIFEST}")
    text = manifest_path.read_text()
    data = _toml_loads(text, where)
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise AuthoringError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(_TOP_KEYS))}")
    name = data.get("name", folder.name)
    module = data.get("module", "assignment.py")
    tests = data.get("tests", "tests.py")
    files = list(data.get("files", []))
    for f in (module, tests):
        if f not in files:
            files.insert(0, f)
    for f in files:
        if not (folder / f).is_file():
            raise AuthoringError(f"{where}: the file {f} it lists is not in {folder}")
    defaults = {"time_limit": data.get("time_limit", 30.0), "forbid": data.get("forbid", []),
                "rtol": data.get("rtol", 1e-8), "atol": data.get("atol", 0.0), "backend": data.get("backend", "numpy")}
    tasks, seen = [], set()
    for number, raw in enumerate(data.get("tasks", []), 1):
        if not isinstance(raw, dict) or "name" not in raw or "points" not in raw:
            raise AuthoringError(f"{where}: task {number} needs at least name and points ([[tasks]] name = ..., points = ...)")
        unknown = set(raw) - _TASK_KEYS
        if unknown:
            raise AuthoringError(f"{where}: task {raw['name']!r}: unknown key(s) {', '.join(sorted(unknown))}")
        if raw["name"] in seen:
            raise AuthoringError(f"{where}: two tasks are named {raw['name']!r}")
        seen.add(raw["name"])
        task = Task(**{**defaults, **raw})
        if not isinstance(task.points, (int, float)) or task.points < 0:
            raise AuthoringError(f"{where}: task {task.name!r}: points must be a number >= 0, got {task.points!r}")
        if not isinstance(task.time_limit, (int, float)) or task.time_limit <= 0:
            raise AuthoringError(f"{where}: task {task.name!r}: time_limit must be a number of seconds > 0")
        if task.backend not in ("numpy", "numba", "cupy"):
            raise AuthoringError(f"{where}: task {task.name!r}: backend must be numpy, numba or cupy")
        tasks.append(task)
    if not tasks:
        raise AuthoringError(f"{where}: no [[tasks]]")
    hidden = data.get("hidden", {})
    seed = hidden.get("seed") if isinstance(hidden, dict) else None
    return Assignment(name=name, title=data.get("title", name), path=folder, module=module, tests=tests,
                      files=files, tasks=tasks, hidden_seed=seed, manifest_text=text)


def strip_manifest(text: str) -> str:
    """The manifest without its ``[hidden]`` table (up to the next table header)."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        header = re.match(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$", line)
        if header:
            skipping = header.group(1) == "hidden" or header.group(1).startswith("hidden.")
        if not skipping:
            out.append(line)
    return "".join(out)


# =============================================================================================
# Finding assignments, and the checks of a tests file
# =============================================================================================


def default_sources() -> list[Path]:
    """Where ``list``/``make``/``grade`` look without ``--source``: $MINIALEX_ASSIGNMENTS, then the
    repository's ``tutorials/assignments`` (when minialex runs from a checkout), then
    ``./tutorials/assignments``."""
    import os

    import minialex

    candidates = []
    if os.environ.get("MINIALEX_ASSIGNMENTS"):
        candidates.append(Path(os.environ["MINIALEX_ASSIGNMENTS"]))
    candidates.append(Path(minialex.__file__).resolve().parent.parent / "tutorials" / "assignments")
    candidates.append(Path.cwd() / "tutorials" / "assignments")
    seen, found = set(), []
    for c in candidates:
        if c.is_dir() and c.resolve() not in seen:
            seen.add(c.resolve())
            found.append(c)
    return found


def find_assignments(source: Path) -> list[Path]:
    """The assignment folders in ``source`` (or ``source`` itself when it is one), sorted by name."""
    source = Path(source)
    if (source / MANIFEST).is_file():
        return [source]
    return sorted(p for p in source.iterdir() if (p / MANIFEST).is_file()) if source.is_dir() else []


@dataclass
class CheckInfo:
    name: str
    task: str
    line: int
    hidden: bool
    uses_reference: bool
    uses_module: bool = True


def collect_checks(tests_text: str, where: str = "tests") -> list[CheckInfo]:
    """The checks of a tests file, read from its syntax (nothing is run): every function decorated
    with ``@task("name")`` (or ``@checks.task(...)``), in the order of the file."""
    try:
        tree = ast.parse(tests_text)
    except SyntaxError as err:
        raise AuthoringError(f"{where} line {err.lineno}: {err.msg}") from err
    ranges = hidden_line_ranges(tests_text, where)
    checks = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for deco in node.decorator_list:
            if (isinstance(deco, ast.Call) and deco.args and isinstance(deco.args[0], ast.Constant)
                    and ((isinstance(deco.func, ast.Name) and deco.func.id == "task")
                         or (isinstance(deco.func, ast.Attribute) and deco.func.attr == "task"))):
                params = {a.arg for a in node.args.args + node.args.kwonlyargs}
                hidden = any(first <= node.lineno <= last for first, last in ranges)
                checks.append(CheckInfo(node.name, deco.args[0].value, node.lineno, hidden, "ref" in params,
                                        "m" in params))
    return checks


# =============================================================================================
# The student version
# =============================================================================================


def student_files(assignment: Assignment) -> dict[str, str]:
    """{relative path: text} of the student version: solutions stubbed, hidden tests and the
    manifest's [hidden] table removed. Raises AuthoringError when the result would be broken (a
    marker left over, a Python file that no longer parses, a public check that needs the reference)."""
    out = {}
    for rel in assignment.files:
        path = assignment.path / rel
        text = path.read_text()
        where = str(path)
        if rel.endswith(".ipynb"):
            out[rel] = strip_notebook(text, where, hidden_tests=(rel == assignment.tests))
            continue
        if rel == assignment.tests:
            text = strip_hidden_tests(text, where)
        text = strip_solutions(text, comment_prefix(rel), where)
        for number, line in enumerate(text.splitlines(), 1):
            if any(marker.match(line) for marker in (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN,
                                                     BEGIN_PROMPT, END_PROMPT)):
                raise AuthoringError(f"{where}: the student version still has a marker at line {number}: {line.strip()}")
        if rel.endswith(".py"):
            try:
                ast.parse(text)
            except SyntaxError as err:
                raise AuthoringError(f"{where}: the student version does not parse (line {err.lineno}: {err.msg}); "
                                     "check the indentation of the markers") from err
        if rel == assignment.tests:
            for check in collect_checks(text, where):
                if check.uses_reference:
                    raise AuthoringError(f"{where}: the public check {check.name} takes 'ref' (the reference "
                                         "solution), which students do not have: make it hidden, or compute the "
                                         "expected values in the check itself")
        out[rel] = text
    out[MANIFEST] = strip_manifest(assignment.manifest_text)
    data = _toml_loads(out[MANIFEST], MANIFEST)
    if "hidden" in data:
        raise AuthoringError(f"{assignment.path / MANIFEST}: could not remove the [hidden] table")
    return out


def write_student_version(assignment: Assignment, dest: Path) -> list[Path]:
    files = student_files(assignment)
    written = []
    for rel, text in files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(target)
    readme = dest / "README.md"
    if not readme.exists():
        readme.write_text(_student_readme(assignment))
        written.append(readme)
    return written


def _student_readme(a: Assignment) -> str:
    rows = "\n".join(f"| {t.name} | {t.points:g} | {t.title or ', '.join(t.functions)} |" for t in a.tasks)
    return (f"# {a.title}\n\nComplete `{a.module}` (look for `TODO`). Check your work, with no server and no "
            f"internet, from this folder:\n\n    python -m minialex.assignments grade {a.name} .\n\n"
            "This runs the public checks; your instructor's grader also runs hidden checks (other shapes, "
            "other seeds), so make your code right in general, not only for the public cases.\n\n"
            f"| task | points | what |\n|---|---|---|\n{rows}\n")
