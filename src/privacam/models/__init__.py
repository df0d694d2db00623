"""Players: encoders f_d, utility models f_T, budget adversaries f_b (tensors in, tensors out).

Importing the package registers every player: learned encoders and baselines, utility models,
budget classifiers, feature-level taps (Li & Cavallaro) and reconstruction adversaries (CPGAN).
"""

from . import adversaries, baselines, encoders, feature, reconstructors, substitute, utility  # noqa: F401
