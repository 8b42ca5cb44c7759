"""Experiment plans run headlessly in the background with papermill (see docs/experiments.md).

``docrestore experiments PLAN.yaml`` expands a plan into jobs, checks every parameter against
its notebook, and runs the jobs in a detached scheduler, one per GPU (or several, or on the
CPU). Notebooks report their headline metrics with :func:`record_result`.

The scheduler itself lives in :mod:`docrestore.scheduler.runner` (imported on demand: it
is also the ``python -m`` entry point of the detached processes).
"""

from .plan import Job, Plan, PlanError, expand, load_plan, notebook_parameters, validate_jobs
from .status import record_result

__all__ = ["Job", "Plan", "PlanError", "expand", "load_plan", "notebook_parameters",
           "validate_jobs", "record_result"]
