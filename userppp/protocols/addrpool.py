"""IP addresses a server hands to its peers: the pool (``ip-pool A-B``) and the
allowed-addresses column of pap-secrets/chap-secrets.

:class:`AddressPool` is one object shared by every link of a process, so two
dial-in peers never get the same address: a link allocates one address
(:meth:`AddressPool.allocate`) when its IPCP needs one and releases it when
IPCP finishes or the line drops.

:class:`AllowedAddresses` holds pppd's rules for the fourth and later words
of a secrets entry (pppd's ``set_allowed_addrs`` and ``ip_addr_check``):

* no words, or ``-`` first: no address is allowed;
* ``*``: any address;
* ``a.b.c.d``: that address; ``a.b.c.d/n``: the subnet; ``/n+``: one address
  of the subnet, picked by the interface unit (unit 0 gets the first host);
* ``!`` before a word: that address or subnet is refused;
* the rules are tried in order and the first that matches decides; an address
  no rule matches is refused.

The first single-host address in the list is the one a server suggests to the
peer.  Host and network names are not looked up (this module does no I/O):
they are skipped with pppd's warning, as pppd skips a name it cannot resolve.
Loopback, multicast and class-E addresses are never allowed (pppd's
``bad_ip_adrs``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Hashable, Iterable, Optional


def address_value(text: str) -> Optional[int]:
    """The 32-bit value of a dotted quad, or None."""
    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def address_text(value: int) -> str:
    return str(ipaddress.IPv4Address(value & 0xFFFFFFFF))


def bad_address(value: int) -> bool:
    """pppd's bad_ip_adrs: loopback (127/8), multicast (224/4), class E (240/4)."""
    return (value >> 24) == 127 or (value >> 28) in (0xE, 0xF)


class PoolError(ValueError):
    pass


def parse_pool(text: str) -> tuple:
    """``10.0.5.10-10.0.5.50`` -> (first, last) as dotted quads (the option
    parser); a single address is a pool of one."""
    first, sep, last = text.partition("-")
    lo = address_value(first.strip())
    hi = address_value(last.strip()) if sep else lo
    if lo is None or hi is None:
        raise PoolError(f"invalid address range '{text}' (use FIRST-LAST)")
    if hi < lo:
        raise PoolError(f"address range '{text}' ends before it starts")
    if bad_address(lo) or bad_address(hi) or lo == 0:
        raise PoolError(f"address range '{text}' holds unusable addresses")
    if hi - lo >= 1 << 20:
        raise PoolError(f"address range '{text}' is too large (at most 1048576 addresses)")
    return address_text(lo), address_text(hi)


class AddressPool:
    """A range of addresses, one per link (the owner: any hashable, e.g. the
    link's IPCP handler).  Allocation is lowest-free-first, so it is
    deterministic; no clock or randomness is involved."""

    def __init__(self, first: str, last: str):
        lo, hi = address_value(first), address_value(last)
        if lo is None or hi is None or hi < lo:
            raise PoolError(f"invalid address pool {first}-{last}")
        self.first, self.last = lo, hi
        self._by_owner: dict = {}
        self._by_address: dict = {}

    @classmethod
    def from_text(cls, text: str) -> "AddressPool":
        return cls(*parse_pool(text))

    def __repr__(self) -> str:
        return (f"AddressPool({address_text(self.first)}-{address_text(self.last)}, "
                f"{len(self._by_address)} in use)")

    def __contains__(self, address: str) -> bool:
        value = address_value(address)
        return value is not None and self.first <= value <= self.last

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    @property
    def in_use(self) -> int:
        return len(self._by_address)

    def holder(self, address: str) -> Optional[Hashable]:
        value = address_value(address)
        return self._by_address.get(value)

    def held_by(self, owner: Hashable) -> Optional[str]:
        value = self._by_owner.get(owner)
        return None if value is None else address_text(value)

    def allocate(self, owner: Hashable, preferred: Optional[str] = None,
                 allowed=None) -> Optional[str]:
        """An address for ``owner``: the one it already holds, else
        ``preferred`` if that is in the pool, free and allowed, else the
        lowest free allowed address; None when the pool is exhausted.

        ``allowed(address) -> bool`` narrows the choice (the peer's secrets).
        Holding a different address already, an owner asking for
        ``preferred`` moves to it if it is free (and keeps the old one if not).
        """
        current = self._by_owner.get(owner)
        if preferred is not None:
            value = address_value(preferred)
            if value is not None and value == current:
                return preferred
            if (value is not None and self.first <= value <= self.last
                    and value not in self._by_address
                    and (allowed is None or allowed(address_text(value)))):
                self.release(owner)
                self._take(owner, value)
                return address_text(value)
        if current is not None:
            return address_text(current)
        for value in range(self.first, self.last + 1):
            if value in self._by_address or bad_address(value):
                continue
            if (value & 0xFF) in (0, 255) and self.first != self.last:
                continue        # skip network/broadcast-looking addresses
            if allowed is not None and not allowed(address_text(value)):
                continue
            self._take(owner, value)
            return address_text(value)
        return None

    def _take(self, owner, value):
        self._by_owner[owner] = value
        self._by_address[value] = owner

    def release(self, owner: Hashable) -> None:
        value = self._by_owner.pop(owner, None)
        if value is not None:
            self._by_address.pop(value, None)


@dataclass(frozen=True)
class _Rule:
    permit: bool
    base: int
    mask: int


class AllowedAddresses:
    """The addresses a peer authenticated by a secrets entry may use."""

    def __init__(self, rules: Iterable[_Rule] = (), suggested: Optional[str] = None,
                 warnings: Iterable[str] = ()):
        self.rules = tuple(rules)
        self.suggested = suggested
        self.warnings = tuple(warnings)

    def __repr__(self) -> str:
        return f"AllowedAddresses({len(self.rules)} rules, suggested={self.suggested})"

    @classmethod
    def from_words(cls, words: Iterable[str], unit: int = 0) -> "AllowedAddresses":
        rules, warnings, suggested = [], [], None
        for word in words:
            if word == "-":
                break
            if word == "*":
                rules.append(_Rule(True, 0, 0))
                break
            permit = not word.startswith("!")
            text = word if permit else word[1:]
            mask, offset = 0xFFFFFFFF, 0
            host, slash, length = text.partition("/")
            if slash:
                plus = length.endswith("+")
                digits = length[:-1] if plus else length
                if not digits.isdigit() or not 0 < int(digits) <= 32:
                    warnings.append(f"invalid address length {length} in auth. address list")
                    continue
                mask = (0xFFFFFFFF << (32 - int(digits))) & 0xFFFFFFFF
                if plus:
                    offset = unit + 1
            value = address_value(host)
            if value is None:
                warnings.append(f"unknown host {word} in auth. address list")
                continue
            if offset:
                if offset >= (~mask & 0xFFFFFFFF):
                    warnings.append(f"interface unit {unit} too large for subnet {text}")
                    continue
                value = (value & mask) + offset
                mask = 0xFFFFFFFF
            rules.append(_Rule(permit, value & mask, mask))
            if permit and mask == 0xFFFFFFFF and suggested is None:
                suggested = address_text(value)
        return cls(rules, suggested, warnings)

    def permits(self, address: str) -> bool:
        value = address_value(address)
        if value is None or value == 0 or bad_address(value):
            return False
        for rule in self.rules:
            if value & rule.mask == rule.base:
                return rule.permit
        return False
