"""songkit: classic music-ML models trained, run and measured from one CLI.

Nothing heavy is imported here: `songkit --help` must stay fast.
"""

__version__ = "0.1.0"
