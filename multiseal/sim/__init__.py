"""The simulation layer: many agents on one graph, round by round.

``topology_kinds`` and ``topologies`` (the topology registry, its builders and checks) and ``graph``
(who talks to whom in each round); ``sharing`` (the postbox: delay, loss, relay; adapter averaging);
``schedulers`` (who adapts on which notes, the policy-driven one included); ``setup`` (what a run is
given) and ``state`` (everything its rounds change); ``stages`` (the round's eight stages over them);
``loop`` (the round loop, :class:`~multiseal.sim.loop.Simulation`) and ``checkpoint`` (the state saved);
``accuracy``, ``continual`` and ``diffusion`` (metric formulas over the accuracy tensor), ``facts`` (note fidelity,
per-fact diffusion, transfer efficiency, misinformation) and ``metrics`` (what a round reports per
agent and for the population); ``controls`` (passage, oracle and shuffled notes, compute matching).
"""
