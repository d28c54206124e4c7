"""The step-through tutorials (tutorials/NN_name.py, jupytext percent format).

Each tutorial
* runs top to bottom as a plain script, in fast mode (``MINIALEX_TUTORIAL_FAST=1``, headless
  matplotlib), and draws every image it shows;
* ends with a "Where this lives in minialex" section whose files exist and whose names are found
  in those files;
* shows only images that are committed in tutorials/images/ and have alt text;
* has an output-free .ipynb twin (what Colab opens) with exactly the same cells.

The .ipynb check reads both formats itself (``read_percent`` below, and the notebook's JSON), so it
needs no jupytext; where jupytext is installed, one more test checks ``read_percent`` against it.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
IDS = [p.stem for p in SCRIPTS]
WHERE = "## Where this lives in minialex"
IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<path>[^)\s]+)\)")


# ---------------------------------------------------------------------------------------------
# A reader for jupytext's percent format (the subset the tutorials use)
# ---------------------------------------------------------------------------------------------


def read_percent(text):
    """[(cell_type, source)] of a percent-format script, as ``jupytext --to ipynb`` makes them: the
    YAML header (``# ---`` ... ``# ---``) becomes metadata, not a cell; a cell starts at ``# %%``
    (``# %% [markdown]`` for markdown, whose lines lose their ``# `` prefix); blank lines at the
    start and end of a cell are dropped."""
    lines = text.splitlines()
    start = 0
    if lines and lines[0] == "# ---":
        start = lines.index("# ---", 1) + 1
    cells, kind, body = [], None, []

    def flush():
        while body and not body[-1].strip():
            body.pop()
        while body and not body[0].strip():
            body.pop(0)
        if kind == "markdown":
            body[:] = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in body]
        cells.append((kind, "\n".join(body)))

    for number, line in enumerate(lines[start:], start + 1):
        if line.startswith("# %%"):
            if kind is not None:
                flush()
            kind, body = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is None:
            assert not line.strip(), f"line {number}: text before the first '# %%' cell marker"
        else:
            body.append(line)
    if kind is not None:
        flush()
    return cells


def read_ipynb(path):
    notebook = json.loads(path.read_text())
    return notebook, [(cell["cell_type"], "".join(cell["source"])) for cell in notebook["cells"]]


# ---------------------------------------------------------------------------------------------
# The set of tutorials
# ---------------------------------------------------------------------------------------------


def test_tutorials_are_listed_and_paired():
    assert len(SCRIPTS) >= 12, f"expected the twelve tutorials, found {[p.name for p in SCRIPTS]}"
    numbers = [p.name[:2] for p in SCRIPTS]
    assert numbers == [f"{i:02d}" for i in range(1, len(SCRIPTS) + 1)], f"numbering has gaps: {numbers}"
    index = (TUTORIALS / "README.md").read_text()
    for script in SCRIPTS:
        assert f"]({script.name})" in index, f"tutorials/README.md does not link {script.name}"
        assert f"tutorials/{script.stem}.ipynb)" in index, f"tutorials/README.md has no Colab link for {script.stem}"
        assert script.with_suffix(".ipynb").is_file(), (
            f"{script.stem}.ipynb is missing: run jupytext --to ipynb tutorials/{script.name}")


def test_the_readme_opens_the_tutorials():
    readme = (ROOT / "README.md").read_text()
    assert "](tutorials/README.md)" in readme, "README.md must link the tutorials' index"
    badge = re.search(r"\[!\[Open In Colab\]\([^)]*colab-badge\.svg\)\]\(https://colab\.research\.google\.com/"
                      r"github/[^/]+/minialex/blob/main/tutorials/(\d\d_\w+\.ipynb)\)", readme)
    assert badge, "README.md needs a Colab badge opening a tutorial notebook"
    assert (TUTORIALS / badge.group(1)).is_file(), f"the Colab badge opens {badge.group(1)}, which does not exist"


def test_every_committed_image_is_shown():
    shown = set()
    for text in [markdown_of(p) for p in SCRIPTS] + [(TUTORIALS / "README.md").read_text()]:
        shown |= {Path(m["path"]).name for m in IMAGE.finditer(text)}
    committed = {p.name for p in (TUTORIALS / "images").glob("*.png")}
    assert committed <= shown, f"images no tutorial shows (delete them): {sorted(committed - shown)}"


# ---------------------------------------------------------------------------------------------
# Each tutorial
# ---------------------------------------------------------------------------------------------


def markdown_of(script):
    return "\n\n".join(source for kind, source in read_percent(script.read_text()) if kind == "markdown")


@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_runs_as_a_script_in_fast_mode(script, tmp_path):
    images = tmp_path / "images"
    env = dict(os.environ, MINIALEX_TUTORIAL_FAST="1", MPLBACKEND="Agg", MINIALEX_TUTORIAL_IMAGES=str(images),
               PYTHONUNBUFFERED="1")
    env.pop("MINIALEX_BACKEND", None)          # each tutorial chooses its backends itself
    try:
        result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=900)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{script.name} ran for more than {err.timeout} s in fast mode")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + "\n" + result.stderr).splitlines()[-40:])
        pytest.fail(f"python {script.relative_to(ROOT)} exited with {result.returncode}; the end of its output:\n{tail}")
    drawn = {p.name for p in images.glob("*.png")}
    shown = {Path(m["path"]).name for m in IMAGE.finditer(markdown_of(script))}
    assert shown <= drawn, f"{script.name} shows images it did not draw: {sorted(shown - drawn)}"


@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_structure(script):
    text = script.read_text()
    assert text.startswith("# ---\n# jupyter:\n#   jupytext:"), f"{script.name}: no jupytext header"
    assert "format_name: percent" in text.split("# ---", 2)[1], f"{script.name}: the header must say format_name: percent"
    cells = read_percent(text)
    kind, title = cells[0]
    assert kind == "markdown" and title.startswith(f"# {script.name[:2]} · "), \
        f"{script.name}: the first cell must be the title '# {script.name[:2]} · ...'"
    kind, last = cells[-1]
    assert kind == "markdown" and last.startswith(WHERE), f"{script.name}: the last cell must be '{WHERE}'"


@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_where_this_lives_names_real_files_and_names(script):
    """Each bullet of the last section names files (`path/to/file`) and, after each, names defined or
    used in it (`Conv2d.forward`): the files must exist and every part of each name must occur in them."""
    section = read_percent(script.read_text())[-1][1]
    bullets = re.split(r"\n(?=- )", section.split("\n", 1)[1])
    problems, paths_seen = [], 0
    for bullet in bullets:
        current = None
        for token in re.findall(r"`([^`]+)`", bullet):
            if "/" in token and re.fullmatch(r"[\w./-]+", token):
                current = ROOT / token
                paths_seen += 1
                if not current.exists():
                    problems.append(f"{token} does not exist")
                    current = None
                continue
            name = token[:-2] if token.endswith("()") else token
            if current is None or not current.is_file() or current.suffix not in (".py", ".cu") \
                    or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", name):
                continue
            source = current.read_text()
            missing = [part for part in name.split(".") if not re.search(rf"\b{re.escape(part)}\b", source)]
            if missing:
                problems.append(f"{name}: {', '.join(missing)} not found in {current.relative_to(ROOT)}")
    assert paths_seen, f"{script.name}: '{WHERE}' names no file"
    assert not problems, f"{script.name}, '{WHERE}':\n" + "\n".join(problems)


@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_images_exist_and_have_alt_text(script):
    markdown = markdown_of(script)
    assert "<img" not in markdown, f"{script.name}: use ![alt text](images/x.png), not <img>"
    for match in IMAGE.finditer(markdown):
        alt, path = " ".join(match["alt"].split()), match["path"]
        assert len(alt) >= 30, f"{script.name}: {path} needs alt text that describes it (got {alt!r})"
        assert path.startswith("images/") and path.endswith(".png"), f"{script.name}: {path} must be images/*.png"
        assert (TUTORIALS / path).is_file(), (f"{script.name}: {path} is not committed; run the tutorial "
                                              f"without MINIALEX_TUTORIAL_FAST to draw it")


@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_ipynb_twin_has_the_same_cells(script):
    twin = script.with_suffix(".ipynb")
    assert twin.is_file(), f"{twin.name} is missing: run jupytext --to ipynb tutorials/{script.name}"
    notebook, cells = read_ipynb(twin)
    expected = read_percent(script.read_text())
    for i, (got, want) in enumerate(zip(cells, expected)):
        assert got == want, (f"{twin.name}, cell {i}, differs from {script.name}: regenerate it with "
                             f"jupytext --to ipynb tutorials/{script.name}")
    assert len(cells) == len(expected), (f"{twin.name} has {len(cells)} cells, {script.name} {len(expected)}: "
                                         f"regenerate it with jupytext --to ipynb tutorials/{script.name}")
    for cell in notebook["cells"]:
        assert not cell.get("outputs") and cell.get("execution_count") is None, \
            f"{twin.name} holds outputs: commit it output-free (jupytext --to ipynb)"
    assert notebook["metadata"].get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_percent_reader_agrees_with_jupytext(script):
    jupytext = pytest.importorskip("jupytext")
    notebook = jupytext.read(script)
    assert [(c.cell_type, c.source) for c in notebook.cells] == read_percent(script.read_text())
