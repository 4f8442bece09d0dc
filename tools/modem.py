"""The Hayes modem emulator under its old name: ``tools.modem`` is
:mod:`userppp.emul.modem` (the same module object, so ``from tools.modem
import Exchange`` and ``from tools import modem`` keep working), and
``python3 -m tools.modem 555111 555222`` runs its command line."""

import sys

from userppp.emul import modem as _modem

if __name__ == "__main__":
    sys.exit(_modem.main())
sys.modules[__name__] = _modem
