#!/usr/bin/env python3
"""Early-exit models on TED-LIUM 3.

    python train.py hparams/conformer_ee.yaml --data_folder=/path/to/TEDLIUM_release-3

All the logic lives in the package (``speechbrain_ee.recipe.run``).
"""

from speechbrain_ee.recipe import run

if __name__ == "__main__":
    run()
