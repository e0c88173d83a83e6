"""``shunter serve``: run the gateway under uvicorn with one ``Settings`` object.

The settings travel as an object, not through the environment: ``AppFactory`` holds them and
uvicorn calls it in the serving process, or pickles it to each spawned worker with
``--workers N``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from gateway import httpguard, promdir
from gateway.settings import Settings


@dataclass(frozen=True)
class AppFactory:
    settings: Settings

    def __call__(self) -> Any:
        promdir.use(self.settings.prometheus_multiproc_dir)  # before gateway.metrics is imported
        from gateway.app import create_app

        return create_app(self.settings)


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM (30 s graceful drain); exits 3 when startup fails, as uvicorn does."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    with promdir.prepared(settings) as settings:
        config = uvicorn.Config(
            AppFactory(settings),
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            loop="auto",
            http=httpguard.protocol_path(),  # uvicorn's, plus a header-read timeout and a connection cap
            timeout_keep_alive=settings.keep_alive_timeout,
            timeout_graceful_shutdown=30,
            access_log=False,
        )
        server = uvicorn.Server(config)
        if settings.workers > 1:
            sock = config.bind_socket()
            # older uvicorn releases take the worker's entry point; newer ones build it themselves
            extra = {"target": server.run} if "target" in inspect.signature(Multiprocess).parameters else {}
            Multiprocess(config, sockets=[sock], **extra).run()
            return
        server.run()
        if not server.started:
            raise SystemExit(3)
