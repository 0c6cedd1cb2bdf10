"""Drive the real cloud-init KVP reporting handler (tests/interop.rs).

    python3 cloudinit_publish.py POOL COUNT BURST PAUSE_MS

Creates cloudinit.reporting.handlers.HyperVKvpReportingHandler on POOL (its
constructor truncates POOL when its mtime is older than the boot time), then
publishes COUNT events, BURST at a time with PAUSE_MS between bursts (the
handler's thread appends each burst under one flock), flushes, and prints
one JSON line: the key prefix of this handler's events, the count, and
when publishing started and ended (seconds since the epoch).
COUNT 0 only constructs the handler (the boot-time truncation).
"""

import json
import sys
import time

from cloudinit.reporting import events
from cloudinit.reporting.handlers import HyperVKvpReportingHandler


def main():
    pool, count, burst, pause_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    handler = HyperVKvpReportingHandler(kvp_file_path=pool)
    start = time.time()
    for i in range(count):
        handler.publish_event(
            events.ReportingEvent("start", "interop/ev%d" % i, "event %d of %d" % (i, count))
        )
        if burst and (i + 1) % burst == 0:
            time.sleep(pause_ms / 1000.0)
    handler.flush()
    end = time.time()
    print(json.dumps({"prefix": handler.event_key_prefix, "count": count, "start": start, "end": end}))


if __name__ == "__main__":
    main()
