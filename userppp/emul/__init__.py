"""Emulated hardware for tests, benchmarks and ``userppp demo``, installed
with the package:

- :mod:`userppp.emul.modem`: Hayes modems on ptys joined by a telephone
  exchange (``python3 -m userppp.emul.modem 555111 555222``);
- :mod:`userppp.emul.lineemu`: two ptys joined at a serial line's pace, with
  latency and bit errors (``python3 -m userppp.emul.lineemu --baud 38400``).

``tools/modem.py`` and ``tools/lineemu.py`` of the source tree are the same
modules under their old names."""
