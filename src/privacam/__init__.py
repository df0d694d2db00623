"""privacam: privacy-preserving visual recognition by adversarial learning.

The package learns the transform f_d that runs on a camera so that its output still serves a
task model f_T while private attributes cannot be recovered by budget models f_b, and audits the
result with retrained, unseen attackers. See docs/DESIGN.md in the repository for the map.
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

# Fill every registry eagerly (as timm does): datasets, players, privacy losses and schedules, the
# audit's attackers. A module that fails to import is an error here, not an unknown name later.
from . import data, models, game, evaluate  # noqa: E402,F401
