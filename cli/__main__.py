"""``python -m core PROMPT FOLDER``: the batch CLI (see core/cli.py)."""

import sys

from core.cli import main

sys.exit(main())
