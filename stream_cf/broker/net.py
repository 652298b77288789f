"""Local network checks for the broker: free ports, TCP accepts, an admin-client probe."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"
"""The local broker listens on this address only."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether a listening socket could be bound to ``127.0.0.1:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def broker_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """Whether a Kafka broker at ``bootstrap`` answers an admin request within ``timeout`` s."""
    from kafka import KafkaAdminClient  # noqa: PLC0415 - import kafka-python only when probing

    ms = max(int(timeout * 1000), 500)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="stream-cf-probe",
            request_timeout_ms=ms,
            bootstrap_timeout_ms=ms,
        )
    except Exception:  # noqa: BLE001 - any failure means "not answering yet"
        return False
    try:
        admin.describe_cluster()
    except Exception:  # noqa: BLE001
        return False
    finally:
        admin.close()
    return True


def accepts(port: int, timeout: float) -> bool:
    """Whether something accepts a TCP connection on ``127.0.0.1:port`` within ``timeout``."""
    try:
        with socket.create_connection((HOST, port), timeout=max(timeout, 0.05)):
            return True
    except OSError:
        return False
