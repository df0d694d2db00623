"""The three-player game: encoder f_d, utility model f_T, budget adversaries f_b.

``AdversarialGame.step()`` runs one top-level step of the chosen schedule and returns a dict of
named losses and metrics; it takes batches, never datasets, so it can be driven from any loop.
Importing the package registers the privacy losses and the schedules.
"""

from . import schedules  # noqa: F401
from .ensemble import BudgetEnsemble, Restarter  # noqa: F401
from .game import AdversarialGame  # noqa: F401
from .losses import adversary_loss, privacy_loss  # noqa: F401
