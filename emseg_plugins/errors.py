"""Errors the user can fix. The CLI prints each as one line and exits with status 2."""


class EmsegError(Exception):
    """Base of every user-fixable error; its message names the file/key/value and the fix."""


class ConfigError(EmsegError):
    """A config file, key, value or command-line override is wrong."""


class PluginError(EmsegError):
    """A model/loss/dataset/config plugin is unknown, broken or claimed twice."""


class DataError(EmsegError):
    """An input volume or dataset is missing or malformed."""


class CheckpointError(EmsegError):
    """A checkpoint is unreadable, unsafe, or belongs to an incompatible config."""


class TrainingError(EmsegError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is kept."""


class PluginWarning(UserWarning):
    """A plugin failed to load or is claimed twice; the others still work."""
