"""The configuration layer: scenario files become typed settings, and builders make the parts.

``schema`` (the pydantic tree), ``overrides`` (dotted ``--set`` keys), ``load`` (reading, validating
and cross-checking a file) and ``builders`` (settings in, library objects out). It sits above every
library layer because it validates against their registries and composes their parts.
"""
