"""The line emulator under its old name: ``tools.lineemu`` is
:mod:`userppp.emul.lineemu` (the same module object, so ``from
tools.lineemu import LineEmulator`` and ``from tools import lineemu`` keep
working), and ``python3 -m tools.lineemu --baud 38400`` runs its command
line."""

import sys

from userppp.emul import lineemu as _lineemu

if __name__ == "__main__":
    sys.exit(_lineemu.main())
sys.modules[__name__] = _lineemu
