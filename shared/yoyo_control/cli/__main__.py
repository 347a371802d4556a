"""``python -m yoyo_control.cli``: yoyoctl."""

import sys

from . import main

sys.exit(main())
