"""Which malloc `rerankd serve` runs on.

glibc's malloc raises its mmap threshold each time a large block is freed, so a server whose tensors
change shape with every batch serves more and more of them from the heap, whose resident size only ever
grows to the largest mix seen: the RSS of a bf16 server crept up in steps for as long as it ran
(docs/reliability.md). jemalloc returns freed pages to the system after a short decay, and the RSS stays
flat. A library cannot swap the allocator of the interpreter it runs in: malloc is bound when the process
starts. So `rerankd serve` re-executes itself once, early, with jemalloc preloaded when the machine has
it (Debian/Ubuntu: `apt install libjemalloc2`), as PyTorch's own CPU launcher
(`torch.backends.xeon.run_cpu --enable-jemalloc`) and vLLM's CPU images do by LD_PRELOAD.
`RERANKD_ALLOCATOR=system` keeps glibc's; `RERANKD_ALLOCATOR=jemalloc` requires jemalloc.

Nothing here imports anything heavy: it runs before the CLI parses its arguments (after Python has
imported the CLI's own modules, ~0.3 s, which the re-executed process imports again).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ENV = "RERANKD_ALLOCATOR"
# Set in the re-executed process: the exec happened (or was tried), never again; its value is the library.
REEXEC_ENV = "RERANKD_ALLOCATOR_PRELOADED"
NAMES = ("libjemalloc.so.2", "libjemalloc.so")
ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")  # what a preload or the process's maps may name
DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
)
# Held blocked across the exec: one that arrives in between stays pending and reaches the server's
# early-signal recorder once it is installed (`release_signals`), so an early SIGTERM still exits 0.
HELD = (signal.SIGTERM, signal.SIGINT)


class AllocatorError(RuntimeError):
    """RERANKD_ALLOCATOR asks for what this machine cannot give."""


def find_jemalloc(dirs: Sequence[str] | None = None) -> str | None:
    """The jemalloc shared library on this machine: the environment's own lib/ first, then the system's."""
    roots = [str(Path(sys.prefix) / "lib"), *(dirs if dirs is not None else DIRS)]
    for root in roots:
        for name in NAMES:
            path = Path(root) / name
            if path.is_file():
                return str(path)
    return None


def loaded() -> str:
    """The malloc this process runs on: "jemalloc", "tcmalloc", "mimalloc" or "glibc"."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "unknown"
    for name in ALLOCATORS:
        if f"lib{name}" in maps:
            return name
    return "glibc"


def _choice(env: Mapping[str, str]) -> str:
    choice = env.get(ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "jemalloc", "system"):
        raise AllocatorError(f"{ENV} must be auto, jemalloc or system, got {env.get(ENV)!r}")
    return choice


def preload_env(
    argv: Sequence[str], env: Mapping[str, str], library: str | None, platform: str = sys.platform
) -> dict[str, str] | None:
    """The environment to re-execute `rerankd serve` with, or None to run on as it is."""
    if not (len(argv) > 1 and argv[1] == "serve") or REEXEC_ENV in env:
        return None
    choice = _choice(env)
    # Ray starts its own processes (raylet, workers) from this environment: not ours to preload into.
    ray = "--ray" in argv or env.get("RERANKD_RAY", "").strip().lower() in ("1", "true", "yes", "on")
    if ray and choice == "jemalloc":
        raise AllocatorError(f"{ENV}=jemalloc: Ray's processes are not preloaded; unset it to use --ray")
    if choice == "system" or ray:
        return None
    preloaded = env.get("LD_PRELOAD", "")
    if any(name in preloaded for name in ALLOCATORS):
        if choice == "jemalloc" and "jemalloc" not in preloaded:
            raise AllocatorError(f"{ENV}=jemalloc, but LD_PRELOAD already holds another allocator")
        return None  # the user chose an allocator already
    if platform != "linux":
        if choice == "jemalloc":
            raise AllocatorError(f"{ENV}=jemalloc: preloading an allocator is done on Linux only")
        return None
    if library is None:
        if choice == "jemalloc":
            raise AllocatorError(
                f"{ENV}=jemalloc, but no libjemalloc was found (install it, e.g. `apt install libjemalloc2`, "
                f"or set {ENV}=system)"
            )
        return None
    preload = " ".join(p for p in (library, preloaded) if p)
    return {**env, "LD_PRELOAD": preload, REEXEC_ENV: library}


def serve_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with the allocator `rerankd serve` would re-execute itself on (jemalloc preloaded where it
    would be): for a process compared with a server, such as the bench's offline rows, so that both run
    on the same malloc. Where `serve` would refuse to start, `env` as it is."""
    try:
        new = preload_env(["rerankd", "serve"], env, find_jemalloc())
    except AllocatorError:
        new = None
    if new is None:
        return dict(env)
    new.pop(REEXEC_ENV)
    return new


def preloaded_allocator(env: Mapping[str, str]) -> str:
    """The malloc a process started with `env` runs on: the allocator its LD_PRELOAD names, or "glibc"."""
    return next((name for name in ALLOCATORS if name in env.get("LD_PRELOAD", "")), "glibc")


def reexec_if_needed(argv: Sequence[str] | None = None) -> None:
    """Replace this process by itself with jemalloc preloaded, when `preload_env` says so (same pid)."""
    args = list(sys.argv if argv is None else argv)
    original = list(getattr(sys, "orig_argv", []) or [sys.executable, *sys.argv])
    # Only a process started as this command: `main()` called from another program (a test runner)
    # must not re-execute that program.
    if len(args) < 2 or original[-(len(args) - 1) :] != args[1:]:
        return
    env = preload_env(args, os.environ, find_jemalloc())
    if env is None or not sys.executable:  # an embedded interpreter has no executable to exec
        return
    sys.stdout.flush()
    sys.stderr.flush()
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        os.execve(sys.executable, [sys.executable, *original[1:]], env)
    except OSError:  # cannot exec (a frozen or odd interpreter): run on glibc's malloc
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
        if _choice(os.environ) == "jemalloc":
            raise AllocatorError(
                f"{ENV}=jemalloc, but this interpreter could not re-execute itself"
            ) from None


def release_signals() -> None:
    """In the re-executed process, once its own handlers are in place: deliver what arrived during the
    exec, check that jemalloc did load when it was required, and give the processes it starts the
    environment it was started with (no guard, no preload of ours)."""
    library = os.environ.pop(REEXEC_ENV, None)
    if library is None or not hasattr(signal, "pthread_sigmask"):
        return
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
    rest = os.environ.get("LD_PRELOAD", "").removeprefix(library).strip()
    if rest:
        os.environ["LD_PRELOAD"] = rest
    else:
        os.environ.pop("LD_PRELOAD", None)
    if _choice(os.environ) == "jemalloc" and loaded() != "jemalloc":
        raise AllocatorError(f"{ENV}=jemalloc, but {library} did not load (the dynamic loader refused it)")


def describe() -> str:
    """One line for the start-up log: what runs, and what to do when it is not jemalloc."""
    name = loaded()
    if (
        name == "glibc"
        and os.environ.get(ENV, "auto").strip().lower() != "system"
        and find_jemalloc() is None
    ):
        return (
            "allocator: glibc malloc (no libjemalloc found: RSS may creep up under traffic; "
            "install it, e.g. `apt install libjemalloc2`)"
        )
    return f"allocator: {name}"
