#!/usr/bin/env python3
"""Early-exit models on VoxPopuli-en (transcribed ASR subset).

    python train.py hparams/conformer_ee.yaml --data_folder=/path/to/voxpopuli

All the logic lives in the package (``speechbrain_ee.recipe.run``).
"""

from speechbrain_ee.recipe import run

if __name__ == "__main__":
    run()
