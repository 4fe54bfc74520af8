"""The round's eight stages, each a function over the simulation's fixed :class:`~multiseal.sim.setup.Setup`
and its changing :class:`~multiseal.sim.state.RoundState`.

1. :mod:`.arrive` — the world hands agents their new documents;
2. :mod:`.write` — recipients write notes on them (or a control writes them; adversaries write theirs);
3. :mod:`.share` — notes travel along the graph's out-edges into inboxes (or adapters are averaged);
4. :mod:`.schedule` — the scheduler (or a policy) picks the inbox items each agent adapts on;
5. :mod:`.adapt` — the chosen agents train their adapters, with their mitigations;
6. :mod:`.retell` — with ``sharing.retell``, agents write notes from memory about what they learnt from
   others' notes and send them on;
7. :mod:`.evaluate` — changed agents answer, filling a row of the accuracy tensor;
8. :mod:`.measure` — the row becomes the round's per-agent and population metrics.

:class:`~multiseal.sim.loop.Simulation` calls them in this order and does nothing else.
"""
