"""The claimed sparsest models: ``experiments/winners/*.json``, read for the report and the viewer.

A winners file is one JSON object ``{"name", "target", "accuracy", "model_nnz", "config"}``: a
run config (retrained exactly by ``python -m experiments.train --config=FILE``) and the numbers
it reached, plus (files written by :func:`winner_doc`, i.e. ``python -m experiments.store
winner``) ``"numeric_path"``: the path the claimed numbers were computed on, so a retrain on
another path (another CPU vector ISA, kernel or library version) says why its numbers may
differ. :func:`load_winners` reads a folder of them; a file that is missing, not JSON or
malformed becomes a one-line problem naming it (the report shows it), never an exception.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Any, Mapping

from sparsejax.analysis import pareto

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "experiments", "winners")
SEARCH_NAMES = {"search": "search (phase 2)", "structured": "search (phase 1)"}


@dataclasses.dataclass(frozen=True)
class Winner:
    """One winners file: its claimed numbers, its resolved run config and that config's run id."""
    name: str
    path: str
    target: float
    accuracy: float
    model_nnz: int
    config: Mapping[str, Any]
    run_id: str

    @property
    def method(self) -> str:
        return str(self.config["method"])

    @property
    def init_name(self) -> str:
        return pareto.init_name(self.config.get("init"))

    @property
    def width(self) -> int | None:
        return pareto.trained_width(self.config)

    def method_label(self) -> str:
        """``search (phase 2)`` for the search's kinds, else the method's label (``SFP``)."""
        from sparsejax.analysis import flops
        return SEARCH_NAMES.get(self.method) or flops.METHOD_LABELS.get(self.method, self.method)

    def _shown_path(self) -> str:
        rel = os.path.relpath(self.path)
        return self.path if rel.startswith("..") else rel

    def retrain_command(self) -> str:
        return f"python -m experiments.train --config={self._shown_path()}"

    def view_command(self) -> str:
        return f"python -m experiments.view --winner={self._shown_path()}"


def _number(doc: Mapping[str, Any], key: str) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"needs a number {key!r}, got {value!r}")
    return float(value)


def _resolve(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The validated config; a fixed-init winner whose init file is not here (the paper's init
    files are never committed) keeps its stored content hash, which names the init in the run
    id, so it still loads; retraining it then stops with one line naming the missing file."""
    from sparsejax import config as config_lib
    from sparsejax.sweep import identity
    try:
        return config_lib.resolve(cfg)
    except ValueError as err:
        if str(err).startswith("init: not a file") and cfg.get("init_sha256"):
            return identity.resolve(cfg)
        raise


def read_winner(path: str) -> Winner:
    """One winners file; ValueError (one line, naming the file) when it cannot be used."""
    from sparsejax import config as config_lib
    from sparsejax.sweep import identity
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"winner file {path}: cannot be read as JSON ({' '.join(str(err).split())})") from None
    try:
        if not isinstance(doc, dict):
            raise ValueError(f"must hold a JSON object, got {type(doc).__name__}")
        target, acc, nnz = _number(doc, "target"), _number(doc, "accuracy"), _number(doc, "model_nnz")
        if not 0 < target <= 1 or not nnz.is_integer():
            raise ValueError(f"target must be in (0, 1] and model_nnz an integer, got {target}, {nnz}")
        if not isinstance(doc.get("config"), dict):
            raise ValueError("needs a run config object 'config'")
        cfg = _resolve(doc["config"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"winner file {path}: {' '.join(str(err).split())}") from None
    name = doc.get("name") if isinstance(doc.get("name"), str) else os.path.splitext(os.path.basename(path))[0]
    return Winner(name=name, path=path, target=target, accuracy=acc, model_nnz=int(nnz), config=cfg,
                  run_id=identity.run_id(cfg))


def winner_doc(record: Mapping[str, Any], name: str, target: float) -> dict[str, Any]:
    """The winners file of a store record: its run config as a full resolved config (the init
    file's content hash left out: it is recomputed from the file), its accuracy and model nnz,
    and its numeric path. ValueError when the record does not reach `target` or its config does
    not hash back to its id."""
    from sparsejax.config import RunConfig
    if not name or os.sep in name or name.startswith("."):
        raise ValueError(f"winner name {name!r}: must be a plain file stem")
    if not 0 < float(target) <= 1:
        raise ValueError(f"target must be in (0, 1], got {target}")
    acc = record.get("accuracy")
    if acc is None or record.get("diverged") or float(acc) <= float(target):
        raise ValueError(f"run {record.get('run_id')}: accuracy {acc} does not pass the target {target}")
    stored = {k: v for k, v in dict(record["config"]).items() if k != "init_sha256"}
    cfg = RunConfig.from_dict(stored)
    if cfg.run_id != record["run_id"]:
        raise ValueError(f"run {record['run_id']}: its config hashes to {cfg.run_id}")
    doc = {"name": name, "target": float(target), "accuracy": float(acc),
           "model_nnz": int(record["model_nnz"]), "config": cfg.to_dict()}
    if record.get("numeric_path"):
        doc["numeric_path"] = dict(record["numeric_path"])
    return doc


def load_winners(folder: str | None = None) -> tuple[list[Winner], list[str]]:
    """(winners sorted by target then nnz, problems): every ``*.json`` in `folder` (default the
    repository's ``experiments/winners``); each unusable file, or a missing folder, is one
    problem line instead of a winner."""
    folder = DEFAULT_DIR if folder is None else folder
    if not os.path.isdir(folder):
        return [], [f"winners folder {folder}: not found"]
    winners, problems = [], []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        try:
            winners.append(read_winner(path))
        except ValueError as err:
            problems.append(str(err))
    return sorted(winners, key=lambda w: (w.target, w.model_nnz, w.name)), problems
