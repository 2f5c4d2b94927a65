"""One thin file per stage: binds its typed config to the domain packages and declares its inputs."""

from edgekd.stages import distill, export, profile, qkd, search, teacher  # noqa: F401  (registers the stages)
from edgekd.stages.deploy import choose_deployable, published_models
from edgekd.stages.preflight import check_data, preflight

PIPELINE_ORDER = ("teacher", "search", "distill", "qkd", "export", "profile")

__all__ = ["PIPELINE_ORDER", "check_data", "choose_deployable", "preflight", "published_models"]
