"""Train a population of masked MLPs and write one JSON line per model, or retrain one claimed
run (a winners file) and say whether its numbers are reproduced; the launcher is
``python -m experiments.train``, whose docstring says what each row holds.
"""
from __future__ import annotations

import itertools
import json
import math
import os

from sparsejax.config import reaches
from sparsejax.sweep import flags as sweep_flags
from sparsejax.sweep.flags import parse_floats, parse_ints, parse_strs

MAX_WIDTH = 1024
PRESETS = {
    # the README's example: three densities of random masks at width 16, two seeds
    "readme": {"widths": "16", "masks": "random", "densities": "0.25,0.5,1.0", "lrs": "0.1",
               "schedules": "cosine", "seeds": "0,1", "epochs": 5},
    # a few seconds: width 4, half and all weights, one seed, one epoch
    "smoke": {"widths": "4", "masks": "random", "densities": "0.5,1.0", "lrs": "0.1", "schedules": "cosine",
              "seeds": "0", "epochs": 1},
}

SETTINGS = ("widths", "masks", "densities", "lrs", "schedules", "seeds", "epochs", "output")


def with_default_output(values: dict, preset: str | None) -> dict:
    """``values`` with the default output file of ``preset`` (out/<preset>/train.jsonl)."""
    s = dict(values)
    if s["output"] is None:
        s["output"] = os.path.join(sweep_flags.preset_out(preset), "train.jsonl")
    return s


def build_configs(s: dict) -> list[dict]:
    """The resolved run configs of the settings; ValueError naming the flag on bad input."""
    from sparsejax import runs, train
    widths = parse_ints("widths", s["widths"], min_value=1, max_value=MAX_WIDTH)
    if len(widths) not in (1, 3):
        raise ValueError(f"--widths: give one width or three (one per hidden layer), got {s['widths']}")
    widths = widths * 3 if len(widths) == 1 else widths
    lrs = parse_floats("lrs", s["lrs"], positive=True)
    scheds = parse_strs("schedules", s["schedules"], train.SCHEDULES)
    seeds = parse_ints("seeds", s["seeds"], min_value=0)
    if int(s["epochs"]) < 1:
        raise ValueError(f"--epochs: must be >= 1, got {s['epochs']}")
    if s["masks"] == "dense":
        masks = [{"method": "dense"}]
    else:
        dens = parse_floats("densities", s["densities"], positive=True)
        if any(d > 1 for d in dens):
            raise ValueError(f"--densities: must be in (0, 1], got {s['densities']}")
        # density 1 keeps every weight: that is the dense network, not a "random" mask
        masks = [{"method": "dense"} if d == 1 else {"method": "random", "density": d} for d in dens]
    configs = []
    for m, lr, sched, seed in itertools.product(masks, lrs, scheds, seeds):
        cfg = dict(m, widths=widths, lr=lr, schedule=sched, seed=seed, epochs=int(s["epochs"]))
        try:
            configs.append(runs.validate(cfg))
        except ValueError as e:
            field, _, why = str(e).partition(":")
            flag = {"density": "densities", "budget": "densities", "lr": "lrs", "schedule": "schedules",
                    "seed": "seeds", "widths": "widths", "epochs": "epochs"}.get(field.strip(), field.strip())
            raise ValueError(f"--{flag}: {why.strip() or e}") from None
    return configs


def _finite(value: float | None) -> float | None:
    """A float for JSON, or None (JSON null) when it is NaN or infinite (JSON has no NaN)."""
    return float(value) if value is not None and math.isfinite(float(value)) else None


def jsonl_row(rec: dict) -> dict:
    """The JSON line of one record: metrics (null where not finite; then diverged), config."""
    from sparsejax.sweep import identity
    acc, loss = _finite(rec.get("accuracy")), _finite(rec.get("loss"))
    return {"run_id": rec["run_id"], "accuracy": acc, "loss": loss,
            "weight_nnz": int(rec["weight_nnz"]), "model_nnz": int(rec["model_nnz"]),
            "diverged": bool(rec["diverged"]) or acc is None or loss is None,
            "config": identity.resolve(rec["config"])}


def write_jsonl(path: str, rows: list[dict]) -> None:
    """All rows at once through a temporary file and a rename: never a half-written file."""
    from sparsejax import fileio
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fileio.atomic_write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))


def train_rows(configs: list[dict], args: sweep_flags.SweepArgs) -> list[dict]:
    """Train the configs (through the store when given); one JSONL row per config, in order."""
    from sparsejax.sweep import plan as plan_lib
    from sparsejax.sweep import progress, runner
    from sparsejax.sweep.store import Store
    plan = plan_lib.Plan(configs)
    with progress.Job("train") as job:
        if args.store:
            runner.run_sweep(plan, args.store, population_size=args.population_size,
                             chunk_steps=args.chunk_steps)
            with Store(args.store, create=False) as st:
                by_id = {r["run_id"]: r for r in st.records(plan.ids)}
            return [jsonl_row(by_id[rid]) for rid in plan.ids]
        job.claim(len(plan), plan_lib.cost(plan), 0, 0)
        by_id = {}
        for pop in plan_lib.groups(plan, args.population_size):
            for rec in runner.train_population(pop, args.chunk_steps, progress=job.population(len(pop))):
                by_id[rec["run_id"]] = jsonl_row(rec)
            job.population_done(len(pop), plan_lib.cost(pop))
    return [by_id[rid] for rid in plan.ids]


def load_claim(path: str) -> tuple[dict, dict | None]:
    """(resolved run config, winners entry or None) from ``--config=path``; ValueError naming
    the flag on anything else."""
    from sparsejax import config as config_lib
    if not os.path.isfile(path):
        raise ValueError(f"--config: not a file: {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"--config: {path!r} is not a JSON file ({' '.join(str(err).split())})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"--config: {path!r} must hold a JSON object, got {type(doc).__name__}")
    claim = doc if "config" in doc else None
    raw = doc["config"] if claim is not None else doc
    if claim is not None:
        for key in ("accuracy", "model_nnz"):
            if not isinstance(claim.get(key), (int, float)) or isinstance(claim.get(key), bool):
                raise ValueError(f"--config: winners file {path!r} needs a number {key!r}")
    try:
        return config_lib.resolve(raw), claim
    except (ValueError, TypeError) as err:
        raise ValueError(f"--config: {' '.join(str(err).split())}") from None


def retrain(path: str) -> dict:
    """Retrain the run of ``--config=path`` (library entry point for tests): its JSON line."""
    from sparsejax import runs
    cfg, claim = load_claim(path)
    (rec,) = runs.run_population([cfg])
    row = jsonl_row(rec)
    kind = cfg["method"]
    out = {"run_id": rec["run_id"], "accuracy": row["accuracy"], "model_nnz": row["model_nnz"],
           "weight_nnz": row["weight_nnz"], "method": kind,
           "init": "random" if cfg["init"] == "random" else os.path.basename(cfg["init"]),
           "widths": list(cfg["widths"]), "diverged": row["diverged"],
           "numeric_path": rec.get("numeric_path")}
    if claim is not None:
        out.update(name=claim.get("name"), target=claim.get("target"), claimed_accuracy=claim["accuracy"],
                   claimed_model_nnz=claim["model_nnz"],
                   reproduced=bool(row["accuracy"] is not None and abs(row["accuracy"] - claim["accuracy"]) <= 1e-6
                                   and row["model_nnz"] == claim["model_nnz"]))
        if isinstance(claim.get("numeric_path"), dict):  # what differs from the claim's path ([]: none)
            from sparsejax.sweep import numeric_path as numeric_path_lib
            out["numeric_path_differences"] = numeric_path_lib.differences(claim["numeric_path"],
                                                                           rec.get("numeric_path") or {})
    return out


def run(s: dict, args: sweep_flags.SweepArgs) -> list[dict]:
    """Train the settings' models (``s``: launcher values, output included), write the JSONL and
    print the best rows; with ``args.dry_run`` only the counts. Returns the rows."""
    output = sweep_flags.check_output_file("output", s["output"])
    configs = build_configs(s)
    from sparsejax.sweep import plan as plan_lib
    plan = plan_lib.shard(plan_lib.Plan(configs), args.num_shards, args.shard_index)
    if args.dry_run:
        print(f"runs: total={len(plan)}; cost: model-steps total={plan_lib.cost(plan)}; would write {output}")
        return []
    rows = train_rows(list(plan.configs), args)
    write_jsonl(output, rows)
    print(f"trained {len(rows)} models; wrote {output}")
    ok = [r for r in rows if not r["diverged"]]
    for r in sorted(ok, key=lambda r: (-r["accuracy"], r["model_nnz"]))[:5]:
        c = r["config"]
        print(f"  acc {r['accuracy']:.4f}  model nnz {r['model_nnz']:4d}  weight nnz {r['weight_nnz']:4d}  "
              f"{c['method']} density={c.get('density')} lr={c['lr']} {c['schedule']} seed={c['seed']}  "
              f"id={r['run_id']}")
    if len(ok) < len(rows):
        print(f"  {len(rows) - len(ok)} models diverged (accuracy/loss null in the JSONL)")
    for target in (0.95, 0.995):
        hits = [r for r in ok if reaches(r["accuracy"], target)]
        if hits:
            r = min(hits, key=lambda r: r["model_nnz"])
            print(f"sparsest above {target:.1%}: {r['model_nnz']} nnz ({r['accuracy']:.2%}), run {r['run_id']}")
        else:
            print(f"no model above {target:.1%}")
    return rows


