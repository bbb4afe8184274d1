"""`rerankd bench`: the benchmark's own command (`rerankd.bench`), registered here like the others."""

from __future__ import annotations

from rerankd.bench import bench

__all__ = ["bench"]
