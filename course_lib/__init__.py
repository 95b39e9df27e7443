"""course_lib: the helpers behind the Training Tricks Lab notebooks.

One module per concept: ``datasets`` (building the CIFAR-10 cache), ``data`` (device-resident
batches and augmentation), ``models``, ``train`` (the training loop), ``schedules``, ``claims``
(the claims ledger and verdicts), ``plots``, ``widgets``, ``experiment`` (profiles, set-up and
results), ``sanity`` and ``debug`` (checks and NaN hunting), ``bench`` (throughput).
"""
__version__ = "0.1.0"
