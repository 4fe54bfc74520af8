"""The simulation layer: many agents on one graph, round by round.

``topologies`` and ``graph`` (who talks to whom, each round), ``sharing`` (the postbox: delay, loss,
relay; adapter averaging), ``schedulers`` (who adapts on which notes, the policy-driven one
included), ``loop`` (the round loop, :class:`~multiseal.sim.loop.Simulation`) and ``metrics``
(continual-learning and population metrics).
"""
