"""Your own training code, wired to the trial: PyTorch Lightning and Hugging Face Trainer.

* :mod:`hpo.integrations.lightning`: ``trainer(ctx, ...)``, ``fit(ctx, trainer, model)`` and
  the ``HpoCallback`` they use (``pip install 'hpo[lightning]'``);
* :mod:`hpo.integrations.transformers`: ``training_args(ctx, ...)``, ``train(ctx, trainer)``
  and the ``HpoTrainerCallback`` they use (``pip install 'hpo[transformers]'``).

Each reports the study's metric at every evaluation (so the study's pruner works, and stops
the framework its own way), checkpoints where the trial's retry finds it and resumes with the
framework's own resume (model, optimizer, loop state, RNG), records curves in hpo's format,
and passes the trial's devices on to the framework's data-parallel strategy. Importing this
package imports neither framework; importing one of its modules imports that framework.
"""
