"""Keeping minialex's own layers out of a submission.

minialex contains a working version of everything the assignments ask for, so each task of the
manifest lists the modules its submission must not use (``forbid = ["minialex.ops.conv", ...]``:
dotted prefixes). Two guards, one before and one during the run:

* **Static** (``static_violations``, in the grader's process, before any student code runs): the
  submission's syntax tree is searched for imports of a forbidden module (``import minialex.ops.conv``,
  ``from minialex.nn import functional``), attribute paths that reach one (``minialex.ops.conv.conv2d``
  after ``import minialex``; names are resolved through minialex's re-exports, so
  ``from minialex.nn import Conv2d`` is found in ``minialex.nn.layers``), and string literals naming
  one (``importlib.import_module("minialex.ops.conv")``). The task is rejected, with the line.
* **Dynamic** (``Guard``, in the grading subprocess): every function and class defined in a
  forbidden module is replaced, wherever minialex binds it, by a wrapper that raises ``LeakError``
  when it is called *while the student's code is running* (the submission's functions and methods
  are wrapped to count how deep the student's code is on the stack); the grader's own use of
  minialex (gradient checks, evaluation) is unaffected. Modules imported later (``numba_cpu``)
  are patched as they are imported. A ``LeakError`` that the student's code catches is still
  recorded, and fails the check.

Neither is a security sandbox: a determined student can get around both. They catch the honest
shortcut ("I'll just call F.conv2d") with a message that says what to do instead.
"""

from __future__ import annotations

import ast
import functools
import importlib.abc
import importlib.util
import sys
import types

__all__ = ["LeakError", "static_violations", "Guard", "matches"]


class LeakError(RuntimeError):
    """The submission called minialex's own implementation of a graded function."""


def matches(name: str, forbid) -> str | None:
    """The forbidden prefix that the dotted ``name`` falls under, or None."""
    for prefix in forbid:
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    return None


def _real_name(dotted: str) -> str:
    """``minialex.nn.Conv2d`` -> ``minialex.nn.layers.Conv2d``: where a (re-exported) minialex object
    is defined. Only modules already imported are consulted (nothing is imported here)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:i]))
        if module is None:
            continue
        obj = module
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return dotted
        if isinstance(obj, types.ModuleType):
            return obj.__name__
        owner = getattr(obj, "__module__", None)
        if isinstance(owner, str):
            return f"{owner}.{getattr(obj, '__qualname__', parts[-1])}"
        return dotted
    return dotted


def _forbidden(dotted: str, forbid) -> str | None:
    hit = matches(dotted, forbid)
    if hit is None and dotted.startswith("minialex"):
        hit = matches(_real_name(dotted), forbid)
    return hit


def static_violations(source: str, forbid, filename: str = "assignment.py") -> list[str]:
    """Messages ``"line N: ..."`` for each use of a forbidden module found in ``source``."""
    if not forbid:
        return []
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}          # local name -> dotted module/object path
    found: list[tuple[int, str]] = []

    def report(node, what, dotted, prefix):
        found.append((node.lineno, f"line {node.lineno}: {what} {dotted} ({prefix} is off limits in this task)"))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                prefix = _forbidden(alias.name, forbid)
                if prefix:
                    report(node, "imports", alias.name, prefix)
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            prefix = _forbidden(node.module, forbid)
            if prefix:
                report(node, "imports from", node.module, prefix)
                continue
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}"
                prefix = _forbidden(dotted, forbid)
                if prefix:
                    report(node, "imports", dotted, prefix)
                aliases[alias.asname or alias.name] = dotted
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id in aliases:
                dotted = ".".join([aliases[inner.id]] + chain[::-1])
                prefix = _forbidden(dotted, forbid)
                if prefix:
                    report(node, "uses", dotted, prefix)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("minialex."):
            prefix = _forbidden(node.value.strip(), forbid)
            if prefix:
                report(node, "names", repr(node.value), prefix)
    unique, seen = [], set()
    for line, message in sorted(found):
        # report an attribute path once, at its longest form on that line
        key = (line, message.split(" (")[0])
        if key not in seen:
            seen.add(key)
            unique.append(message)
    return [m for m in unique if not any(o != m and o.startswith(m.split(" (")[0] + ".") for o in unique)]


# =============================================================================================
# The dynamic guard
# =============================================================================================


class Guard:
    """Patches the forbidden minialex modules and tracks when the student's code is running."""

    def __init__(self, forbid, task_name: str = "this task"):
        self.forbid = list(forbid)
        self.task_name = task_name
        self.depth = 0                  # > 0 while a function of the submission is on the stack
        self.violations: list[str] = []
        self._undo: list = []           # (setter, args) to restore the originals
        self._patched: dict[int, object] = {}   # id(original) -> wrapper
        self._finder = None

    # --- the student's side ------------------------------------------------------------------
    def wrap_submission(self, module: types.ModuleType):
        """Wrap every function and method defined in the submission's module, so that calls into
        minialex's forbidden functions from inside them are detected."""
        for name, value in list(vars(module).items()):
            if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
                setattr(module, name, self._student(value))
            elif isinstance(value, type) and value.__module__ == module.__name__:
                for attr, member in list(vars(value).items()):
                    if isinstance(member, types.FunctionType):
                        setattr(value, attr, self._student(member))
                    elif isinstance(member, (staticmethod, classmethod)):
                        setattr(value, attr, type(member)(self._student(member.__func__)))

    def _student(self, fn):
        guard = self

        @functools.wraps(fn, updated=())
        def student_code(*args, **kwargs):
            guard.depth += 1
            try:
                return fn(*args, **kwargs)
            finally:
                guard.depth -= 1
        return student_code

    def student_import(self):
        """A context in which the submission's module-level code runs as student code."""
        guard = self

        class _Ctx:
            def __enter__(self):
                guard.depth += 1

            def __exit__(self, *exc):
                guard.depth -= 1
                return False
        return _Ctx()

    # --- minialex's side -----------------------------------------------------------------------
    def install(self):
        if not self.forbid:
            return self
        for name in sorted(sys.modules):
            module = sys.modules.get(name)
            if module is not None and matches(name, self.forbid) and not name.startswith("minialex.assignments"):
                self.patch_module(module)
        self._finder = _PatchOnImport(self)
        sys.meta_path.insert(0, self._finder)
        return self

    def uninstall(self):
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        for setter, args in reversed(self._undo):
            setter(*args)
        self._undo.clear()
        self._patched.clear()

    def _message(self, qualified):
        return (f"your code calls minialex's own {qualified}: task {self.task_name} asks you to write it "
                "yourself (with NumPy), so the grader does not count it; remove that call")

    def _raising(self, original, qualified):
        guard = self

        @functools.wraps(original, updated=())
        def forbidden(*args, **kwargs):
            if guard.depth > 0:
                message = guard._message(qualified)
                guard.violations.append(message)
                raise LeakError(message)
            return original(*args, **kwargs)
        forbidden.__minialex_forbidden__ = True
        return forbidden

    def patch_module(self, module: types.ModuleType):
        """Replace the functions and methods defined in ``module`` wherever minialex binds them."""
        modname = module.__name__
        replacements = {}
        for attr, value in list(vars(module).items()):
            owner = getattr(value, "__module__", None)
            if owner != modname or getattr(value, "__minialex_forbidden__", False):
                continue
            qualified = f"{attr} ({modname}.{attr})"
            if isinstance(value, types.FunctionType) or hasattr(value, "py_func"):   # a numba dispatcher too
                replacements[id(value)] = (value, self._raising(value, qualified))
            elif isinstance(value, type):
                for member_name, member in list(vars(value).items()):
                    if isinstance(member, types.FunctionType):
                        wrapped = self._raising(member, f"{attr}.{member_name} ({modname}.{attr})")
                        self._undo.append((setattr, (value, member_name, member)))
                        setattr(value, member_name, wrapped)
                    elif isinstance(member, (staticmethod, classmethod)):
                        wrapped = type(member)(self._raising(member.__func__, f"{attr}.{member_name} ({modname})"))
                        self._undo.append((setattr, (value, member_name, member)))
                        setattr(value, member_name, wrapped)
        if not replacements:
            return
        for other_name, other in list(sys.modules.items()):
            if other is None or not other_name.startswith("minialex") or other_name.startswith("minialex.assignments"):
                continue
            namespace = vars(other)
            for attr, value in list(namespace.items()):
                hit = replacements.get(id(value))
                if hit is not None and hit[0] is value:
                    self._undo.append((namespace.__setitem__, (attr, value)))
                    namespace[attr] = hit[1]


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patch a forbidden minialex module as soon as it is imported (after the guard was installed)."""

    def __init__(self, guard: Guard):
        self.guard = guard
        self.busy: set[str] = set()

    def find_spec(self, name, path=None, target=None):
        if name in self.busy or not matches(name, self.guard.forbid):
            return None
        self.busy.add(name)
        try:
            spec = importlib.util.find_spec(name)
        except Exception:  # noqa: BLE001
            return None
        finally:
            self.busy.discard(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _PatchingLoader(spec.loader, self.guard)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader, guard):
        self.loader, self.guard = loader, guard

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.guard.patch_module(module)
