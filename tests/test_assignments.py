"""Classroom assignments (minialex.assignments): markers and the student version, the leak check,
the oracle, the CLI, and the autograder on the three assignments of tutorials/assignments:

* the reference solutions score full marks (A3's training task with a smaller target: the real
  target is checked by hand, see the report of the task);
* the student versions score 0 without crashing;
* a submission with one task wrong loses exactly that task's points;
* an infinite loop costs its task only, a syntax error is graded at once;
* a submission that imports (or, hidden, calls) minialex's own conv2d is rejected.

Grading starts Python processes (one per task, about 1-2 s each here): the slow tests share one
cache of the reference's expected values and grade three tasks at a time (-j 3).
"""

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minialex.assignments import authoring, grader, leak, oracle
from minialex.assignments.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "tutorials" / "assignments"
A1, A2, A3 = SOURCES / "a1_autograd", SOURCES / "a2_layers", SOURCES / "a3_kernels_training"
# A3's training task in the tests: 32 images instead of 256, a lower target (the reference still
# fits them; the real setting, 256 images to 80%, takes 40-55 s on two busy cores)
QUICK_TRAIN = {"train": {"train_images": 32, "target_accuracy": 0.5, "time_budget_s": 40}}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("grader-cache"))


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of ``python -m minialex.assignments ARGV``, run in this process."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def grade_json(capsys, name, folder, cache, *extra):
    code, out, err = run_cli(capsys, "grade", name, folder, "--json", "-", "--cache-dir", cache, "-j", "3", *extra)
    assert code == 0, err
    return json.loads(out)


def by_task(report):
    return {t["name"]: t for t in report["tasks"]}


def copy_of(source, tmp_path, edit=None, name="submission"):
    """A submission folder: the files of ``source``, with ``edit(text)`` applied to assignment.py."""
    dest = tmp_path / name
    shutil.copytree(source, dest)
    if edit is not None:
        path = dest / "assignment.py"
        path.write_text(edit(path.read_text()))
    return dest


# =============================================================================================
# Authoring: markers, the manifest, the student version
# =============================================================================================

SNIPPET = '''\
def f(x):
    # BEGIN SOLUTION  hint: square it
    return x * x
    # END SOLUTION

class K:
    def g(self):
        ### BEGIN SOLUTION
        """ # BEGIN PROMPT
        return ...  # your turn
        """ # END PROMPT
        return 42
        ### END SOLUTION

# BEGIN SOLUTION NO PROMPT
SECRET = 1
# END SOLUTION
answer = 6 * 7  # SOLUTION
'''


def test_markers_become_stubs_and_prompts():
    out = authoring.strip_solutions(SNIPPET, "#", "snippet")
    assert "x * x" not in out and "42" not in out and "SECRET" not in out and "6 * 7" not in out
    assert "    # TODO: square it\n    raise NotImplementedError(\"f: not written yet\")\n" in out
    assert "        return ...  # your turn\n" in out                      # the prompt, not a stub
    assert "answer = ...  # TODO" in out
    ns = {}
    exec(compile(out, "student", "exec"), ns)
    with pytest.raises(NotImplementedError, match="f: not written yet"):
        ns["f"](3)
    cuda = "__global__ void k(float* y) {\n    // BEGIN SOLUTION\n    y[0] = 1;\n    // END SOLUTION\n}\n"
    assert authoring.strip_solutions(cuda, "//") == "__global__ void k(float* y) {\n    // TODO: write this part\n}\n"


def test_marker_mistakes_name_the_line():
    with pytest.raises(authoring.AuthoringError, match="line 2: BEGIN SOLUTION is never closed"):
        authoring.strip_solutions("x = 1\n# BEGIN SOLUTION\ny = 2\n")
    with pytest.raises(authoring.AuthoringError, match="line 1: END SOLUTION without BEGIN"):
        authoring.strip_solutions("# END SOLUTION\n")
    with pytest.raises(authoring.AuthoringError, match="line 3: END HIDDEN TESTS without BEGIN"):
        authoring.strip_hidden_tests("# BEGIN HIDDEN TESTS\n# END HIDDEN TESTS\n# END HIDDEN TESTS\n")


def test_notebooks_are_stripped_cell_by_cell():
    nb = {"cells": [{"cell_type": "code", "source": ["def f():\n", "    # BEGIN SOLUTION\n", "    return 1\n",
                                                     "    # END SOLUTION\n"], "outputs": [{"x": 1}], "execution_count": 3},
                    {"cell_type": "code", "source": "# BEGIN HIDDEN TESTS\nassert f() == 1\n# END HIDDEN TESTS\n"},
                    {"cell_type": "markdown", "source": "Why?\n# BEGIN SOLUTION\nBecause.\n# END SOLUTION\n"}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    student = json.loads(authoring.strip_notebook(json.dumps(nb)))
    code = "".join(student["cells"][0]["source"])
    assert "return 1" not in code and "NotImplementedError" in code and student["cells"][0]["outputs"] == []
    assert "".join(student["cells"][1]["source"]) == ""
    assert "".join(student["cells"][2]["source"]) == "Why?\nYOUR ANSWER HERE\n"
    assert "def f():" in authoring.notebook_to_python(json.dumps(nb))


@pytest.mark.parametrize("folder", [A1, A2, A3], ids=lambda p: p.name)
def test_student_version_carries_no_answers(folder):
    a = authoring.load_assignment(folder)
    assert a.is_instructor_source and a.hidden_seed is not None
    files = authoring.student_files(a)
    assert set(files) == set(a.files) | {authoring.MANIFEST}
    inside_lines, outside_lines = set(), set()
    for rel in a.files:
        inside = False
        for line in (folder / rel).read_text().splitlines():
            if authoring.BEGIN_SOLUTION.match(line) or authoring.BEGIN_HIDDEN.match(line):
                inside = True
            elif authoring.END_SOLUTION.match(line) or authoring.END_HIDDEN.match(line):
                inside = False
            elif len(line.strip()) > 25:
                (inside_lines if inside else outside_lines).add(line.strip())
    solution_lines = inside_lines - outside_lines          # what only the solutions and hidden tests say
    assert len(solution_lines) > 10
    everything = "\n".join(files.values())
    leaked = [line for line in solution_lines if line in everything]
    assert not leaked, leaked[:3]
    manifest = authoring._toml_loads(files[authoring.MANIFEST], "student manifest")
    assert "hidden" not in manifest and str(a.hidden_seed) not in files[authoring.MANIFEST]
    assert manifest["tasks"] == authoring._toml_loads(a.manifest_text, "manifest")["tasks"]
    public = authoring.collect_checks(files[a.tests])
    assert public and not any(c.hidden or c.uses_reference for c in public)
    assert len(authoring.collect_checks((folder / a.tests).read_text())) > len(public)   # hidden ones existed


def test_the_package_does_not_ship_solutions():
    """Reference solutions and hidden tests live in tutorials/, never in the installed package."""
    graded = {name.split(" ")[0] for folder in (A1, A2, A3)
              for task in authoring.load_assignment(folder).tasks for name in task.functions}
    package = ROOT / "minialex" / "assignments"
    assert not list(package.rglob("assignment.toml")) and not list(package.rglob("*.cu"))
    for path in package.rglob("*.py"):
        defined = set(re.findall(r"^\s*(?:def|class)\s+(\w+)", path.read_text(), re.M))
        assert not defined & graded, (path, defined & graded)


# =============================================================================================
# The leak check and the oracle
# =============================================================================================


def test_static_leak_check_finds_minialex_s_own_layers():
    forbid = ["minialex.ops", "minialex.nn.functional", "minialex.backend.numpy_ref"]
    source = ("import numpy as np\nimport minialex\nfrom minialex.tensor import Tensor\n"
              "import minialex.ops.conv\nfrom minialex.nn import functional as F\nfrom minialex import backend as B\n"
              "import importlib\n\ndef f(x):\n    a = minialex.ops.pool.max_pool2d(x, 3)\n"
              "    b = B.numpy_ref.im2col\n    return importlib.import_module('minialex.ops.lrn')\n")
    found = leak.static_violations(source, forbid)
    assert [int(re.match(r"line (\d+)", v).group(1)) for v in found] == [4, 5, 10, 11, 12], found
    assert "imports minialex.ops.conv" in found[0]
    clean = "import numpy as np\nimport minialex\nfrom minialex import Function, Tensor, gradcheck\nx = minialex.tensor(1.0)\n"
    assert leak.static_violations(clean, forbid) == []
    assert leak.static_violations(clean, ["minialex.gradcheck"])        # re-exported names resolve to their module


def test_oracle_records_and_replays(tmp_path):
    import minialex

    value = (np.arange(6.0).reshape(2, 3), {"loss": 0.25, "n": 3, "none": None}, [np.int32(4), "ok"],
             minialex.tensor(np.ones(2)), np.asarray(2.5))
    rec = oracle.Recorder(reference_module=None)
    rec.start("check")
    got = rec(lambda module, x: value, np.ones(3))
    assert got[3].shape == (2,) and got[4].shape == ()
    rec.save(tmp_path / "r.npz")
    rep = oracle.Replayer(tmp_path / "r.npz")
    rep.start("check")
    again = rep(lambda module, x: value, np.ones(3))
    np.testing.assert_array_equal(again[0], value[0])
    assert again[1] == {"loss": 0.25, "n": 3, "none": None} and again[2] == [4, "ok"]
    rep.start("check")
    with pytest.raises(oracle.OracleError, match="different inputs"):
        rep(lambda module, x: value, np.zeros(3))


def test_task_status_and_score_from_the_runner_s_events():
    task = authoring.Task(name="t", points=3)
    infos = [authoring.CheckInfo("a", "t", 1, False, False), authoring.CheckInfo("b", "t", 2, True, True)]

    def result(events, code=0, timed_out=False):
        return grader._result_from_events(task, infos, events, code, timed_out, "", 1.0, 30)

    a_ok = {"event": "check", "check": "a", "passed": True}
    done = {"event": "done"}
    passed = result([a_ok, {"event": "check", "check": "b", "passed": True}, done])
    assert (passed.status, passed.points, passed.checks_passed) == ("pass", 3, 2)
    skipped = result([a_ok, {"event": "check", "check": "b", "passed": False, "skipped": True, "message": "no GPU"}, done])
    assert (skipped.status, skipped.points) == ("skipped", 0) and skipped.first_failure["message"] == "no GPU"
    report = grader.Report("x", "x", "x", [passed, skipped], public_only=False)
    assert (report.score, report.max_score) == (3, 3)                       # a skipped task is not counted
    timeout = result([{"event": "begin", "check": "a"}], code=-9, timed_out=True)
    assert timeout.status == "timeout" and [c["status"] for c in timeout.checks] == ["timeout", "not run"]
    crash = result([a_ok, {"event": "begin", "check": "b"}], code=-11)
    assert crash.status == "fail" and "SIGSEGV" in crash.first_failure["message"] and crash.first_failure["hidden"]
    broken = result([{"event": "fatal", "message": "the tests file fails"}], code=3)
    assert broken.status == "error"


# =============================================================================================
# The CLI: list, make, bad usage
# =============================================================================================


def test_list_make_and_usage_errors(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli(capsys, "list", "--source", tmp_path / "empty")
    assert code == 2 and err.startswith("error: no assignments found in") and err.count("\n") == 1
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for name, points in (("a1_autograd", 10), ("a2_layers", 13), ("a3_kernels_training", 10)):
        assert re.search(rf"^{name}  \({points} points, instructor source", out, re.M), out
    assert "conv_backward" in out and "cuda_maxpool" in out

    code, out, _ = run_cli(capsys, "make", "a2", tmp_path / "a2")
    assert code == 0 and (tmp_path / "a2" / "assignment.py").is_file() and (tmp_path / "a2" / "README.md").is_file()
    code, out, _ = run_cli(capsys, "list", "--source", tmp_path / "a2")
    assert code == 0 and "student version" in out

    for argv, message in [
        (["list", "--source", tmp_path / "nowhere"], "--source"),
        (["list", "--source", tmp_path / "a2" / "assignment.py"], "no such folder"),
        (["list", "--source", (tmp_path / "a2").parent / "a2" / ".." / "a2" / "README.md"], "no such folder"),
        (["make", "a2", tmp_path / "a2"], "not empty"),
        (["make", "zz", tmp_path / "new"], "no assignment 'zz'"),
        (["grade", "a1", tmp_path / "missing"], "no such folder"),
        (["grade", "a1", tmp_path, "--task", "nope"], "no such task"),
        (["grade", "a1", tmp_path, "--set", "oops"], "TASK.OPTION=VALUE"),
        (["grade", "a1", tmp_path, "--jobs", "0"], "--jobs"),
        (["grade", "a1"], "required"),
        (["frobnicate"], "invalid choice"),
    ]:
        code, out, err = run_cli(capsys, *argv)
        assert code == 2, (argv, out, err)
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (argv, err)
        assert "Traceback" not in err


def test_the_module_runs_as_a_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "minialex.assignments", "grade", "a1", str(tmp_path / "missing")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr


# =============================================================================================
# Grading (subprocesses)
# =============================================================================================


def grade_all(folders, cache, **kwargs):
    """{folder name: (report as a dict, seconds)}: the assignments graded at the same time (each
    two tasks at a time), with the grader's Python API (the CLI is tested above and below)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(item):
        source, submission = item
        started = time.perf_counter()
        overrides = QUICK_TRAIN if source == A3 else None
        report = grader.grade(authoring.load_assignment(source), submission, jobs=2, cache_dir=cache,
                              overrides=overrides, **kwargs)
        return source.name, (report.to_dict(), time.perf_counter() - started)

    with ThreadPoolExecutor(max_workers=len(folders)) as pool:
        return dict(pool.map(one, folders))


def test_references_score_full_marks(capsys, cache):
    reports = grade_all([(A1, A1), (A2, A2), (A3, A3)], cache)
    for name, (report, seconds) in reports.items():
        failures = {t["name"]: t["first_failure"] for t in report["tasks"] if t["status"] not in ("pass", "skipped")}
        assert not failures, (name, failures)
        skipped = [t["name"] for t in report["tasks"] if t["status"] == "skipped"]
        assert set(skipped) <= {"cuda_maxpool"}                      # only without a GPU and without g++
        assert report["score"] == report["max_score"] > 0 and not report["public_only"]
        assert all(t["checks_passed"] == t["checks_total"] > 0 for t in report["tasks"] if t["status"] == "pass")
        with capsys.disabled():
            print(f"\n{name}: {report['score']:g}/{report['max_score']:g} in {seconds:.1f} s", end="")


def test_student_versions_score_zero_without_crashing(capsys, cache, tmp_path):
    for folder in (A1, A2, A3):
        code, _, err = run_cli(capsys, "make", folder.name, tmp_path / folder.name)
        assert code == 0, err
    reports = grade_all([(folder, tmp_path / folder.name) for folder in (A1, A2, A3)], cache)
    for name, (report, _) in reports.items():
        assert report["score"] == 0 and report["max_score"] > 0
        for t in report["tasks"]:
            assert t["status"] in ("fail", "skipped"), (name, t["name"], t["status"], t["first_failure"])
            assert t["first_failure"]["message"], (name, t["name"])
        messages = " ".join(t["first_failure"]["message"] for t in report["tasks"])
        assert "not written yet" in messages
    # a student checking their own work: the student version is its own source (public checks only)
    code, out, _ = run_cli(capsys, "grade", "a1_autograd", tmp_path / "a1_autograd", "--source",
                           tmp_path / "a1_autograd", "--task", "linear")
    assert code == 0 and "public checks only" in out and "0 / 2" in out and "not written yet" in out


def test_one_wrong_task_costs_exactly_its_points(capsys, cache, tmp_path):
    wrong = copy_of(A1, tmp_path, lambda s: s.replace("return gy @ W, gy.T @ x, gy.sum(axis=0)",
                                                      "return gy @ W, gy.T @ x, gy.mean(axis=0)"))
    report = grade_json(capsys, "a1_autograd", wrong, cache)
    tasks = by_task(report)
    assert tasks["linear"]["status"] == "fail" and tasks["linear"]["points"] == 0
    assert report["score"] == report["max_score"] - tasks["linear"]["max_points"] == 8
    failure = tasks["linear"]["first_failure"]
    assert "grad" in failure["message"] and "tolerance" in failure["detail"]
    assert all(t["status"] == "pass" for name, t in tasks.items() if name != "linear")


def test_an_infinite_loop_costs_its_task_only(capsys, cache, tmp_path):
    looping = copy_of(A1, tmp_path, lambda s: s.replace("        y = np.tanh(x)\n",
                                                        "        while True:\n            pass\n"))
    started = time.perf_counter()
    report = grade_json(capsys, "a1_autograd", looping, cache, "--timeout", "8",
                        "--task", "autograd_basics", "--task", "linear")
    assert time.perf_counter() - started < 40
    tasks = by_task(report)
    assert tasks["autograd_basics"]["status"] == "timeout" and tasks["autograd_basics"]["points"] == 0
    assert "time limit of 8 s" in tasks["autograd_basics"]["first_failure"]["message"]
    assert tasks["linear"]["status"] == "pass" and report["score"] == 2


def test_a_syntax_error_is_graded_at_once(capsys, cache, tmp_path):
    broken = copy_of(A1, tmp_path, lambda s: s.replace("class Linear(Function):", "class Linear(Function)"))
    started = time.perf_counter()
    code, out, _ = run_cli(capsys, "grade", "a1_autograd", broken, "--cache-dir", cache)
    assert code == 0 and time.perf_counter() - started < 15
    assert "syntax error at line" in out and "0 / 10" in out
    assert out.count("syntax error at line") == 4                     # every task says why


def test_leak_check_rejects_minialex_s_own_conv(capsys, cache, tmp_path):
    static = copy_of(A2, tmp_path, lambda s: s.replace("import numpy as np\n", "import numpy as np\nimport minialex.ops.conv\n", 1),
                     name="static")
    report = grade_json(capsys, "a2_layers", static, cache, "--task", "conv_forward")
    task = by_task(report)["conv_forward"]
    assert task["status"] == "rejected" and task["points"] == 0
    assert "imports minialex.ops.conv" in task["first_failure"]["message"]

    def call_it(source):
        start, end = source.index("def conv2d_forward"), source.index("def conv2d_backward")
        cheat = ("def conv2d_forward(x, W, b, stride=1, padding=0):\n    import importlib\n"
                 "    F = importlib.import_module('minialex' + '.nn.functional')\n    from minialex.tensor import Tensor\n"
                 "    try:\n        return F.conv2d(Tensor(x), Tensor(W), Tensor(b), stride=stride, padding=padding).numpy(), None\n"
                 "    except Exception:\n        return np.zeros(1), None\n\n\n")
        return source[:start] + cheat + source[end:]

    hidden = copy_of(A2, tmp_path, call_it, name="dynamic")
    report = grade_json(capsys, "a2_layers", hidden, cache, "--task", "conv_forward")
    task = by_task(report)["conv_forward"]
    assert task["status"] == "fail" and "calls minialex's own conv2d" in task["first_failure"]["message"]


def test_a_broken_reference_is_a_grader_error(capsys, tmp_path):
    """An assignment whose reference fails its own check: exit code 1, the task marked ERROR."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "assignment.toml").write_text('name = "tiny"\n[[tasks]]\nname = "double"\npoints = 1\n'
                                            '[hidden]\nseed = 7\n')
    (folder / "assignment.py").write_text("def double(x):\n    # BEGIN SOLUTION\n    return 3 * x\n    # END SOLUTION\n")
    (folder / "tests.py").write_text(
        "from minialex.assignments.checks import check, task\n\n@task('double')\ndef public(m):\n"
        "    check(m.double(2) == 4, 'double(2) must be 4')\n\n# BEGIN HIDDEN TESTS\n@task('double')\n"
        "def hidden(m, ref, rng):\n    x = float(rng.integers(100))\n    check(m.double(x) == ref(lambda r, x: r.double(x), x), 'double')\n"
        "# END HIDDEN TESTS\n")
    code, out, err = run_cli(capsys, "grade", "tiny", folder, "--source", folder, "--no-cache")
    assert code == 1 and "ERROR" in out and "reference solution fails its own check public" in out
    assert "not of the submission" in err
