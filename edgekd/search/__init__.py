"""Architecture-aware student search (AKD): search spaces, the KD proxy, latency (measured or from
lookup tables), the Optuna study, and the choice of teacher assistants.

Liu et al., "Search to Distill: Pearls Are Everywhere but Not the Eyes", CVPR 2020: the student
architecture is searched under a latency budget with a reward that uses its accuracy *after KD
from this teacher*, because the best student depends on the teacher.
"""

from edgekd.search.assistants import AssistantChoice, choose_assistants
from edgekd.search.blocks import Block
from edgekd.search.latency import (
    QUICK_PROFILE,
    LatencyTable,
    default_table_cache,
    evaluate_table,
    measure_p50,
    measure_spec,
    median_over_rounds,
    sample_candidates,
)
from edgekd.search.proxy import ProxyConfig, kd_proxy_train
from edgekd.search.reward import HARD, SOFT, RewardConfig, reward
from edgekd.search.spaces import SEARCH_SPACES, SearchSpace, build_space, candidate_blocks
from edgekd.search.study import (
    SearchResult,
    SearchSettings,
    WorkerSource,
    default_storage,
    join_study,
    open_storage,
    pareto_front,
    read_recipe,
    reference_budget,
    run_search,
    start_study,
    worker_from_storage,
)

__all__ = [
    "HARD",
    "QUICK_PROFILE",
    "SEARCH_SPACES",
    "SOFT",
    "AssistantChoice",
    "Block",
    "LatencyTable",
    "ProxyConfig",
    "RewardConfig",
    "SearchResult",
    "SearchSettings",
    "SearchSpace",
    "WorkerSource",
    "build_space",
    "candidate_blocks",
    "choose_assistants",
    "default_storage",
    "default_table_cache",
    "evaluate_table",
    "join_study",
    "kd_proxy_train",
    "measure_p50",
    "measure_spec",
    "median_over_rounds",
    "open_storage",
    "pareto_front",
    "read_recipe",
    "reward",
    "reference_budget",
    "run_search",
    "sample_candidates",
    "start_study",
    "worker_from_storage",
]
