"""r1pipeline: the DeepSeek-R1 training recipe as one resumable pipeline."""

__version__ = "0.1.0"
