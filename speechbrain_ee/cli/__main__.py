"""``python -m speechbrain_ee.cli <command> ...`` = ``sbee <command> ...``."""

import sys

from speechbrain_ee.cli.main import main

sys.exit(main())
