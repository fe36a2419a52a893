"""Free TCP ports."""

import socket


def free_port(host="127.0.0.1"):
    """A TCP port on host that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()
