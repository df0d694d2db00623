"""``python -m privacam.cli ...`` (as under ``torchrun``): the ``privacam`` console script."""

import sys

from . import main

sys.exit(main())
