"""userppp: a userspace PPP stack (RFC 1661) with a small C core."""

__version__ = "0.1.0"
