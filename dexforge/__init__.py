"""dexforge: from a sentence to a simulated dexterous-hand task, trained policies and a dataset.

The layers live in the subpackages `dexforge.sim`, `dexforge.policies`, `dexforge.memory`,
`dexforge.tools`, `dexforge.agents` and `dexforge.evals` (see DESIGN.md); this package holds only
what every layer shares: where state lives and the base error type.
"""

__version__ = "0.1.0"
