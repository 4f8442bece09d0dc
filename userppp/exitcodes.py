"""pppd's exit statuses (pppd(8), EXIT STATUS)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FATAL_ERROR = 1
    OPTION_ERROR = 2
    NOT_ROOT = 3
    NO_KERNEL_SUPPORT = 4
    USER_REQUEST = 5          # terminated by a signal
    LOCK_FAILED = 6
    OPEN_FAILED = 7
    CONNECT_FAILED = 8
    PTYCMD_FAILED = 9
    NEGOTIATION_FAILED = 10
    PEER_AUTH_FAILED = 11
    IDLE_TIMEOUT = 12
    CONNECT_TIME = 13
    CALLBACK = 14
    PEER_DEAD = 15            # lcp-echo-failure reached
    HANGUP = 16
    LOOPBACK = 17
    INIT_FAILED = 18
    AUTH_TOPEER_FAILED = 19
    TRAFFIC_LIMIT = 20
    CNID_AUTH_FAILED = 21
