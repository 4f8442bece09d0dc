"""AuthPolicy: which methods we ask for and which we accept, as pppd decides."""

import pytest

from userppp.config.options import Settings
from userppp.config.secrets import Secrets
from userppp.protocols import authpolicy, chap, pap
from userppp.protocols.authpolicy import AuthConfigError, AuthMethod, AuthPolicy

M = AuthMethod
ALL = [M.MSCHAP_V2, M.MSCHAP, M.CHAP_MD5, M.PAP]
CHAPS = [M.MSCHAP_V2, M.MSCHAP, M.CHAP_MD5]


def settings(**values):
    s = Settings.from_tables([authpolicy.OPTIONS, pap.OPTIONS, chap.OPTIONS])
    for key, value in values.items():
        assert hasattr(s, key), key
        setattr(s, key, value)
    return s


BOTH = Secrets.from_text(pap="* us pw\n", chap="* us pw\n")


def policy(secrets=BOTH, **values):
    return AuthPolicy(settings(name="us", **values), secrets)


# ---------------------------------------------------------------- AuthMethod
def test_method_attributes():
    assert M.PAP.protocol == 0xC023 and M.PAP.algorithm is None
    assert M.CHAP_MD5.protocol == 0xC223 and M.CHAP_MD5.algorithm == 5
    assert M.MSCHAP.algorithm == 0x80 and M.MSCHAP_V2.algorithm == 0x81
    assert M.PAP.lcp_data == bytes.fromhex("c023")
    assert M.CHAP_MD5.lcp_data == bytes.fromhex("c22305")
    assert M.MSCHAP.lcp_data == bytes.fromhex("c22380")
    assert M.MSCHAP_V2.lcp_data == bytes.fromhex("c22381")
    assert [m.label for m in ALL] == ["MS-CHAP-v2", "MS-CHAP", "CHAP", "PAP"]


@pytest.mark.parametrize("method", ALL)
def test_from_lcp_data_round_trip(method):
    assert M.from_lcp_data(method.lcp_data) is method


@pytest.mark.parametrize("data", ["", "c0", "c02300", "c223", "c22306", "c2238100", "c227"])
def test_from_lcp_data_unknown(data):
    assert M.from_lcp_data(bytes.fromhex(data)) is None


def test_seed_log_auth_option():
    # seed: rcvd [LCP ConfReq ... <auth chap 80> ...]
    assert M.from_lcp_data(bytes.fromhex("c22380")) is M.MSCHAP


# ---------------------------------------------------------------- required_methods
def test_default_requires_nothing():
    assert policy().required_methods() == []
    assert not policy().auth_required


def test_auth_alone_asks_for_everything_we_have_secrets_for():
    assert policy(auth=True).required_methods() == ALL
    chap_only = Secrets.from_text(chap="* us pw\n")
    assert policy(chap_only, auth=True).required_methods() == CHAPS
    pap_only = Secrets.from_text(pap="bob us pw\n")
    assert policy(pap_only, auth=True).required_methods() == [M.PAP]


def test_secrets_for_another_server_do_not_count():
    other = Secrets.from_text(pap="* other pw\n", chap="* us pw\n")
    assert policy(other, auth=True).required_methods() == CHAPS


def test_remotename_restricts_the_client():
    s = Secrets.from_text(pap="alice us pw\n", chap="bob us pw\n")
    assert policy(s, auth=True, remotename="bob").required_methods() == CHAPS
    assert policy(s, auth=True, remotename="alice").required_methods() == [M.PAP]


@pytest.mark.parametrize("dest, method", [
    ("require_pap", M.PAP), ("require_chap", M.CHAP_MD5),
    ("require_mschap", M.MSCHAP), ("require_mschap_v2", M.MSCHAP_V2)])
def test_require_one(dest, method):
    p = policy(**{dest: True})
    assert p.auth_required
    assert p.required_methods() == [method]


def test_require_several_in_pppd_order():
    p = policy(require_pap=True, require_chap=True, require_mschap_v2=True)
    assert p.required_methods() == [M.MSCHAP_V2, M.CHAP_MD5, M.PAP]


def test_require_implies_auth_even_with_noauth():
    p = policy(auth=False, require_chap=True)
    assert p.required_methods() == [M.CHAP_MD5]


def test_refuse_does_not_change_what_we_require():
    p = policy(auth=True, refuse_pap=True, refuse_chap=True, refuse_mschap=True,
               refuse_mschap_v2=True)
    assert p.required_methods() == ALL


def test_required_without_any_secret_still_asks_and_check_fails():
    p = policy(Secrets(), require_pap=True)
    assert p.required_methods() == [M.PAP]            # never silently "no auth"
    with pytest.raises(AuthConfigError, match="required to authenticate itself"):
        p.check()
    policy(Secrets()).check()                          # nothing required: fine
    policy(auth=True).check()


def test_check_names_remote():
    with pytest.raises(AuthConfigError, match=r"The remote system \(peer1\) is required"):
        policy(Secrets(), auth=True, remotename="peer1").check()


def test_require_pap_with_only_chap_secret():
    p = policy(Secrets.from_text(chap="* us pw\n"), require_pap=True, require_chap=True)
    assert p.required_methods() == [M.CHAP_MD5]


# ---------------------------------------------------------------- accepting
def test_accepts_with_password():
    p = policy(Secrets(), password="pw")
    assert p.preferred_self_methods() == ALL
    assert all(p.accepts_to_authenticate_with(m) for m in ALL)
    assert not p.accepts_to_authenticate_with(None)


def test_accepts_nothing_without_password_or_secret():
    p = policy(Secrets())
    assert p.preferred_self_methods() == []
    assert not any(p.accepts_to_authenticate_with(m) for m in ALL)


def test_accepts_with_secret_for_our_user():
    s = Secrets.from_text(chap="me * pw\n")
    p = policy(s, user="me")
    assert p.preferred_self_methods() == CHAPS
    assert not p.accepts_to_authenticate_with(M.PAP)
    # user defaults to name
    assert policy(s).preferred_self_methods() == []              # we are "us", not "me"
    assert AuthPolicy(settings(name="me"), s).preferred_self_methods() == CHAPS


def test_accepts_secret_must_match_remotename_when_given():
    s = Secrets.from_text(pap="me isp1 pw\n")
    assert policy(s, user="me").accepts_to_authenticate_with(M.PAP)
    assert policy(s, user="me", remotename="isp1").accepts_to_authenticate_with(M.PAP)
    assert not policy(s, user="me", remotename="isp2").accepts_to_authenticate_with(M.PAP)


@pytest.mark.parametrize("dest, method", [
    ("refuse_pap", M.PAP), ("refuse_chap", M.CHAP_MD5),
    ("refuse_mschap", M.MSCHAP), ("refuse_mschap_v2", M.MSCHAP_V2)])
def test_refuse_one(dest, method):
    p = policy(Secrets(), password="pw", **{dest: True})
    assert not p.accepts_to_authenticate_with(method)
    assert p.preferred_self_methods() == [m for m in ALL if m is not method]


def test_refuse_all_chap_leaves_pap_for_nak():
    p = policy(Secrets(), password="pw", refuse_chap=True, refuse_mschap=True,
               refuse_mschap_v2=True)
    assert p.preferred_self_methods() == [M.PAP]


def test_names():
    p = AuthPolicy(settings(name="host", user="u", remotename="r", password="x"), Secrets())
    assert (p.our_name, p.user, p.remote_name) == ("host", "u", "r")
    p = AuthPolicy(settings(name="domain\\my_login"), Secrets())
    assert p.user == "domain\\my_login"


def test_option_declarations():
    names = {o.name: o for o in authpolicy.OPTIONS}
    for n in ["name", "user", "remotename", "password", "auth", "noauth", "require-pap",
              "require-chap", "require-mschap", "require-mschap-v2", "refuse-pap",
              "refuse-chap", "refuse-mschap", "refuse-mschap-v2", "pap-secrets",
              "chap-secrets"]:
        assert n in names
    assert names["password"].secret
    assert names["noauth"].dest == "auth" and names["noauth"].value is False
    s = settings()
    assert s.pap_secrets == "/etc/ppp/pap-secrets"
    assert s.chap_secrets == "/etc/ppp/chap-secrets"
    assert (s.pap_restart, s.pap_max_authreq, s.pap_timeout) == (3, 10, 30)
    assert (s.chap_restart, s.chap_max_challenge, s.chap_interval) == (3, 10, 0)
