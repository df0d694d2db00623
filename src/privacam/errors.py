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


class NonFiniteLossError(PrivacamError):
    """A loss became NaN or infinite during training."""

    def __init__(self, step: int, player: str, loss_name: str):
        self.step, self.player, self.loss_name = step, player, loss_name
        super().__init__(
            f"non-finite {loss_name} for player {player} at step {step}; the last good checkpoint is "
            f"kept: lower that player's learning rate (e.g. {player}.lr) or gamma and resume with --resume"
        )
