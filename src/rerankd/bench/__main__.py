"""`python -m rerankd.bench`: the command, or (internal) one variant's worker process."""

from __future__ import annotations

import sys

import typer

from rerankd.bench import bench
from rerankd.bench.runner import worker_main

if not worker_main(sys.argv[1:]):
    typer.run(bench)
