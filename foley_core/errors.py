"""Errors the plugin reports to users. The message names the problem and how to fix it."""


class FoleyError(ValueError):
    """A user-facing error: bad input file, wrong model in a slot, impossible settings."""


class MediaError(FoleyError):
    """A media file or tensor cannot be used (missing, corrupt, no stream, NaN audio...)."""


class CheckpointError(FoleyError):
    """A model file does not fit the slot it was loaded into."""
