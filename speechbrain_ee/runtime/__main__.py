"""``python -m speechbrain_ee.runtime``: see :mod:`speechbrain_ee.runtime.cli`."""

import sys

from speechbrain_ee.runtime.cli import main

sys.exit(main())
