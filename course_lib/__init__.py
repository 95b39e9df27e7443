"""course_lib: the helpers behind the Training Tricks Lab notebooks.

The tree is the architecture:

- ``core/``: what every lesson builds on. ``datasets`` (building the CIFAR-10 cache), ``data``
  (device-resident uint8 batches and batched augmentation), ``models``, ``train`` (``fit``, the
  one training loop), ``recipes`` (the course's baseline recipe), ``schedules``, ``runs`` (re-initialise, train and score one run),
  ``validation`` (splits, held-out scores, cross-validation), ``nonfinite`` (where a NaN/Inf first appeared),
  ``claims`` (the claims ledger and the one verdict rule), ``takeaways`` (closing sentences
  computed from the verdicts), ``experiment`` (profiles, set-up,
  results).
- ``lessons/``: one module per notebook, named after it; lessons never import each other.

  ======================================  =============================================
  notebook                                lesson module
  ======================================  =============================================
  ``00_baseline_and_sanity_checks``       ``lessons.baseline_and_sanity_checks``
  ``01_lr_range_test``                    ``lessons.lr_range_test``
  ``02_batch_size_lr_coupling``           ``lessons.batch_size_lr_coupling``
  ``03_dropout_placement``                ``lessons.dropout_placement``
  ``04_lr_schedules``                     ``lessons.lr_schedules``
  ``05_multiscale_training``              ``lessons.multiscale_training``
  ``06_cross_validation``                 ``lessons.cross_validation``
  ``07_test_time_augmentation``           ``lessons.test_time_augmentation``
  ``08_ensembles``                        ``lessons.ensembles``
  ``09_nan_debugging``                    ``lessons.nan_debugging``
  ``10_optimizers_and_momentum``          ``lessons.optimizers_and_momentum``
  ``11_init_activations_norm_depth``      ``lessons.init_activations_norm_depth``
  ``12_transfer_learning``                ``lessons.transfer_learning``
  ``13_augmentation_mixup_shuffling``     ``lessons.augmentation_mixup_shuffling``
  ``14_data_quality``                     ``lessons.data_quality``
  ``15_regularisation_and_search``        ``lessons.regularisation_and_search``
  ======================================  =============================================

- ``ui/``: what a student sees: ``plots``, ``widgets`` (the control panel), ``cache`` (stored
  results of panel runs).
- ``tools/``: what runs the course: ``nightly`` (every notebook headless, compared with the
  baselines) and ``bench`` (throughput).

A new technique is one notebook, one lesson module and one test file
(``tests/lessons/test_<name>.py``); what two lessons share moves into ``core``.
"""
__version__ = "0.1.0"
