"""Players: encoders f_d, utility models f_T, budget adversaries f_b (tensors in, tensors out)."""

from . import adversaries, encoders, utility  # noqa: F401

try:
    from . import baselines  # noqa: F401  (baseline encoders: downsample, blur, BDQ, ...)
except ImportError:  # pragma: no cover - while being built
    pass
try:
    from . import feature  # noqa: F401  (feature-level taps, Li & Cavallaro)
except ImportError:  # pragma: no cover
    pass
try:
    from . import compress  # noqa: F401  (compressing privatizers, CPGAN)
except ImportError:  # pragma: no cover
    pass
