"""The world layer: documents and questions, where they come from, and when agents receive them.

``synthetic`` (a seeded fictional world, its word tables in ``vocabulary``), ``squad`` (a
SEAL/SQuAD-style file), ``arrivals`` (who receives which document in which round) and ``probe`` (the
general-knowledge retention probe). The records themselves (``Document``, ``Question``, ``World``)
live in :mod:`multiseal.types`.
"""
