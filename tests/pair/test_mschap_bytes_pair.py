"""Two Links with MS-CHAP-v2 and names or S= values holding bytes that are
not UTF-8: authentication works over the bytes, a bad S= fails the link with
pppd's exit 19, and nothing raises out of Link.receive."""

import pytest

from harness import Pair, make_settings
from userppp.config.secrets import Secrets
from userppp.exitcodes import ExitCode
from userppp.link import Phase

NAME = b"cl\xffi\xb5nt".decode("utf-8", "surrogateescape")   # as read from a file
PASSWORD = "v2-secret"


def mschap_pair():
    client = make_settings(user=NAME, password=PASSWORD)
    server = make_settings(auth=True, require_mschap_v2=True, name="srv")
    secrets = Secrets.from_text(chap=f'"{NAME}" srv "{PASSWORD}"\n')
    return Pair(client, server, secrets_b=secrets)


def both_network(pair):
    return lambda: (pair.a.link.phase == Phase.NETWORK
                    and pair.b.link.phase == Phase.NETWORK)


def test_name_with_ff_authenticates():
    pair = mschap_pair()
    pair.start()
    pair.run(20, until=both_network(pair))
    assert pair.a.link.phase == Phase.NETWORK and pair.b.link.phase == Phase.NETWORK


@pytest.mark.parametrize("byte", [b"\xff", b"\xb5"])
def test_bad_s_value_fails_with_exit_19(byte):
    pair = mschap_pair()

    def tamper(sender, frames):
        out = []
        for protocol, payload in frames:
            if sender == "B" and protocol == 0xC223 and payload[0] == 3:
                body = b"S=" + byte * 40 + b" M=welcome"
                payload = payload[:2] + (4 + len(body)).to_bytes(2, "big") + body
            out.append((protocol, payload))
        return out

    pair.tamper = tamper
    pair.start()
    pair.run(60, until=lambda: pair.a.terminated is not None)
    assert pair.a.terminated is not None
    assert pair.a.terminated.exit_code == ExitCode.AUTH_TOPEER_FAILED == 19
    assert "MS-CHAPv2 mutual authentication failed." in pair.a.text(0)
