"""One module per notebook, named after it (``lr_schedules`` for ``04_lr_schedules.ipynb``).
A lesson imports ``core`` and ``ui``, never another lesson."""
