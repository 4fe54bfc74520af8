"""The learning-to-act layer: agents whose choices are learnt.

``interface`` (observations and actions over a simulation), ``env`` (the PettingZoo environment),
``policies`` (built-in and user policies, and policy-driven runs), ``restem`` (SEAL's outer loop:
ReST-EM over self-edits) with ``restem_setup`` (agents, splits), ``restem_records`` (``Candidate``,
``IterationRecord``) and ``rewards`` (rewards and selection), and ``trials`` (batched
temporary-adapter trials that score candidates).
"""
