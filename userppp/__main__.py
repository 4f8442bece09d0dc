# The signal policy goes in before anything else is imported: from here on
# no signal gets its default action or a KeyboardInterrupt traceback.
from .io.signals import install
install()

import sys  # noqa: E402

from .cli import main  # noqa: E402

sys.exit(main())
