"""The paper's baseline memory systems, implemented natively on our LTM through the six tools.

* ``mem0-style`` (:class:`Mem0Policy`), ``mem0g-style`` (:class:`Mem0GraphPolicy`)
* ``langmem-style`` (:class:`LangMemPolicy`)
* ``amem-style`` (:class:`AMemPolicy`)

Each runs offline with deterministic heuristics, or with any chat model for its extraction
and decision steps (``model="smollm2"`` or ``chat=``).
"""

from agemem_gym.policies.baselines.amem import AMemPolicy
from agemem_gym.policies.baselines.engine import MemorySystemPolicy, heuristic_decision
from agemem_gym.policies.baselines.langmem import LangMemPolicy
from agemem_gym.policies.baselines.mem0 import Mem0GraphPolicy, Mem0Policy

__all__ = ["AMemPolicy", "LangMemPolicy", "Mem0GraphPolicy", "Mem0Policy", "MemorySystemPolicy", "heuristic_decision"]
