"""qfair: why post-training quantization hurts some languages more than others, and what fixes it."""

__version__ = "0.1.0"
