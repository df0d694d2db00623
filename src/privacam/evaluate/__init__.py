"""The audit: freeze f_d, retrain unseen attackers on its release, and score utility, privacy
and reconstruction (accuracy, cMAP, NAG, PSNR/SSIM).

This package must not import the game: the audit does not depend on how an encoder was trained.
"""

from . import attackers, classical  # noqa: F401  (fill the attacker registry)
