"""CBCP (Microsoft Callback Control Protocol): pppd's packet text byte for
byte, the seed's exchange, both roles, retransmission, loss and malformed
packets, and the two roles joined in memory."""

from hypothesis import given, settings as hsettings, strategies as st
import pytest

from userppp.events import CallbackRequested
from userppp.protocols.cbcp import (Cbcp, CallbackAgreed, CallbackDeclined, CallbackFailed,
                                    describe_parts, log_line, parse_options, OPTIONS)
from userppp.wire import encode_control as pkt

from test_ipcp import Pair, Services, seed_lines

SEED_REQUEST = pkt(1, 1, bytes.fromhex("0102") + bytes.fromhex("0205000100"))
SEED_RESPONSE_OPTION = bytes.fromhex("020B0501353535313131 00".replace(" ", ""))
SEED_RESPONSE = pkt(2, 1, SEED_RESPONSE_OPTION)
SEED_ACK = pkt(3, 1, SEED_RESPONSE_OPTION)


def caller(**values):
    values.setdefault("callback", "555111")
    s = Services(**values)
    h = Cbcp(s)
    s.handler = h
    return s, h


def answerer(**values):
    values.setdefault("callback_offer", ["user"])
    s = Services(**values)
    h = Cbcp(s)
    s.handler = h
    return s, h


# ---------------------------------------------------------------------------
# printer (tests/vectors/seed-trace.txt lines 33, 40, 41)

def test_seed_lines_byte_for_byte():
    assert log_line("rcvd", SEED_REQUEST) == \
        "rcvd [CBCP Request id=0x1 < NoCallback> 02 05 00 01 00]"
    assert log_line("sent", SEED_RESPONSE) == \
        "sent [CBCP Response id=0x1 < UserDefined delay = 5 number = 555111>] " \
        "35 35 35 31 31 31 00"
    assert log_line("rcvd", SEED_ACK) == \
        "rcvd [CBCP Ack id=0x1 < UserDefined delay = 5 number = 555111>] " \
        "35 35 35 31 31 31 00"
    assert Cbcp.describe(SEED_ACK) == "CBCP Ack id=0x1 < UserDefined delay = 5 number = 555111>"


def test_printer_odd_packets():
    assert describe_parts(pkt(2, 7, bytes.fromhex("030305"))) == \
        ("CBCP Response id=0x7 < AdminDefined delay = 5>", "")
    assert describe_parts(pkt(9, 2, b"\x01\x02")) == ("CBCP code=0x9 id=0x2 01 02", "")
    assert describe_parts(pkt(1, 1, bytes.fromhex("0902"))) == \
        ("CBCP Request id=0x1 < option=0x9>", "")
    assert describe_parts(pkt(1, 1, bytes.fromhex("0109"))) == ("CBCP Request id=0x1", "")
    assert describe_parts(b"\x01\x01\x00\x09\x00") == ("CBCP", " 01 01 00 09 00")
    assert describe_parts(b"") == ("CBCP", "")
    long = pkt(1, 1, bytes.fromhex("02") + bytes([45, 5, 1]) + b"9" * 40 + b"\0")
    inside, after = describe_parts(long)
    assert inside.endswith("number = " + "9" * 40 + ">") and after.endswith(" ...")
    weird = pkt(2, 1, bytes([2, 8, 5, 1]) + b"\x1b[2" + b"\0")
    assert "\\033[2" in describe_parts(weird)[0]


@given(st.binary(max_size=80))
@hsettings(max_examples=300, deadline=None)
def test_printer_never_raises(data):
    for payload in (data, pkt(1, 1, data), pkt(2, 1, data), pkt(3, 1, data)):
        inside, after = describe_parts(payload)
        assert inside.startswith("CBCP") and "\n" not in inside + after


def test_option_values():
    names = {o.name: o for o in OPTIONS}
    assert names["callback"].parse("555111") == "555111"
    for bad in ("", "5" * 251, "55\n5"):
        with pytest.raises(Exception):
            names["callback"].parse(bad)
    assert names["callback-offer"].parse("user") == "user"
    assert names["callback-offer"].parse("0123") == "0123"
    assert Services().settings.callback_delay == 5


# ---------------------------------------------------------------------------
# caller

def test_seed_exchange_as_caller():
    s, h = caller(debug=1)
    h.lower_up(0.0)
    h.open(1.0)
    s.received(SEED_REQUEST)
    h.receive(SEED_REQUEST, 1.0)
    assert s.sent == [(0xC029, SEED_RESPONSE)]
    assert SEED_RESPONSE[4:] == bytes.fromhex("020B0501353535313131" "00")
    s.received(SEED_ACK)
    h.receive(SEED_ACK, 1.1)
    assert s.events == [CallbackRequested("555111", 5)]
    # pppd's debug lines of the seed, in order (lines 24-25, 31, 33-42).
    assert s.texts() == [
        "cbcp_lowerup", "want: 14", "cbcp_open",
        "rcvd [CBCP Request id=0x1 < NoCallback> 02 05 00 01 00]",
        "length: 7", "no callback allowed", "length: 5", "user callback allowed",
        "cbcp_resp cb_type=6", "cbcp_resp CONF_USER",
        "sent [CBCP Response id=0x1 < UserDefined delay = 5 number = 555111>] "
        "35 35 35 31 31 31 00",
        "rcvd [CBCP Ack id=0x1 < UserDefined delay = 5 number = 555111>] "
        "35 35 35 31 31 31 00",
        "peer will call: 555111"]
    # ... which are the seed's own, from cbcp_lowerup to "peer will call".
    seed = seed_lines(501, lambda m: True)
    seed = seed[seed.index("cbcp_lowerup"):seed.index("peer will call: 555111") + 1]
    assert s.texts() == [m for m in seed if "CHAP" not in m]
    assert h.next_timer() is None


def test_caller_delay_and_admin_and_no_callback_choices():
    s, h = caller(callback_delay=30)
    h.open(0.0)
    h.receive(SEED_REQUEST, 0.0)
    assert s.sent[-1][1][4:] == bytes([2, 11, 30, 1]) + b"555111\0"
    s, h = caller()
    h.open(0.0)
    h.receive(pkt(1, 4, bytes.fromhex("030300")), 0.0)      # administrator's number
    assert s.sent[-1][1] == pkt(2, 4, bytes.fromhex("030305"))
    h.receive(pkt(3, 4, bytes.fromhex("030305")), 0.5)
    assert s.events == [CallbackRequested("", 5)]
    s, h = caller()
    h.open(0.0)
    h.receive(pkt(1, 2, bytes.fromhex("0102")), 0.0)        # only "no callback"
    assert s.sent[-1][1] == pkt(2, 2, bytes.fromhex("010300"))
    assert s.events == [CallbackDeclined()] and h.next_timer() is None
    h.receive(pkt(1, 3, bytes.fromhex("0102")), 3.0)        # retransmitted Request
    assert s.sent[-1][1] == pkt(2, 3, bytes.fromhex("010300"))
    assert s.events == [CallbackDeclined()]


def test_caller_with_nothing_acceptable_fails():
    s, h = caller()
    h.open(0.0)
    h.receive(pkt(1, 1, bytes.fromhex("040300")), 0.0)  # a list only
    assert s.sent == [] and s.events == [CallbackFailed("no acceptable callback offered")]


def test_caller_answers_retransmitted_request_with_its_new_id():
    s, h = caller()
    h.open(0.0)
    h.receive(SEED_REQUEST, 0.0)
    again = pkt(1, 2, SEED_REQUEST[4:])
    h.receive(again, 3.0)
    assert s.sent[-1][1] == pkt(2, 2, SEED_RESPONSE_OPTION)
    h.receive(SEED_ACK, 3.1)                 # Ack of the first: stale id, refused
    assert h.stats["bad_id"] == 1 and not s.events
    h.receive(pkt(3, 2, SEED_RESPONSE_OPTION), 3.2)
    assert s.events == [CallbackRequested("555111", 5)]


def test_caller_refuses_an_ack_that_does_not_match():
    s, h = caller()
    h.open(0.0)
    h.receive(SEED_REQUEST, 0.0)
    for bad in (pkt(3, 1, bytes([2, 11, 5, 1]) + b"555999\0"),   # another number
                pkt(3, 1, bytes.fromhex("030305")),               # another type
                pkt(3, 1, b""),                                    # nothing
                pkt(3, 1, b"\x02\x30")):                          # malformed
        h.receive(bad, 0.5)
    assert not s.events and h.stats["bad_ack"] == 4
    h.receive(pkt(3, 1, bytes([2, 11, 9, 1]) + b"555111\0"), 0.6)  # server's own delay
    assert s.events == [CallbackRequested("555111", 9)]


def test_caller_retransmits_response_then_gives_up():
    s, h = caller(cbcp_max_transmits=3, cbcp_restart=2)
    h.open(0.0)
    h.receive(SEED_REQUEST, 0.0)
    now = 0.0
    while h.next_timer() is not None:
        now = h.next_timer()
        h.handle_timer(now)
    assert [p for _, p in s.sent] == [SEED_RESPONSE] * 3
    assert now == 6.0 and s.events == [CallbackFailed("no CBCP Ack from the peer")]


def test_unexpected_and_malformed_packets_are_counted():
    s, h = caller()
    h.open(0.0)
    for junk in (b"", b"\x01", b"\x01\x01\x00\x09", pkt(2, 1, SEED_RESPONSE_OPTION),
                 pkt(7, 1, b""), pkt(1, 1, b""), pkt(1, 1, b"\x02\x01"),
                 pkt(1, 1, b"\x02\x05\x00\x01\x35"), pkt(3, 1, SEED_RESPONSE_OPTION)):
        h.receive(junk, 0.0)
    assert s.sent == [] and s.events == []
    assert h.stats["malformed"] == 6 and h.stats["unexpected"] == 3


@given(st.binary(max_size=64))
@hsettings(max_examples=300, deadline=None)
def test_garbage_never_raises(data):
    for make in (caller, answerer):
        s, h = make()
        h.open(0.0)
        for code in (1, 2, 3, 4):
            h.receive(pkt(code, 1, data), 0.0)
        h.receive(data, 0.0)
        h.handle_timer(100.0)


def test_parse_options():
    assert [o.type for o in parse_options(SEED_REQUEST[4:])] == [1, 2]
    assert parse_options(SEED_RESPONSE_OPTION)[0].number == b"555111"
    assert parse_options(b"\x02\x05\x00\x01\x35") is None
    assert parse_options(b"\x01") is None and parse_options(b"") == []


# ---------------------------------------------------------------------------
# answerer

def test_answerer_request_ack_and_repeat():
    s, h = answerer(callback_offer=["user", "0123456"], callback_delay=7)
    h.lower_up(0.0)
    h.open(0.0)
    request = pkt(1, 1, bytes([2, 5, 7, 1, 0]) + bytes([3, 3, 7]))
    assert s.sent == [(0xC029, request)]
    # pppd prints the first option only and does not step over its number,
    # so the hex dump starts at the number's NUL (and ends past the bracket).
    assert log_line("sent", request) == "sent [CBCP Request id=0x1 < UserDefined delay = 7 " \
        "number = > 00 03 03] 07"
    h.receive(SEED_RESPONSE, 1.0)
    assert s.sent[-1][1] == SEED_ACK
    assert s.events == [CallbackAgreed("555111", 5, "user")] and h.next_timer() is None
    h.receive(SEED_RESPONSE, 4.0)           # our Ack was lost: Ack again, once more
    assert s.sent[-1][1] == SEED_ACK and len(s.events) == 1
    h.receive(pkt(2, 1, bytes.fromhex("030305")), 4.0)   # a different choice now
    assert h.stats["bad_response"] == 1 and len(s.sent) == 3


def test_answerer_admin_only():
    s, h = answerer(callback_offer=["0123456"])
    h.open(0.0)
    assert s.sent[-1][1] == pkt(1, 1, bytes([3, 3, 5]))
    h.receive(SEED_RESPONSE, 0.5)           # user-specified was not offered
    assert h.stats["bad_response"] == 1 and not s.events
    h.receive(pkt(2, 1, bytes.fromhex("030305")), 0.6)
    assert s.events == [CallbackAgreed("0123456", 5, "admin")]
    assert s.sent[-1][1] == pkt(3, 1, bytes.fromhex("030305"))


def test_answerer_refuses_bad_responses():
    s, h = answerer()
    h.open(0.0)
    for bad in (pkt(2, 9, SEED_RESPONSE_OPTION),            # wrong id
                pkt(2, 1, bytes.fromhex("010300")),          # no callback: not offered
                pkt(2, 1, bytes([2, 5, 5, 1, 0])),           # empty number
                pkt(2, 1, bytes([2, 6, 5, 2, 0x35, 0])),     # not a PSTN number
                pkt(2, 1, bytes([2, 6, 5, 1, 0x07, 0])),     # unprintable number
                pkt(2, 1, b"\x02\x09"),                      # malformed
                pkt(1, 1, SEED_REQUEST[4:]), pkt(3, 1, SEED_RESPONSE_OPTION)):
        h.receive(bad, 0.5)
    assert not s.events and len(s.sent) == 1
    assert h.stats["bad_id"] == 1 and h.stats["bad_response"] == 4 and \
        h.stats["malformed"] == 1 and h.stats["unexpected"] == 2


def test_answerer_retransmits_request_then_fails():
    s, h = answerer(cbcp_max_transmits=4)
    h.open(10.0)
    while h.next_timer() is not None:
        h.handle_timer(h.next_timer())
    assert len(s.sent) == 4 and len({p for _, p in s.sent}) == 1
    assert s.events == [CallbackFailed("no CBCP Response from the peer")]


def test_no_role_logs_nothing_on_lower_up():
    s = Services()
    h = Cbcp(s)
    h.lower_up(0.0)
    assert h.role is None and s.logs == []


# ---------------------------------------------------------------------------
# both roles joined in memory

def _pair(drop=0.0, seed=1, caller_values=None, answer_values=None):
    pair = Pair(lambda s, n: Cbcp(s), dict({"callback": "555111"}, **(caller_values or {})),
                dict({"callback_offer": ["user"]}, **(answer_values or {})),
                drop=drop, seed=seed)
    for h in (pair.ha, pair.hb):
        h.lower_up(pair.now)
    pair.ha.open(pair.now)
    pair.hb.open(pair.now)
    return pair


def test_pair_agrees_on_the_callers_number():
    pair = _pair(caller_values={"callback_delay": 12})
    pair.run(30)
    assert pair.a.events == [CallbackRequested("555111", 12)]
    assert pair.b.events == [CallbackAgreed("555111", 12, "user")]
    assert "peer will call: 555111" in pair.a.texts()


def test_pair_over_a_lossy_wire():
    # 35% of the packets lost each way: retransmission on both sides (which
    # pppd lacks) still gets both ends to the same agreement, every time.
    for seed in range(20):
        pair = _pair(drop=0.35, seed=seed)
        pair.run(200)
        assert pair.a.events == [CallbackRequested("555111", 5)], seed
        assert pair.b.events == [CallbackAgreed("555111", 5, "user")], seed


def test_callback_exit_is_carried_for_the_link():
    assert caller(callback_exit=True)[1].exit_after_agreement is True
    assert caller()[1].exit_after_agreement is False
