"""What reads records and saved predictions: metrics and per-example scores per task kind.

Nothing under this package imports torch, torchvision, torchmetrics or Lightning, so the
leaderboard (and anything else that only reads results) starts in a fraction of a second and
runs where no training stack is installed; the training side imports from here, never the
other way round (``tests/test_leaderboard_imports.py`` holds both to it).
"""
