"""Run the ``fairshift`` command under cProfile in every thread, and dump merged stats.

``python -m bench.scale.profiled OUT.prof run --kubeconfig ...`` is ``fairshift run ...``
with a CPU-time profiler (``time.thread_time``) in the main thread (kopf's event loop) and
in every thread started later (kopf runs synchronous handlers, hence every reconcile, in a
thread pool). On exit, SIGTERM included, the stats of all threads are merged into
``OUT.prof`` (``pstats`` format).
``python -m cProfile`` alone would only see the main thread.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

PROFILES: list[cProfile.Profile] = []
LOCK = threading.Lock()


def start_in_thread(*_: Any) -> None:
    """The first profile event of a new thread: replace this hook by a real profiler."""
    sys.setprofile(None)
    profile = cProfile.Profile(time.thread_time)
    with LOCK:
        PROFILES.append(profile)
    profile.enable()


def dump(path: str) -> None:
    """Merge every thread's stats into ``path``."""
    with LOCK:
        profiles = list(PROFILES)
    merged: pstats.Stats | None = None
    for profile in profiles:
        profile.disable()  # stops the calling thread's profiler; others are idle by now
        profile.create_stats()
        if not getattr(profile, "stats", None):
            continue
        if merged is None:
            merged = pstats.Stats(profile)
        else:
            merged.add(profile)
    if merged is not None:
        merged.dump_stats(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print("usage: python -m bench.scale.profiled OUT.prof run [fairshift run options]")
        return 2
    out, command = args[0], args[1:]
    from fairshift.cli import main as fairshift_main

    threading.setprofile(start_in_thread)
    main_profile = cProfile.Profile(time.thread_time)
    with LOCK:
        PROFILES.append(main_profile)
    main_profile.enable()
    try:
        return fairshift_main(command)
    finally:
        main_profile.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        dump(out)


if __name__ == "__main__":
    raise SystemExit(main())
