"""The reference oracle: expected values computed by the reference solution in another process.

A hidden check asks for expected values with ``ref(fn, *args)``, meaning ``fn(reference_module,
*args)``. The grader runs each such check twice, in two processes:

1. the *reference* process imports the instructor's solution, runs the check with it as the
   submission, and records every value ``ref`` returns (``Recorder``);
2. the *student* process never imports the solution: ``ref`` replays the recorded values in the
   same order (``Replayer``), and the check compares them with what the student's code computes.

The inputs come from seeded generators, so both runs build the same arrays; the replayer checks
this (a digest of the arguments) and says so if a check passes values computed by the student's
code to ``ref`` (not allowed: the expected value would then depend on the submission).

Recordings are NumPy ``.npz`` files (``allow_pickle=False``): nested tuples, lists and dicts of
arrays, numbers, strings and None, their structure in a JSON entry. Tensors become arrays.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

__all__ = ["Recorder", "Replayer", "NoReference", "OracleError", "encode", "decode", "save", "load"]


class OracleError(RuntimeError):
    """The oracle cannot answer (an authoring problem, not the student's)."""


def _as_array(value):
    if hasattr(value, "numpy") and callable(value.numpy) and type(value).__name__ == "Tensor":
        return value.numpy()
    if type(value).__module__.startswith("cupy") and hasattr(value, "get"):
        return value.get()
    return value


def encode(value, arrays: list):
    """(JSON tree, arrays appended to ``arrays``) for a value made of arrays, numbers, strings,
    None, tuples, lists and dicts with string keys."""
    value = _as_array(value)
    if value is None:
        return {"t": "none"}
    if isinstance(value, (bool, np.bool_)):
        return {"t": "bool", "v": bool(value)}
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return {"t": "int", "v": int(value)}
    if isinstance(value, (float, np.floating)):
        return {"t": "float", "v": repr(float(value))}
    if isinstance(value, str):
        return {"t": "str", "v": value}
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O":
            raise OracleError("ref(): cannot record an object array")
        arrays.append(np.array(value, order="C", copy=True))
        return {"t": "array", "i": len(arrays) - 1}
    if isinstance(value, (tuple, list)):
        return {"t": type(value).__name__, "items": [encode(v, arrays) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise OracleError("ref(): dict keys must be strings")
        return {"t": "dict", "items": {k: encode(v, arrays) for k, v in value.items()}}
    raise OracleError(f"ref(): cannot record a {type(value).__name__}; return arrays, numbers, strings, "
                      "or tuples/lists/dicts of them")


def decode(tree, arrays, copy=True):
    t = tree["t"]
    if t == "none":
        return None
    if t in ("bool", "int", "str"):
        return tree["v"]
    if t == "float":
        return float(tree["v"])
    if t == "array":
        return arrays[tree["i"]].copy() if copy else arrays[tree["i"]]
    if t in ("tuple", "list"):
        items = [decode(v, arrays, copy) for v in tree["items"]]
        return tuple(items) if t == "tuple" else items
    if t == "dict":
        return {k: decode(v, arrays, copy) for k, v in tree["items"].items()}
    raise OracleError(f"unknown recorded type {t!r}")


def digest(args, kwargs) -> str:
    """A fingerprint of the arguments given to ``ref``: same inputs in both processes."""
    h = hashlib.sha256()

    def feed(v):
        v = _as_array(v)
        if isinstance(v, np.ndarray):
            h.update(f"array{v.dtype.str}{v.shape}".encode())
            h.update(np.ascontiguousarray(v).tobytes())
        elif isinstance(v, (tuple, list)):
            h.update(f"{type(v).__name__}{len(v)}(".encode())
            for item in v:
                feed(item)
            h.update(b")")
        elif isinstance(v, dict):
            for k in sorted(v, key=str):
                h.update(repr(k).encode())
                feed(v[k])
        elif isinstance(v, (bool, int, float, str, type(None), np.generic)):
            h.update(repr(v).encode())
        elif callable(v):
            h.update(f"callable:{getattr(v, '__qualname__', type(v).__name__)}".encode())
        else:
            h.update(f"{type(v).__name__}".encode())
    feed(list(args))
    feed(dict(kwargs))
    return h.hexdigest()[:16]


class _Oracle:
    def __init__(self):
        self.check = None
        self.count = 0

    def start(self, check_name):
        self.check, self.count = check_name, 0

    def _key(self, fn):
        key = f"{self.check}/{self.count}"
        self.count += 1
        return key, getattr(fn, "__qualname__", repr(fn))


class Recorder(_Oracle):
    """In the reference process: compute ``fn(reference_module, ...)`` and record it."""

    def __init__(self, reference_module):
        super().__init__()
        self.module = reference_module
        self.records: dict[str, dict] = {}
        self.arrays: list = []

    def __call__(self, fn, *args, **kwargs):
        key, name = self._key(fn)
        fingerprint = digest(args, kwargs)
        value = fn(self.module, *args, **kwargs)
        tree = encode(value, self.arrays)
        self.records[key] = {"fn": name, "digest": fingerprint, "value": tree}
        return decode(tree, self.arrays)

    def save(self, path):
        save(path, self.records, self.arrays)


class Replayer(_Oracle):
    """In the student's process: return the recorded values, in the same order."""

    def __init__(self, path):
        super().__init__()
        self.records, self.arrays = load(path)

    def __call__(self, fn, *args, **kwargs):
        key, name = self._key(fn)
        record = self.records.get(key)
        if record is None or record["fn"] != name:
            raise OracleError(f"no recorded reference value for call {key} ({name}); the check calls ref() "
                              "differently from the reference run (does it depend on the submission's results?)")
        if record["digest"] != digest(args, kwargs):
            raise OracleError(f"ref({name}, ...) got different inputs than in the reference run; a check must "
                              "build ref()'s inputs from its seeded generator only, never from the submission's "
                              "results")
        return decode(record["value"], self.arrays)


class NoReference(_Oracle):
    """In a student version: there is no reference solution."""

    def __call__(self, fn, *args, **kwargs):
        raise OracleError("this check needs the reference solution, which only the instructor's grader has")


def save(path, records, arrays):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    payload = {f"a{i}": a for i, a in enumerate(arrays)}
    payload["__records__"] = np.array(json.dumps(records))
    np.savez(tmp, **payload)
    tmp.replace(path)


def load(path):
    with np.load(path, allow_pickle=False) as data:
        records = json.loads(str(data["__records__"]))
        arrays = [data[f"a{i}"] for i in range(len(data.files) - 1)]
    return records, arrays
