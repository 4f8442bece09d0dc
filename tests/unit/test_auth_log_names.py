"""Peer names in PAP/CHAP log lines are printed as pppd prints them with %q.

pppd 2.4.9 (upap.c, chap-new.c) logs "PAP peer authentication succeeded for
%q", "PAP peer authentication failed for %q", "Peer %q failed CHAP
authentication", "No CHAP secret found for authenticating %q" and "... us to
%q": the name is first cleaned with %v, then %q puts a backslash before each
backslash and double quote.  Seen on the real pppd in the VM
(tests/interop/test_auth_interop.py): a peer named WORKGROUP\\user is logged
as `PAP peer authentication succeeded for WORKGROUP\\\\user`.
"""


from userppp.config.secrets import Secrets
from userppp.protocols.authpolicy import AuthMethod
from userppp.protocols.chap import Chap
from userppp.protocols.pap import Pap, quoted
from fakes import Services, authreq, pkt  # noqa: E402

DOMAIN_USER = b"WORKGROUP\\user"          # one backslash on the wire
LOGGED = "WORKGROUP\\\\user"               # two in pppd's log line


def test_quoted_is_pppd_percent_q():
    assert quoted(DOMAIN_USER) == LOGGED
    assert quoted(b'say "hi"') == 'say \\"hi\\"'
    assert quoted(b"plain") == "plain"
    assert quoted(b"a\x01b") == "a^Ab"            # %v cleaning, nothing to quote


def pap_server(secret_line):
    s = Services(name="isp")
    s.secrets = Secrets.from_text(pap=secret_line)
    h = Pap(s)
    h.start_authenticator(0.0, AuthMethod.PAP)
    return s, h


def test_pap_success_and_failure_lines_quote_the_name():
    s, h = pap_server('"WORKGROUP\\\\user" isp s3cret *\n')
    h.receive(authreq(1, DOMAIN_USER, b"s3cret"), 1.0)
    assert (0, f"PAP peer authentication succeeded for {LOGGED}") in s.logs
    s, h = pap_server('"WORKGROUP\\\\user" isp s3cret *\n')
    h.receive(authreq(1, DOMAIN_USER, b"wrong"), 1.0)
    assert (0, f"PAP peer authentication failed for {LOGGED}") in s.logs


def test_chap_failure_and_missing_secret_lines_quote_the_name():
    for secrets, line in (('"WORKGROUP\\\\user" isp s3cret *\n',
                           f"Peer {LOGGED} failed CHAP authentication"),
                          ("", f"No CHAP secret found for authenticating {LOGGED}")):
        s = Services(name="isp")
        s.secrets = Secrets.from_text(chap=secrets)
        h = Chap(s)
        h.start_authenticator(0.0, AuthMethod.CHAP_MD5)
        [(_, challenge)] = s.sent
        response = bytes([16]) + bytes(16) + DOMAIN_USER      # a wrong MD5 value
        h.receive(pkt(2, challenge[1], response), 1.0)
        assert (0, line) in s.logs, s.logs


def test_chap_client_without_secret_quotes_the_server_name():
    s = Services(name="alice")
    h = Chap(s)
    h.start_authenticatee(0.0, AuthMethod.CHAP_MD5)
    h.receive(pkt(1, 7, bytes([16]) + bytes(16) + b'the "isp"'), 0.0)
    assert (0, 'No CHAP secret found for authenticating us to the \\"isp\\"') in s.logs
