"""The run layer: entry points that turn a scenario into finished, tracked, durable work.

``recipes`` (one per scenario kind, by registry); ``rundir`` (a run's local directory: journal,
checkpoints, artifacts — the source of truth), ``mirror`` (copying it to MLflow, live or by
``sync``), ``tracker`` (what a recipe logs through), ``tracking`` (the store and the one MLflow
client helper) and ``runs`` (``--resume``, ``sync``, ``runs``); ``artifacts`` (what a finished
simulation logs); ``sweep_file`` and ``sweep`` (grids of runs); ``pettingzoo`` (a scenario as an
environment).
"""
