"""The service under uvicorn, profiled by cProfile from the moment it gets SIGUSR1 (after warm-up).

Run: `python -m bench.profiled_service PORT OUT.prof`; SIGUSR1 starts the profile, SIGINT stops the
server and writes it.
"""

from __future__ import annotations

import cProfile
import signal
import sys

import uvicorn

from service.app import create_app
from service.settings import Settings


def main(port: int, out: str) -> None:
    server = uvicorn.Server(
        uvicorn.Config(create_app(Settings()), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    profiler = cProfile.Profile()
    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    try:
        server.run()
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
