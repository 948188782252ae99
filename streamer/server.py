"""The uvicorn server, which starts the downloads' shutdown clock when a stop signal arrives."""

from __future__ import annotations

from types import FrameType

import uvicorn

from streamer.lifecycle import Lifecycle


class Server(uvicorn.Server):
    """uvicorn's server, which also starts the downloads' shutdown clock on SIGTERM or SIGINT.

    uvicorn stops accepting connections and waits for running responses. The downloads read from
    the lifecycle how long they may still run (STREAMER_SHUTDOWN_GRACE_SECONDS), then end as
    failed downloads, so the process exits well inside a platform's SIGTERM-to-SIGKILL window.
    """

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler only records; the event loop acts on it.
        self.lifecycle.begin_shutdown()
        super().handle_exit(sig, frame)
