"""Rate limiting of repeated log lines, sans-IO (the time is passed in).

Whatever a peer sends must not grow the log without bound: a line caused by
wire input (an Echo-Reply with our own magic, a malformed challenge, a frame
of a protocol we do not run) may arrive thousands of times a second.  A
:class:`LogRateLimiter` lets ``burst`` lines of one *reason* (a key) through
per ``interval`` seconds; the ones over are counted, not written, and when
the interval ends one summary line says how many there were, in the style
of syslog/the kernel's printk_ratelimit, e.g.::

    appear to have received our own echo-reply! (96660 similar messages suppressed)

While a flood goes on, each interval ends with one such summary line and
nothing else (the next interval starts already used up); once an interval
passes with nothing suppressed, the reason is forgotten and its next line is
written at once.  The table of reasons is bounded (``max_keys``): past it,
new reasons share one overflow bucket, so a peer that varies its text cannot
grow the table either.

:func:`similar_key` is the reason of a line that has none of its own: its
text with every number masked, so "wrong length 3" and "wrong length 5" are
similar messages.
"""

from __future__ import annotations

import re
from typing import Hashable, List, Optional, Tuple

#: Seconds over which ``burst`` lines of one reason are written.
DEFAULT_INTERVAL = 5.0
#: Lines of one reason written per interval.
DEFAULT_BURST = 1
#: Reasons tracked at once; beyond it new reasons share one bucket.
DEFAULT_MAX_KEYS = 256

OVERFLOW_KEY = ("lograte", "overflow")

_NUMBER = re.compile(r"0x[0-9a-fA-F]+|[0-9]+")


def similar_key(text: str) -> str:
    """The reason of a log line: its text with numbers masked."""
    return _NUMBER.sub("#", text)


def summary_line(text: str, suppressed: int) -> str:
    """The line that reports ``suppressed`` lines like ``text``."""
    plural = "" if suppressed == 1 else "s"
    return f"{text} ({suppressed} similar message{plural} suppressed)"


class _Reason:
    __slots__ = ("end", "written", "suppressed", "level", "text")

    def __init__(self, end: float, level: int, text: str):
        self.end = end
        self.written = 0
        self.suppressed = 0
        self.level = level
        self.text = text


class LogRateLimiter:
    """Per-reason rate limit of log lines.  No clock: every call takes ``now``.

    ``admit(key, now, level, text)`` says whether a line may be written (and
    remembers ``text`` for the summary); summaries of intervals that ended
    are collected by :meth:`expire` (call it when ``now`` reaches
    :meth:`next_deadline`, and before writing a line) and by :meth:`flush`
    (all pending ones, when the log's owner ends).  ``stats``: lines
    ``admitted`` and ``suppressed``, ``summaries`` written, and ``overflow``
    (lines counted in the shared bucket).
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL, burst: int = DEFAULT_BURST,
                 max_keys: int = DEFAULT_MAX_KEYS):
        if interval <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("interval > 0, burst >= 1 and max_keys >= 1 please")
        self.interval = interval
        self.burst = burst
        self.max_keys = max_keys
        self._reasons: dict = {}
        self._pending: dict = {}       # key -> _Reason with suppressed > 0
        self.stats = {"admitted": 0, "suppressed": 0, "summaries": 0, "overflow": 0}

    def __len__(self) -> int:
        return len(self._reasons)

    def admit(self, key: Hashable, now: float, level: int = 0, text: str = "",
              burst: Optional[int] = None) -> bool:
        """True: write this line now.  False: it was counted instead.
        ``burst``: lines of this reason per interval, if not the default.
        Call :meth:`expire` first so that ended intervals are summed up."""
        reason = self._reasons.get(key)
        if reason is not None and now >= reason.end:
            # An interval that ended without a summary due (expire() takes
            # those): the reason starts afresh.
            if reason.suppressed == 0:
                del self._reasons[key]
                reason = None
        if reason is None:
            if len(self._reasons) >= self.max_keys:
                self._forget_quiet(now)
            if len(self._reasons) >= self.max_keys:
                self.stats["overflow"] += 1
                key = OVERFLOW_KEY
                reason = self._reasons.get(key)
            if reason is None:
                reason = self._reasons[key] = _Reason(now + self.interval, level, text)
        if burst is None:
            burst = self.burst
        if reason.written < burst:
            reason.written += 1
            reason.level = level
            if text:
                reason.text = text
            self.stats["admitted"] += 1
            return True
        reason.suppressed += 1
        self.stats["suppressed"] += 1
        if reason.suppressed == 1:
            self._pending[key] = reason
        return False

    def remember(self, key: Hashable, text: str) -> None:
        """The text of a line just admitted under ``key`` (for its summary),
        when it was built only after :meth:`admit` said yes."""
        reason = self._reasons.get(key)
        if reason is not None:
            reason.text = text

    def next_deadline(self) -> Optional[float]:
        """When the earliest interval with suppressed lines ends, or None."""
        if not self._pending:
            return None
        return min(reason.end for reason in self._pending.values())

    def expire(self, now: float) -> List[Tuple[int, str]]:
        """(level, summary line) for each reason whose interval with
        suppressed lines has ended by ``now``.  Such a reason starts a new
        interval already used up: a flood that goes on gives one summary
        line per interval."""
        if not self._pending:
            return []
        out = []
        for key, reason in list(self._pending.items()):
            if now >= reason.end:
                out.append((reason.level, summary_line(reason.text, reason.suppressed)))
                self.stats["summaries"] += 1
                del self._pending[key]
                reason.suppressed = 0
                reason.written = 1 << 30      # used up, whatever its burst
                reason.end = now + self.interval
        return out

    def flush(self) -> List[Tuple[int, str]]:
        """(level, summary line) for every reason with suppressed lines,
        whether or not its interval has ended; the table is emptied."""
        out = []
        for reason in self._pending.values():
            out.append((reason.level, summary_line(reason.text, reason.suppressed)))
            self.stats["summaries"] += 1
        self._pending.clear()
        self._reasons.clear()
        return out

    def _forget_quiet(self, now: float) -> None:
        for key in [k for k, r in self._reasons.items() if now >= r.end and not r.suppressed]:
            del self._reasons[key]
