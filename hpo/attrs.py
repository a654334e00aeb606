"""Every attribute key hpo writes on studies and trials, in one place.

Trial *user* attributes are what optuna-dashboard shows on a trial's page, so hpo keeps its
bookkeeping there, in plain sight. The keys hpo reads back to make decisions (a trial's
slot, seed, whose it is, why it failed) are *reserved*: an objective that wrote one of them
through ``ctx.set_attr`` would silently break retries or the design, so it is refused.
"""

from __future__ import annotations

# --- the design: where a trial sits in the study (hpo.design) --------------------------
SLOT = "slot"                    # its position in the design, kept by retries
SEED = "seed"                    # the seed the objective receives (ctx.seed)
SEED_RERUN_OF = "seed_rerun_of"  # a seed re-run (hpo seeds): the trial number it re-runs

# --- one attempt: who ran it, and how it ended (hpo.store.leases, hpo.worker) ----------
HOST = "host"
WORKER_PID = "worker_pid"
WORKER_STARTED = "worker_started"  # the worker process's start time: a reused pid is not it
GPU = "gpu"
CUDA_VISIBLE_DEVICES = "cuda_visible_devices"
ERROR = "error"                  # why the attempt failed, one line
TRACEBACK = "traceback"          # the last lines of the objective's traceback
DIVERGED = "diverged"            # the metric was NaN or infinite: infeasible
OOM = "oom"                      # out of memory: infeasible
FAILURE_KIND = "failure_kind"    # how a FAIL attempt failed: one of hpo.failures.KINDS
CURVES = "curves"                # training curves (hpo.curves)
WORLD_SIZE = "world_size"        # processes that ran the attempt together, when > 1

# --- written by hpo.train through ctx.set_attr (not reserved: a user objective may too) --
RESUMED_FROM_STEP = "resumed_from_step"
DIVERGED_STEP = "diverged_step"

# Attributes that describe one attempt, not the trial: a retry must not inherit them.
ATTEMPT = (HOST, WORKER_PID, WORKER_STARTED, GPU, CUDA_VISIBLE_DEVICES, ERROR, TRACEBACK,
           FAILURE_KIND, DIVERGED, OOM, RESUMED_FROM_STEP, WORLD_SIZE)

# Provenance (hpo.run.provenance) besides HOST, WORKER_PID, GPU, CUDA_VISIBLE_DEVICES.
PROVENANCE = ("python", "torch_version", "optuna_version", "git_commit", "git_dirty")

RESERVED = frozenset({SLOT, SEED, SEED_RERUN_OF, HOST, WORKER_PID, WORKER_STARTED, GPU,
                      CUDA_VISIBLE_DEVICES, ERROR, TRACEBACK, DIVERGED, OOM, FAILURE_KIND, CURVES,
                      WORLD_SIZE, *PROVENANCE})

# --- trial system attributes (Optuna's own names for a retried trial) ------------------
FIXED_PARAMS = "fixed_params"
FAILED_TRIAL = "failed_trial"
RETRY_HISTORY = "retry_history"

# --- study user attributes: the design, recorded with the results ----------------------
STUDY_GOAL = "goal"
STUDY_METRIC = "metric"
STUDY_PHASE = "phase"
STUDY_SEED = "seed"
STUDY_TRIALS_PER_VALUE = "trials_per_value"
STUDY_ROLES = "roles"
STUDY_FIXED = "fixed"
STUDY_SPACE = "space"
STUDY_DESIGN = "design"                     # hpo.study.Study.design(): the whole identity
STUDY_DESIGN_FINGERPRINT = "design_fingerprint"
# The space alone (all hpo had before the design's); written last, so a study that has it
# has its whole design recorded.
STUDY_FINGERPRINT = "space_fingerprint"
STUDY_UID = "hpo_study_uid"      # created with the stored study: whose checkpoints are whose
# hpo run --until-decided's state (hpo.decide): max trials, looks, round, stopped. While it is
# on a study, the controller chooses which design slots exist; workers take what it lays out.
STUDY_UNTIL_DECIDED = "until_decided"
