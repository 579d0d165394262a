"""``python -m graceserve MODULE:APP [options]``: see graceserve._cli (``--help``)."""

import sys

from graceserve._cli import main

sys.exit(main())
