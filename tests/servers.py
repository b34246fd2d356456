"""Stand-ins for misbehaving API servers, on 127.0.0.1 only."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class SilentServer:
    """A TCP endpoint on 127.0.0.1 that accepts connections and never answers: every
    request to it is in flight until the client gives up."""

    sock: socket.socket = field(default_factory=socket.socket)
    connections: list[socket.socket] = field(default_factory=list)
    accepted: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.connections.append(connection)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for connection in self.connections:
            connection.close()
