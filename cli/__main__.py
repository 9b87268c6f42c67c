"""``python -m cli PROMPT FOLDER``: the batch CLI (see cli/main.py)."""

import sys

from cli.main import main

sys.exit(main())
