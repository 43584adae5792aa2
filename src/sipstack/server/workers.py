"""``--workers N``: N server processes sharing the listening ports (SO_REUSEPORT).

The supervisor prepares what the workers share (the data directory: database schema and
nonce secret) before starting them, restarts a worker that dies (a bounded number of times
a minute), and on SIGINT/SIGTERM asks every worker to stop (SIGTERM, by PID), waits for
them to finish their requests in progress, and kills only those that do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import sys
import time
from multiprocessing.process import BaseProcess

from ..endpoint import run
from .app import Server, load_secret, open_data_store
from .config import ServerConfig
from .hook import load_routing

log = logging.getLogger("sipstack.server")

MAX_RESTARTS_PER_MINUTE = 5


def _worker_main(config: ServerConfig, index: int, log_level: int) -> None:
    logging.basicConfig(
        level=log_level,
        format=f"%(asctime)s %(levelname)s %(name)s[w{index + 1}]: %(message)s",
        stream=sys.stderr,
    )
    # Ctrl-C reaches the whole process group; the worker's own handler drains it.
    with contextlib.suppress(KeyboardInterrupt):
        run(Server(config, worker=index).run())


async def _prepare(config: ServerConfig) -> None:
    store = open_data_store(config.data_dir)
    await store.close()
    load_secret(config.data_dir)


def run_workers(config: ServerConfig) -> int:
    """Run ``config.workers`` worker processes until SIGINT/SIGTERM; the exit status."""
    if config.routing:
        load_routing(config.routing)  # fail here, once, rather than in every worker
    asyncio.run(_prepare(config))
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    workers: dict[int, BaseProcess] = {}
    restarts: list[float] = []
    stopping = False

    def start(index: int) -> None:
        process = context.Process(
            target=_worker_main, args=(config, index, level), name=f"sipstack-w{index + 1}"
        )
        process.start()
        workers[index] = process

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        for index in range(config.workers):
            start(index)
        log.info(
            "serving %s for %s with %d workers; data in %s",
            ", ".join(config.listen),
            ", ".join(config.domains),
            config.workers,
            config.data_dir,
        )
        while not stopping:
            time.sleep(0.2)
            for index, process in list(workers.items()):
                if process.is_alive() or stopping:
                    continue
                now = time.monotonic()
                restarts[:] = [t for t in restarts if now - t < 60]
                log.error("worker %d (pid %s) exited with %s", index + 1, process.pid, process.exitcode)
                if len(restarts) >= MAX_RESTARTS_PER_MINUTE:
                    log.error("workers keep dying: giving up")
                    stopping = True
                    status = 1
                    break
                restarts.append(now)
                start(index)
    finally:
        for process in workers.values():
            if process.is_alive() and process.pid is not None:
                process.terminate()  # SIGTERM to that PID: the worker drains and stops
        deadline = time.monotonic() + 10
        for process in workers.values():
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker pid %s did not stop: killing it", process.pid)
                process.kill()
                process.join(2)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")
    return status
