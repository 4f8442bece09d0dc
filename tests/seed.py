"""The parts of the seed document that tests take from it.

The seed document (the HOWTO the project grew from, "PPP-Link with MS-CHAP
Callback") is not part of the repository; the log it prints is kept
verbatim in tests/vectors/seed-trace.txt (provenance in
tests/vectors/README.md), and its chat script below.  Tests read only these,
so a clone anywhere passes on its own.
"""

from __future__ import annotations

from pathlib import Path

VECTORS = Path(__file__).resolve().parent / "vectors"
SEED_TRACE = VECTORS / "seed-trace.txt"

# /etc/ppp/nt-callback.chat of the seed (section 5.2).
NT_CALLBACK_CHAT = """\
TIMEOUT 120
ABORT "NO CARRIER"
ABORT "BUSY"
ABORT "NO DIALTONE"
ABORT "ERROR"
""  +++ATZ
OK ATE1Q0&C1&S0
RING ATA
CONNECT ""
"""

# chat[502]'s script is not printed in the seed (it is in the HOWTO's
# chapter 4); this is the script its log lines imply, ABORT order included.
DIAL_CHAT = """\
# dial the NT server
TIMEOUT 60
ABORT BUSY
ABORT "NO DIALTONE"
ABORT ERROR
ABORT "NO CARRIER"
"" +++ATZ
OK ATE1Q0&C1&S0DT555222
CONNECT ""
"""


def seed_text() -> str:
    """The seed's syslog excerpt (section 5.3), verbatim."""
    return SEED_TRACE.read_text(encoding="utf-8")


def seed_chat_lines(pid: int) -> list:
    """What chat[pid] logged in the seed, without the syslog prefix."""
    marker = f"chat[{pid}]: "
    return [line.split(marker, 1)[1] for line in seed_text().splitlines()
            if marker in line]
