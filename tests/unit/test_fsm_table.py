"""The automaton's table against RFC 1661 section 4.1, cell by cell.

The RFC table is in tests/vectors/rfc1661-state-table.txt in the RFC's own
layout; it is parsed here independently of userppp/fsm.py.  Each cell is
then also *executed*: an Automaton is put in the cell's state, given the
cell's event, and must perform exactly the cell's actions and land in the
cell's state.
"""

from pathlib import Path
import random
import re

import pytest

from userppp.fsm import (EVENTS, TRANSITIONS, Automaton, AutomatonConfig,
                         NegotiationSpec, State, Verdict)
from userppp.wire import Code, ControlPacket, decode_control

VECTOR = Path(__file__).parent.parent / "vectors" / "rfc1661-state-table.txt"


def rfc_cells() -> dict:
    cells = {}
    block_states = None
    for line in VECTOR.read_text().splitlines():
        if line.startswith("#") or "|" not in line:
            continue
        left, right = line.split("|", 1)
        left = left.strip()
        if left == "" and re.fullmatch(r"[\s\d]+", right) and right.strip():
            block_states = [int(n) for n in right.split()]
            continue
        if left not in EVENTS:
            continue
        entries = right.split()
        assert len(entries) == len(block_states), line
        for state, entry in zip(block_states, entries):
            cells[(left, state)] = entry
    assert len(cells) == len(EVENTS) * 10
    return cells


def parse_cell(entry: str):
    if entry == "-":
        return None
    actions, _, target = entry.rpartition("/")
    return (tuple(actions.split(",")) if actions else (),
            int(re.sub(r"[rpx]", "", target)))


CELLS = rfc_cells()


@pytest.mark.parametrize("event,state", sorted(CELLS))
def test_table_cell_matches_rfc(event, state):
    expected = parse_cell(CELLS[(event, state)])
    got = TRANSITIONS.get((event, State(state)))
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert (got.actions, int(got.next_state)) == expected


class RecordingSpec(NegotiationSpec):
    def __init__(self, log):
        self.log = log

    def this_layer_up(self, now): self.log.append("tlu")
    def this_layer_down(self, now): self.log.append("tld")
    def this_layer_started(self, now): self.log.append("tls")
    def this_layer_finished(self, now): self.log.append("tlf")


class Services:
    def __init__(self):
        self.sent = []
        self.rng = random.Random(0)

    def send(self, protocol, payload):
        self.sent.append(decode_control(payload))

    def log(self, message, level=0):
        pass


SENT_ACTION = {Code.CONF_REQ: "scr", Code.CONF_ACK: "sca", Code.CONF_NAK: "scn",
               Code.CONF_REJ: "scn", Code.TERM_REQ: "str", Code.TERM_ACK: "sta",
               Code.CODE_REJ: "scj"}


@pytest.mark.parametrize("event,state", sorted(k for k, v in CELLS.items() if v != "-"))
def test_table_cell_executes(event, state):
    expected_actions, expected_state = parse_cell(CELLS[(event, state)])
    log = []
    services = Services()
    fsm = Automaton(0xC021, "LCP", RecordingSpec(log), services,
                    AutomatonConfig(max_configure=5, max_terminate=2))
    fsm.state = State(state)
    fsm.restart_count = 1 if event == "TO+" else (0 if event == "TO-" else 3)
    fsm.peer_packet = ControlPacket(Code.CONF_REQ, 7, b"", b"\x01\x07\x00\x04")
    fsm.reply_code, fsm.reply_data = Verdict.NAK, b""
    fsm.request_id = fsm.last_id = 3
    fsm.event(event, 0.0)
    performed = [a for a in log]
    performed += [SENT_ACTION[p.code] for p in services.sent]
    # The recording spec sees layer actions; the wire sees send actions.
    # irc/zrc act on the counter: check them through it.
    want = [a for a in expected_actions if a not in ("irc", "zrc", "ser")]
    layer = [a for a in want if a.startswith("tl")]
    sends = [a for a in want if not a.startswith("tl")]
    assert log == layer
    assert [SENT_ACTION[p.code] for p in services.sent] == sends
    assert fsm.state == State(expected_state)
    if "zrc" in expected_actions:
        assert fsm.restart_count == 0
    elif "irc" in expected_actions:
        closing = State(expected_state) in (State.CLOSING, State.STOPPING)
        full = 2 if closing else 5
        sent_counting = sum(1 for a in sends if a in ("scr", "str"))
        assert fsm.restart_count == full - sent_counting


def test_undefined_cells_change_nothing():
    for (event, state), entry in CELLS.items():
        if entry != "-":
            continue
        services = Services()
        fsm = Automaton(0xC021, "LCP", RecordingSpec([]), services)
        fsm.state = State(state)
        fsm.event(event, 0.0)
        assert fsm.state == State(state) and services.sent == []


# ---------------------------------------------------------------- replies
def negotiating(last_id=0):
    services = Services()
    fsm = Automaton(0xC021, "LCP", RecordingSpec([]), services)
    fsm.last_id = last_id
    fsm.open(0.0)
    fsm.up(0.0)
    request = services.sent[-1]
    assert fsm.state == State.REQ_SENT and request.code == Code.CONF_REQ
    return fsm, services, request


def reply(code, identifier, data=b""):
    from userppp.wire import encode_control
    return encode_control(code, identifier, data)


def test_duplicate_ack_in_ack_rcvd_is_discarded():
    """Without pppd's seen_ack the second copy is RCA in Ack-Rcvd
    (scr/6x): a needless renegotiation."""
    fsm, services, request = negotiating()
    fsm.receive(reply(Code.CONF_ACK, request.identifier), 0.0)
    assert fsm.state == State.ACK_RCVD
    sent = len(services.sent)
    fsm.receive(reply(Code.CONF_ACK, request.identifier), 0.0)
    assert fsm.state == State.ACK_RCVD and len(services.sent) == sent
    assert fsm.stats["stale_reply"] == 1


def test_reply_before_any_request_is_discarded():
    services = Services()
    fsm = Automaton(0xC021, "LCP", RecordingSpec([]), services)
    fsm.state = State.STOPPED
    fsm.receive(reply(Code.CONF_ACK, 0), 0.0)
    assert services.sent == [] and fsm.stats["stale_reply"] == 1


def test_retransmission_accepts_a_reply_again():
    fsm, services, request = negotiating()
    fsm.handle_timer(fsm.next_timer())                # TO+: same id again
    assert services.sent[-1].identifier == request.identifier
    fsm.receive(reply(Code.CONF_ACK, request.identifier), 0.0)
    assert fsm.state == State.ACK_RCVD


@pytest.mark.parametrize("last_id", [254, 255])
def test_identifier_zero_is_an_identifier_like_any_other(last_id):
    fsm, services, request = negotiating(last_id)
    assert request.identifier == (last_id + 1) & 0xFF
    fsm.receive(reply(Code.CONF_ACK, request.identifier), 0.0)
    assert fsm.state == State.ACK_RCVD


def test_request_in_closed_closing_stopping_is_not_judged():
    class Judging(RecordingSpec):
        def judge_request(self, options, reject_naks):
            self.log.append("judge")
            return Verdict.ACK, options
    for state, answer in ((State.CLOSED, Code.TERM_ACK), (State.CLOSING, None),
                          (State.STOPPING, None)):
        log = []
        services = Services()
        fsm = Automaton(0xC021, "LCP", Judging(log), services)
        fsm.state = state
        fsm.receive(reply(Code.CONF_REQ, 9, b"\x07\x02"), 0.0)
        assert log == [] and fsm.state == state
        assert [p.code for p in services.sent] == ([answer] if answer else [])
    log = []
    services = Services()
    fsm = Automaton(0xC021, "LCP", Judging(log), services)
    fsm.state = State.STOPPED                          # the RFC answers here: judged
    fsm.receive(reply(Code.CONF_REQ, 9, b"\x07\x02"), 0.0)
    assert log == ["judge"] and fsm.state == State.ACK_SENT


def test_nak_count_restarts_after_an_ack():
    """RFC 1661 4.6: Max-Failure counts Configure-Naks sent without sending
    a Configure-Ack (pppd clears nakloops when it acks)."""
    verdicts = []

    class Spec(RecordingSpec):
        def judge_request(self, options, reject_naks):
            verdicts.append(reject_naks)
            return (Verdict.ACK, options) if options == b"ok" else (Verdict.NAK, b"")
    services = Services()
    fsm = Automaton(0xC021, "LCP", Spec([]), services, AutomatonConfig(max_failure=2))
    fsm.open(0.0)
    fsm.up(0.0)
    for data in (b"x", b"ok", b"x", b"x"):
        fsm.receive(reply(Code.CONF_REQ, 3, data), 0.0)
    assert verdicts == [False, False, False, False]
    fsm.receive(reply(Code.CONF_REQ, 3, b"x"), 0.0)
    assert verdicts[-1] is True
