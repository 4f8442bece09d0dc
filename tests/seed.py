"""The seed document (../shared/seed/ppp-mschap-callback-howto.txt beside
the repository) and the pieces tests take from it.

CI lays shared/ beside its clone as it is laid beside this checkout, so the
path is found relative to the repository, never as an absolute path.
USERPPP_SEED may point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED_PATH = Path(os.environ.get(
    "USERPPP_SEED",
    REPO.parent / "shared" / "seed" / "ppp-mschap-callback-howto.txt"))

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
    if not SEED_PATH.exists():
        raise FileNotFoundError(
            f"the seed document is not at {SEED_PATH} (shared/ beside the "
            "repository, or USERPPP_SEED)")
    return SEED_PATH.read_text(encoding="utf-8", errors="replace")


def seed_chat_lines(pid: int) -> list:
    """What chat[pid] logged in the seed, without the syslog prefix."""
    marker = f"chat[{pid}]: "
    return [line.split(marker, 1)[1] for line in seed_text().splitlines()
            if marker in line]
