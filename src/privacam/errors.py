"""Exceptions with one-line, actionable messages.

Every error a user can cause (bad config key, unknown registry name, unreadable file, NaN loss)
is a :class:`PrivacamError`; the CLI prints its message on one line and exits non-zero.
"""


class PrivacamError(Exception):
    """Base class: the message names the offending file/row/key and the fix."""


class ConfigError(PrivacamError):
    """A configuration key or value is wrong."""


class RegistryError(PrivacamError, KeyError):
    """An unknown name was asked of a registry."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DataError(PrivacamError):
    """A data file, label or split is unusable."""


class OutputError(PrivacamError):
    """An output cannot be written (a full or read-only disk, an output that already exists or that
    is an input); nothing already there was replaced."""


class CheckpointError(PrivacamError):
    """A checkpoint or weights file is missing, damaged, or holds objects that are refused for safety."""


class NonFiniteLossError(PrivacamError):
    """A loss, gradient or weight became NaN or infinite (or weights blew up) during training.

    Attributes:
        step: the top-level step; player: the player (``encoder`` f_d, ``utility`` f_T, ``budget``
        f_b) whose loss, gradient or update went wrong first; loss_name: what was non-finite;
        lr: that player's learning rate, when known.
    """

    def __init__(self, step: int, player: str, loss_name: str, lr: float | None = None):
        self.step, self.player, self.loss_name, self.lr = step, player, loss_name, lr
        now = f" (now {lr:g})" if lr is not None else ""
        super().__init__(
            f"non-finite {loss_name} for player {player} at step {step}; the last finite checkpoint is "
            f"kept: lower {player}.lr{now} or game.gamma and resume with --resume"
        )

    def at_step(self, step: int) -> "NonFiniteLossError":
        """The same error, reported at top-level ``step``."""
        return NonFiniteLossError(step, self.player, self.loss_name, self.lr)
