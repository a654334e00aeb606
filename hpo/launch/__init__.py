"""Launchers: hpo workers started by the engines users already have.

* :mod:`hpo.launch.slurm`: ``hpo slurm`` writes and submits an sbatch array job, one
  ``hpo worker`` per array task.
* Kubernetes needs no code: ``deploy/k8s/`` holds the manifests (an Indexed Job of GPU
  workers, optuna-dashboard behind a ClusterIP Service), see docs/kubernetes.md.

Every launcher passes the storage URL to the workers through the environment, never on a
command line or in a file it writes, so a password never shows in ``ps`` or on disk.
"""
