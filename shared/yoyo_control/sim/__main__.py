"""``python -m yoyo_control.sim``: the simulator's command line (sim/cli.py)."""

from .cli import main

main()
