"""Garbage-collector policy for Corral's long-running processes.

CPython's collections run inside whatever allocates, so while one runs the event loop, and every
stream on the replica, waits. Measured on a replica streaming to 400 sessions (2-vCPU machine):

* a full (generation 2) collection walked about 250,000 objects in 120-160 ms of CPU, and the
  default thresholds ran one every few seconds under load;
* most of those objects exist from startup on (modules, classes, functions, compiled
  statements) and never become garbage.

So, once startup is done, what exists is frozen (moved to a permanent generation collections
never walk), and the first threshold is raised from 700 to 20,000 allocations: young
collections run far less often, and full ones become rare (see :data:`THRESHOLDS`). The first
requests still create many long-lived objects (modules imported on first use, compiled
statements, prepared-statement caches); right after the freeze those make full collections
frequent (60-90 ms each in the first minute), so what exists after a warm-up minute is frozen
too. That second freeze does not collect first: by then the replica may be serving, and a full
collection of its heap stalled every stream for up to 0.8 s (1,000 live sessions). The price is
that cyclic garbage alive at that moment is never freed (at most what one young generation
holds, once). Cyclic garbage otherwise waits a little longer to be freed; reference counting
frees everything else at once, as before.
"""

from __future__ import annotations

import asyncio
import gc

#: (generation 0 allocations, generation 0 runs per generation 1, generation 1 runs per 2).
#: Generation 1 is collected every 4th young collection, not every 20th: what it walks is what
#: survived since its last run, and with 1,000 live sessions 20 rounds of survivors (stream
#: tails, in-flight waits) took it 180-250 ms, a stall of every stream; every 4th, 30-110 ms.
#: Full collections come as often as before (every 400 young ones).
THRESHOLDS = (20_000, 4, 100)
#: Seconds after startup when what the first requests created is frozen as well.
WARMUP_SECONDS = 60.0


def tune_for_serving(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Call once the process is ready to serve: collect startup garbage, freeze the rest; with
    ``loop``, once more after the warm-up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    if loop is not None:
        loop.call_later(WARMUP_SECONDS, gc.freeze)
