"""``python -m core.persist hash-password NAME``: a hash for AUTH_USERS."""

import sys

from core.persist.service import main

sys.exit(main())
