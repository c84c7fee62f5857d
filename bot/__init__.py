"""paperbot: tracks weekly ML-paper digests and publishes each new week."""

__version__ = "0.1.0"
