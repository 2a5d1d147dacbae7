"""What a command asked for cannot be done with this stack; s3-upscale prints the message and exits 2."""

from __future__ import annotations


class UsageError(Exception):
    """An argument that does not fit the stack (a key outside its inbox bucket, ...)."""
