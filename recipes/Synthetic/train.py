#!/usr/bin/env python3
"""Early-exit Conformer-CTC on a synthetic eSpeak corpus (no download).

    python train.py hparams/conformer_ee.yaml

The corpus is synthesised into ``data/`` on the first run.

All the logic lives in the package (``speechbrain_ee.recipe.run``).
"""

from speechbrain_ee.recipe import run

if __name__ == "__main__":
    run()
