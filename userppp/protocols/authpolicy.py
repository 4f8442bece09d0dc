"""Who authenticates whom, and how: the answers LCP needs (pppd's auth.c).

:class:`AuthMethod` names the four methods and their LCP
Authentication-Protocol option data.  :class:`AuthPolicy` reads the
options below and the secrets tables and tells LCP

* which methods to ask the peer to use (``required_methods``), in pppd's
  preference order MS-CHAP-v2, MS-CHAP, CHAP-MD5, PAP;
* whether we are willing to prove ourselves with a method the peer asks for
  (``accepts_to_authenticate_with``) and what to suggest in a Nak
  (``preferred_self_methods``).

pppd semantics (auth_check_options / auth_reset):

* ``require-X`` asks the peer to authenticate with X and implies ``auth``;
  ``auth`` without any ``require-X`` asks for every method.  In both cases
  methods for which we hold no suitable secret (a pap-secrets entry, or a
  chap-secrets entry, whose server is our name) are dropped.  When that
  leaves nothing although authentication is required, pppd refuses to start
  ("The remote system is required to authenticate itself but I couldn't
  find any suitable secret..."): :meth:`AuthPolicy.check` raises that error,
  and ``required_methods`` keeps the unfiltered list so that the peer is
  still asked (and fails) rather than let in unauthenticated.
* ``refuse-X`` only concerns authenticating ourselves to the peer.  We agree
  to X if it is not refused and we have a ``password`` or a secret whose
  client is our ``user`` (and whose server is ``remotename`` when given).
* our name (``name``) is what we send in CHAP challenges and look up as the
  server in the secrets; ``user`` (default: ``name``) is what we send when
  authenticating ourselves.  pppd defaults ``name`` to the host name; the
  core does no I/O, so the driver fills ``settings.name`` when it is None.
"""

from __future__ import annotations

import enum
from typing import Optional

from userppp.config.options import flag, text

PPP_PAP = 0xC023
PPP_CHAP = 0xC223


class AuthConfigError(Exception):
    """Authentication is required but cannot be carried out (pppd exits 1)."""


class AuthMethod(enum.Enum):
    MSCHAP_V2 = ("MS-CHAP-v2", PPP_CHAP, 0x81)
    MSCHAP = ("MS-CHAP", PPP_CHAP, 0x80)
    CHAP_MD5 = ("CHAP", PPP_CHAP, 0x05)
    PAP = ("PAP", PPP_PAP, None)

    def __init__(self, label: str, protocol: int, algorithm: Optional[int]):
        self.label = label
        self.protocol = protocol
        self.algorithm = algorithm

    @property
    def lcp_data(self) -> bytes:
        """The data of LCP option 3 (Authentication-Protocol)."""
        data = self.protocol.to_bytes(2, "big")
        if self.algorithm is not None:
            data += bytes([self.algorithm])
        return data

    @property
    def is_chap(self) -> bool:
        return self.protocol == PPP_CHAP

    @property
    def secrets_kind(self) -> str:
        return "chap" if self.is_chap else "pap"

    @classmethod
    def from_lcp_data(cls, data: bytes) -> Optional["AuthMethod"]:
        data = bytes(data)
        if data == b"\xc0\x23":
            return cls.PAP
        if len(data) == 3 and data[:2] == b"\xc2\x23":
            for method in cls:
                if method.algorithm == data[2]:
                    return method
        return None

    @classmethod
    def from_chap_algorithm(cls, algorithm: int) -> Optional["AuthMethod"]:
        for method in cls:
            if method.is_chap and method.algorithm == algorithm:
                return method
        return None

    def __str__(self) -> str:
        return self.label


# pppd's order of preference (CHAP digests MS-v2 > MS > MD5, then PAP).
PREFERENCE = (AuthMethod.MSCHAP_V2, AuthMethod.MSCHAP, AuthMethod.CHAP_MD5,
              AuthMethod.PAP)

_REQUIRE_DEST = {
    AuthMethod.PAP: "require_pap",
    AuthMethod.CHAP_MD5: "require_chap",
    AuthMethod.MSCHAP: "require_mschap",
    AuthMethod.MSCHAP_V2: "require_mschap_v2",
}
_REFUSE_DEST = {
    AuthMethod.PAP: "refuse_pap",
    AuthMethod.CHAP_MD5: "refuse_chap",
    AuthMethod.MSCHAP: "refuse_mschap",
    AuthMethod.MSCHAP_V2: "refuse_mschap_v2",
}

OPTIONS = [
    text("name", "name", help="Set local name for authentication", metavar="NAME"),
    text("user", "user", help="Set name for auth with peer", metavar="NAME"),
    text("remotename", "remotename", help="Set remote name for authentication",
         metavar="NAME"),
    text("password", "password", secret=True,
         help="Password for authenticating us to the peer (on the command line it "
              "is visible to other users in /proc/PID/cmdline and ps: use pap-secrets "
              "or chap-secrets, or an options file only root can read)",
         metavar="PASSWORD"),
    flag("auth", "auth", True, default=False,
         help="Require authentication from peer"),
    flag("noauth", "auth", False,
         help="Don't require peer to authenticate"),
    flag("require-pap", "require_pap", default=False,
         help="Require PAP authentication from peer", aliases=("+pap",)),
    flag("require-chap", "require_chap", default=False,
         help="Require CHAP authentication from peer", aliases=("+chap",)),
    flag("require-mschap", "require_mschap", default=False,
         help="Require MS-CHAP authentication from peer", aliases=("+mschap",)),
    flag("require-mschap-v2", "require_mschap_v2", default=False,
         help="Require MS-CHAPv2 authentication from peer",
         aliases=("+mschap-v2",)),
    flag("refuse-pap", "refuse_pap", default=False,
         help="Don't agree to authenticate to peer with PAP", aliases=("-pap",)),
    flag("refuse-chap", "refuse_chap", default=False,
         help="Don't agree to authenticate to peer with CHAP", aliases=("-chap",)),
    flag("refuse-mschap", "refuse_mschap", default=False,
         help="Don't agree to authenticate to peer with MS-CHAP",
         aliases=("-mschap",)),
    flag("refuse-mschap-v2", "refuse_mschap_v2", default=False,
         help="Don't agree to authenticate to peer with MS-CHAPv2",
         aliases=("-mschap-v2",)),
    text("pap-secrets", "pap_secrets", default="/etc/ppp/pap-secrets",
         help="File of PAP secrets (userppp extension)", metavar="FILE"),
    text("chap-secrets", "chap_secrets", default="/etc/ppp/chap-secrets",
         help="File of CHAP/MS-CHAP secrets (userppp extension)", metavar="FILE"),
]


def _get(settings, dest, default=None):
    value = getattr(settings, dest, None)
    return default if value is None else value


class AuthPolicy:
    """pppd's authentication policy over a Settings and a Secrets."""

    def __init__(self, settings, secrets=None):
        from userppp.config.secrets import Secrets
        self.settings = settings
        self.secrets = secrets if secrets is not None else Secrets()

    # -- names -------------------------------------------------------------
    @property
    def our_name(self) -> str:
        return _get(self.settings, "name", "")

    @property
    def user(self) -> str:
        """The name we authenticate ourselves as (pppd: defaults to name)."""
        return _get(self.settings, "user", None) or self.our_name

    @property
    def remote_name(self) -> str:
        return _get(self.settings, "remotename", "")

    @property
    def password(self) -> str:
        return _get(self.settings, "password", "")

    # -- what we ask of the peer -----------------------------------------------
    def explicitly_required(self) -> list:
        return [m for m in PREFERENCE if _get(self.settings, _REQUIRE_DEST[m], False)]

    @property
    def auth_required(self) -> bool:
        return bool(_get(self.settings, "auth", False)) or bool(self.explicitly_required())

    def _candidates(self) -> list:
        if not self.auth_required:
            return []
        return self.explicitly_required() or list(PREFERENCE)

    def can_verify(self, method: AuthMethod) -> bool:
        """We hold a secret with which a peer could pass ``method``."""
        client = self.remote_name or None
        return self.secrets.has(method.secrets_kind, client, self.our_name)

    def required_methods(self) -> list:
        """Methods we ask the peer to use, most preferred first; [] = none."""
        candidates = self._candidates()
        usable = [m for m in candidates if self.can_verify(m)]
        return usable or candidates

    def check(self) -> None:
        """Raise AuthConfigError (pppd's words) when auth can't be done."""
        candidates = self._candidates()
        if candidates and not any(self.can_verify(m) for m in candidates):
            who = (f"The remote system ({self.remote_name})" if self.remote_name
                   else "The remote system")
            raise AuthConfigError(
                f"{who} is required to authenticate itself\n"
                "but I couldn't find any suitable secret (password) for it "
                "to use to do so.")

    # -- what we agree to do for the peer ---------------------------------------
    def refused(self, method: AuthMethod) -> bool:
        return bool(_get(self.settings, _REFUSE_DEST[method], False))

    def has_own_secret(self, method: AuthMethod) -> bool:
        if self.password:
            return True
        server = self.remote_name or None
        return self.secrets.has(method.secrets_kind, self.user, server)

    def accepts_to_authenticate_with(self, method: Optional[AuthMethod]) -> bool:
        if method is None:
            return False
        return not self.refused(method) and self.has_own_secret(method)

    def preferred_self_methods(self) -> list:
        return [m for m in PREFERENCE if self.accepts_to_authenticate_with(m)]

    # -- secrets for the handlers -------------------------------------------------
    def own_secret(self, method: AuthMethod, server: Optional[str]) -> Optional[str]:
        """Our secret for proving ourselves to ``server`` (None if none)."""
        if self.password:
            return self.password
        entry = self.secrets.lookup(method.secrets_kind, self.user, server or None)
        return None if entry is None else entry.secret

    def peer_entry(self, method: AuthMethod, peer_name: str):
        """The secrets entry a peer called ``peer_name`` must match."""
        return self.secrets.lookup(method.secrets_kind, peer_name, self.our_name)
