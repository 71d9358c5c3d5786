"""When the registry packs several queued calls into one Ray task (PACK_* in
runtime/constants.py): a policy over how long each function version's calls have
run. Pure: no Ray, no actor state beyond its own numbers."""

from __future__ import annotations

from rayfn.runtime.constants import PACK_MAX_CALLS, PACK_MAX_RUN_S, PACK_SPREAD

Version = tuple[str, str, int]  # (app, function, version): LoadedFunction.key

# Weight of the newest run in the smoothed run time: a few short runs make it forget
# a slow one (a worker's first call on a busy machine), a few slow ones stop packing.
SMOOTHING = 0.2


class PackPolicy:
    """How many queued calls of a function version go in the next task."""

    def __init__(self) -> None:
        self._run_time: dict[Version, float] = {}  # smoothed seconds per call
        # Versions whose pack crashed a worker: one call per task from then on, so the
        # call that crashes does so alone.
        self._off: set[Version] = set()

    def observe(self, version: Version, seconds: float) -> None:
        """A call of ``version`` ran for ``seconds``."""
        smoothed = self._run_time.get(version)
        self._run_time[version] = (
            seconds if smoothed is None else smoothed + (seconds - smoothed) * SMOOTHING
        )

    def crashed(self, version: Version) -> None:
        """A pack of ``version`` took its worker down: pack it no more."""
        self._off.add(version)

    def forget(self, app: str) -> None:
        """``app`` was redeployed or stopped: its versions' numbers are done with."""
        self._run_time = {v: t for v, t in self._run_time.items() if v[0] != app}
        self._off = {v for v in self._off if v[0] != app}

    def size(self, version: Version, can_pack: bool, queued: int) -> int:
        """One, unless the version's calls are known to be short and enough of them
        wait: then up to PACK_MAX_CALLS, leaving PACK_SPREAD packs' worth per pack in
        the queue, so a short queue still spreads over many workers."""
        run_time = self._run_time.get(version)
        if not can_pack or run_time is None or run_time > PACK_MAX_RUN_S or version in self._off:
            return 1
        return max(1, min(PACK_MAX_CALLS, queued // PACK_SPREAD))
