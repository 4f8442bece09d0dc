"""A SOCK_SEQPACKET socket pair standing in for a TUN device in tests that
need a file descriptor with packet boundaries (the data path's loop in the
C core and its twin: tests/unit/test_path_twin.py, the ``path`` fuzz target)."""

import socket


def tun_pair():
    """(our end, the host's end), both non-blocking, with room for a few MiB
    of packets."""
    ours, host = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in (ours, host):
        end.setblocking(False)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return ours, host


def drain(sock, most=None) -> list:
    """Every packet waiting on ``sock`` (at most ``most``)."""
    packets = []
    while most is None or len(packets) < most:
        try:
            packets.append(sock.recv(70000))
        except BlockingIOError:
            break
    return packets
