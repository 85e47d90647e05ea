#!/usr/bin/env bash
# Kill-and-resume check on a GPU: the checkpoint tests (in-process interruption, two real
# SIGKILLs of run.py, one during training and one while a checkpoint is written, then resume),
# which require the resumed run's final parameters to be bitwise equal to an uninterrupted
# run's. Usage: bash experiments/gpu_checkpoint_check.sh
set -euo pipefail
python3 -c "import jax; print('devices:', jax.devices())"
python3 -m pytest -q -p no:cacheprovider tests/test_checkpoint.py
