"""Training checkpoints: everything needed to continue a run exactly, in one ``.npz`` file.

One file, ``checkpoint.npz``, holds named arrays only (no pickle, so loading never runs code):

    model.<name>        the model's state_dict (``model.features.0.weight``, ...)
    optim.<name>        the optimizer's state_dict (``optim.lr``, ``optim.steps``, ``optim.state.0.momentum_buffer``)
    schedule.<name>     the learning-rate schedule's state_dict (``schedule.epoch``, ...)
    meta                one JSON string: the run's configuration, where the run stands (epoch, step,
                        batch within the epoch), minialex's random-generator state, the metrics so far

Written atomically by ``minialex.io.save`` (a temporary file in the same folder, then ``os.replace``):
a crash or a kill during the write leaves the previous checkpoint as it was.

``save_checkpoint`` writes, ``read_checkpoint`` reads and checks, ``Checkpoint.restore`` copies the
state into a model, an optimizer and a schedule. Every problem is a ``CheckpointError`` with a
one-line message that says what is wrong and what to do.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from minialex import io

__all__ = ["FORMAT", "Checkpoint", "CheckpointError", "save_checkpoint", "read_checkpoint"]

FORMAT = "minialex-checkpoint"
VERSION = 1
_SECTIONS = ("model.", "optim.", "schedule.")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not fit the model being trained."""


@dataclass
class Checkpoint:
    path: str
    meta: dict              # config, epoch, step, rng, metrics, ...
    model: dict             # state_dict: name -> array
    optim: dict
    schedule: dict

    @property
    def config(self) -> dict:
        return self.meta["config"]

    def restore(self, model, optimizer=None, schedule=None):
        """Copy the saved state into ``model`` (and ``optimizer``, ``schedule``): shapes must match."""
        own = dict(model.named_parameters())
        missing = [k for k in own if k not in self.model]
        unexpected = [k for k in self.model if k not in own]
        wrong = [k for k in own if k in self.model and tuple(self.model[k].shape) != own[k].shape]
        if missing or unexpected or wrong:
            what = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected else
                    f"{wrong[0]} is {tuple(self.model[wrong[0]].shape)} in the file but {own[wrong[0]].shape} "
                    "in the model")
            raise CheckpointError(f"{self.path} does not fit the model ({what}); it was saved from another "
                                  "model, number of classes or image size: resume it with its own settings")
        model.load_state_dict(self.model)
        try:
            if optimizer is not None:
                optimizer.load_state_dict(self.optim)
            if schedule is not None:
                schedule.load_state_dict(self.schedule)
        except (KeyError, ValueError, TypeError) as err:
            raise CheckpointError(f"{self.path}: the optimizer or schedule state does not fit ({err}); "
                                  "resume with the optimizer and schedule the run was started with") from err


def save_checkpoint(path, model, optimizer, schedule, meta: dict) -> str:
    """Write model, optimizer and schedule state plus ``meta`` (JSON-able) to ``path``, atomically."""
    arrays = {}
    for prefix, state in (("model.", model.state_dict()), ("optim.", optimizer.state_dict()),
                          ("schedule.", schedule.state_dict() if schedule is not None else {})):
        for key, value in state.items():
            arrays[prefix + key] = np.asarray(value)
    arrays["meta"] = np.array(json.dumps({"format": FORMAT, "version": VERSION, **meta}))
    return io.save(arrays, path)


def read_checkpoint(path) -> Checkpoint:
    """Read and check a file written by ``save_checkpoint``."""
    path = os.fspath(path)
    if os.path.isdir(path):
        hint = os.path.join(path, "checkpoint.npz")
        if os.path.exists(hint):
            path = hint
        else:
            raise CheckpointError(f"{path} is a folder without a checkpoint.npz; pass the path of a "
                                  "checkpoint.npz written by python -m minialex.train")
    if not os.path.exists(path):
        raise CheckpointError(f"no such file: {path}; pass the path of a checkpoint.npz written by "
                              "python -m minialex.train (it is in the run's --out folder)")
    try:
        arrays = io.load(None, path)
    except Exception as err:  # noqa: BLE001 - any failure to read means a corrupt file
        cause = err.__cause__ or err
        reason = " ".join(f"{type(cause).__name__}: {cause}".split())   # one line
        raise CheckpointError(f"{path} is corrupt or not a .npz file ({reason}); use another checkpoint, "
                              "or start a new run without --resume") from err
    if "meta" not in arrays:
        raise CheckpointError(f"{path} holds arrays but no training state (no 'meta' entry; weights saved "
                              "by minialex.io.save?); pass a checkpoint.npz written by python -m minialex.train")
    try:
        meta = json.loads(str(arrays.pop("meta")[()]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        if int(meta.get("version", 0)) > VERSION:
            raise ValueError(f"version {meta['version']} is newer than this minialex reads ({VERSION})")
        meta["config"], meta["epoch"], meta["step"]  # noqa: B018 - present?
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise CheckpointError(f"{path} is not a readable minialex checkpoint ({err}); pass a checkpoint.npz "
                              "written by python -m minialex.train") from err
    sections = {prefix: {} for prefix in _SECTIONS}
    for key, value in arrays.items():
        prefix = next((p for p in _SECTIONS if key.startswith(p)), None)
        if prefix is None:
            raise CheckpointError(f"{path}: unexpected entry {key!r}; pass a checkpoint.npz written by "
                                  "python -m minialex.train")
        sections[prefix][key[len(prefix):]] = value
    if not sections["model."]:
        raise CheckpointError(f"{path} holds no model weights; pass a checkpoint.npz written by "
                              "python -m minialex.train")
    return Checkpoint(path, meta, sections["model."], sections["optim."], sections["schedule."])
