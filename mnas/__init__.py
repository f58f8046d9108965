"""mnas: platform-aware neural architecture search (MnasNet) for your own device."""
__version__ = "0.1.0"
