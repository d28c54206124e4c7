"""Save and load a model's parameters as a plain ``.npz`` file (NumPy's zip of ``.npy`` arrays).

    minialex.io.save(model, "alexnet.npz")          # keys = model.state_dict() keys: features.0.weight, ...
    minialex.io.load(model, "alexnet.npz")          # copies the arrays into the model, returns it
    state = minialex.io.load(None, "alexnet.npz")   # just the arrays: {"features.0.weight": ndarray, ...}

The file holds nothing but named arrays, so NumPy, PyTorch users (``torch.from_numpy``) and other
tools read it too, and loading never runs code (``allow_pickle=False``). Saving writes a temporary
file in the same folder and renames it over the target (``os.replace``, atomic), so an interrupted
save never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import os
import secrets
from collections import OrderedDict

import numpy as np

from minialex import backend
from minialex.models.alexnet import identify
from minialex.nn.module import Module
from minialex.tensor import Tensor

__all__ = ["save", "load"]


def save(model, path) -> str:
    """Write ``model.state_dict()`` (or a dict of arrays) to ``path`` as ``.npz``; returns the path.
    The path is used as given (NumPy's habit of appending ``.npz`` does not apply)."""
    path = os.fspath(path)
    state = model.state_dict() if isinstance(model, Module) else model
    if not hasattr(state, "items"):
        raise TypeError(f"minialex.io.save: expected a Module or a dict of arrays, got {type(model).__name__}")
    arrays = OrderedDict((str(k), _to_numpy(v)) for k, v in state.items())
    clash = [k for k in arrays if k in ("file", "allow_pickle")]
    if clash:  # np.savez's own argument names
        raise ValueError(f"minialex.io.save: key {clash[0]!r} cannot be saved with numpy.savez; rename it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"minialex.io.save: folder {folder!r} does not exist; create it first")
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    # os.open with O_EXCL: a fresh file, with the usual permissions (mode 0o666 minus the umask)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(model, path):
    """Read a ``.npz`` written by ``save`` (or ``numpy.savez``). With a model, copy the arrays into
    its parameters (keys and shapes must match exactly) and return the model; with None, return
    the arrays as an ordered dict."""
    path = os.fspath(path)
    if not os.path.exists(path):
        hint = f"; did you mean {path + '.npz'!r}?" if os.path.exists(path + ".npz") else ""
        raise FileNotFoundError(f"minialex.io.load: no such file {path!r}{hint}")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not named arrays")
        with data:
            state = OrderedDict((name, data[name]) for name in data.files)
    except Exception as err:  # BadZipFile, truncated or garbled data, a pickle, ...
        raise ValueError(f"minialex.io.load: cannot read {path!r} as a .npz checkpoint ({type(err).__name__}: "
                         f"{err}); the file is corrupt or truncated, or was not written by "
                         "minialex.io.save / numpy.savez") from err
    if model is None:
        return state
    _check_fits(model, state, path)
    model.load_state_dict(state)
    return model


def _check_fits(model, state, path):
    """Raise a ValueError saying what differs, and which variant the file looks like."""
    own = OrderedDict((k, p.shape) for k, p in model.named_parameters())
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} (model: {own[k]})" for k in own
             if k in state and tuple(state[k].shape) != own[k]]
    if not (missing or unexpected or wrong):
        return
    problems = []
    if missing:
        problems.append(f"missing keys {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_first(unexpected)}")
    if wrong:
        problems.append(f"other shapes: {_first(wrong)}")
    theirs = identify(state)
    ours = model.name() if hasattr(model, "name") else type(model).__name__
    guess = (f"the file looks like the weights of {theirs}" if theirs else
             "the file matches none of the alexnet() variants")
    raise ValueError(f"minialex.io.load: {path!r} does not fit {ours}: {'; '.join(problems)}; {guess}")


def _first(items, n=4):
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def _to_numpy(value):
    if isinstance(value, Tensor):
        return value.numpy()
    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().cpu().numpy()
    return backend.to_numpy(value)
