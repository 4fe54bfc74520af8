"""The run layer: entry points that turn a scenario into finished, tracked work.

``recipes`` (one per scenario kind, by registry), ``tracking`` (the MLflow helper every part uses),
``artifacts`` (what a finished simulation logs), ``sweep_file`` and ``sweep`` (grids of runs) and
``pettingzoo`` (a scenario as an environment).
"""
