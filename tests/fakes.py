"""A stand-in for the Link as protocol handlers see it (LinkServices), for
tests that drive one handler alone."""

import random

from userppp.config.options import Settings
from userppp.config.secrets import Secrets
from userppp.protocols import authpolicy, chap, pap
from userppp.wire import encode_control as pkt  # noqa: F401  (code, id, data) -> packet


class Services:
    """Records what the handler sends, emits and logs."""

    def __init__(self, seed=0, **values):
        self.rng = random.Random(seed)
        self.settings = Settings.from_tables([authpolicy.OPTIONS, pap.OPTIONS, chap.OPTIONS])
        for k, v in values.items():
            setattr(self.settings, k, v)
        self.secrets = Secrets()
        self.sent, self.events, self.logs = [], [], []

    def send(self, protocol, payload):
        self.sent.append((protocol, payload))

    def emit(self, event):
        self.events.append(event)

    def log(self, message, level=0):
        self.logs.append((level, message))


def authreq(ident, user, password):
    """A PAP Authenticate-Request."""
    return pkt(1, ident, bytes([len(user)]) + user + bytes([len(password)]) + password)
