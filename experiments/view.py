r"""Write the interactive sparse-model viewer as one self-contained HTML file.

  python -m experiments.view --store=S.sqlite --run=ID [--compare=ID2] [--out=FILE.html] [--serve]
  python -m experiments.view --npz=MODEL.npz [--compare=OTHER.npz] [--dataset=cubist_spiral] [--out=...]
  python -m experiments.view --preset=demo --run=ID   # reads out/demo/store.sqlite, writes into out/demo
  python -m experiments.view --winner=experiments/winners/beyond_95.json [--store=S.sqlite]

With ``--store`` the run (and ``--compare``) are run ids of that store; with ``--npz`` they are
``.npz`` files written by ``sparsejax.mlp.save_npz`` (zero weights count as pruned); with
``--winner`` the model is a claimed winner (``experiments/winners/*.json``): its run is read from
``--store`` when stored there, else retrained from the file's config (seconds to a minute on a
CPU), and ``--compare`` is a run id of ``--store``. The page is
written to ``--out`` (default ``out/view_<run>.html``, or ``out/<preset>/view_<run>.html``), never
into the current folder unasked; it needs
no server and no network; ``--serve`` additionally serves that one page on 127.0.0.1 for browsers
that restrict file:// pages (Ctrl-C stops). Bad input gives one line on stderr and exit status 2,
with nothing written; --dry_run checks the input and prints the page's path without writing it.
"""
from __future__ import annotations

import http.server
import os
import re
import sys
from typing import Sequence

from absl import flags

from sparsejax import data
from sparsejax.sweep import flags as sweep_flags
from sparsejax.viz import viewer

sweep_flags.define_common_flags(
    store_help="Sweep store file to read the run(s) from (default with --preset: out/<preset>/store.sqlite).",
    preset_help="Read out/<preset>/store.sqlite and write into out/<preset> (a launcher's preset, e.g. demo).",
    dry_run_help="Check the input and print the page's path; write nothing.")
_RUN = flags.DEFINE_string("run", None, "Run id in --store.")
_NPZ = flags.DEFINE_string("npz", None, "A network saved with sparsejax.mlp.save_npz (instead of --store/--run).")
_WINNER = flags.DEFINE_string("winner", None, "A winners file (experiments/winners/*.json): show its network "
                              "(from --store when stored there, else retrained).")
_COMPARE = flags.DEFINE_string("compare", None,
                               "Second model shown side by side: a run id of --store, or an .npz with --npz.")
_DATASET = flags.DEFINE_string("dataset", None,
                               "Dataset for points and accuracy (default: the run's config, else cubist_spiral).")
_OUT = flags.DEFINE_string("out", None, "Output HTML file (default: out/view_<run>.html; out/<preset>/... with --preset).")
_SAMPLE = flags.DEFINE_integer("sample", viewer.SAMPLE_SIZE, "Data points embedded for the live accuracy.")
_SERVE = flags.DEFINE_boolean("serve", False, "After writing, serve the page on 127.0.0.1 (Ctrl-C stops).")
_PORT = flags.DEFINE_integer("port", 8000, "Port for --serve, 0..65535 (0: any free port).")
FLAGS = flags.FLAGS


class CliError(Exception):
    """Bad command-line input: reported as one line on stderr."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:80] or "model"


def run(store: str | None, run_id: str | None, npz: str | None, compare: str | None, dataset: str | None,
        out: str | None, sample: int, preset: str | None = None, dry_run: bool = False,
        port: int | None = None, winner: str | None = None) -> str:
    """Check the flags, build the page and write it (not with ``dry_run``); returns the path."""
    if sample < 1:
        raise CliError(f"--sample must be >= 1, got {sample}")
    if port is not None and not 0 <= port <= 65535:
        raise CliError(f"--port: must be in [0, 65535], got {port}")
    if preset is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", preset):
        raise CliError(f"--preset: {preset!r} is not a preset name (letters, digits, _ and -)")
    folder = sweep_flags.preset_out(preset)
    if preset and not npz and not winner:
        store = store or os.path.join(folder, "store.sqlite")
    if store:
        if not os.path.exists(store):
            raise CliError(f"--store: {store}: no such file")
        sweep_flags.check_store_path(store)
    if dataset is not None and dataset not in data.DATASETS:
        raise CliError(f"--dataset={dataset!r}: allowed {', '.join(sorted(data.DATASETS))}")
    if winner:
        if npz or run_id:
            raise CliError("--winner is the model: do not combine it with --npz or --run")
        if not os.path.isfile(winner):
            raise CliError(f"--winner: {winner}: no such file")
    elif bool(store) == bool(npz):
        raise CliError("give exactly one of --store (with --run), --npz or --winner")
    if store and not run_id and not winner:
        raise CliError("--run is required with --store: the id of the run to show")
    if npz and run_id:
        raise CliError("--run needs --store (with --npz the file is the model)")
    if winner and dry_run:  # the file is checked; its network may need a retraining, not done here
        path = out or os.path.join(folder, f"view_{_slug(viewer.winner_title(viewer.read_winner(winner)))}.html")
        sweep_flags.check_output_file("out", path)
        return path
    models = viewer.load_models(store=store, run_id=run_id, npz=npz, compare=compare, dataset=dataset, winner=winner)
    path = out or os.path.join(folder, f"view_{_slug(models[0].name)}.html")
    sweep_flags.check_output_file("out", path)
    page = viewer.build_html(models, sample_size=sample)
    if dry_run:
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    viewer.write_html(path, page)  # atomic, mode 0644
    return path


def serve(path: str, port: int) -> None:
    """Serve the page (and nothing else) on 127.0.0.1:``port`` until interrupted."""
    name = os.path.basename(path)
    body = open(path, "rb").read()

    class PageHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.split("?")[0] not in ("/", "/" + name):
                self.send_error(404, "only the viewer page is served here")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", port), PageHandler) as httpd:
        print(f"serving http://127.0.0.1:{httpd.server_address[1]}/{name} (Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise ValueError(f"arguments: unexpected {' '.join(argv[1:])!r}; use flags (--store/--run, --npz or --winner)")
    try:
        path = run(FLAGS.store, _RUN.value, _NPZ.value, _COMPARE.value, _DATASET.value, _OUT.value, _SAMPLE.value,
                   preset=FLAGS.preset, dry_run=FLAGS.dry_run, port=_PORT.value if _SERVE.value else None,
                   winner=_WINNER.value)
    except (CliError, viewer.ViewerInputError) as err:
        raise ValueError(str(err)) from None
    if FLAGS.dry_run:
        print(f"would write {path}")
        return 0
    print(f"wrote {path}", file=sys.stderr, flush=True)
    if _SERVE.value:
        serve(path, _PORT.value)
    return 0


if __name__ == "__main__":
    sweep_flags.run(main)
