"""Actor and critic networks, the observation normaliser, and the deployable policy.

Training-side: imports torch. The robot side (`robotrl.deploy`) never imports this package.
"""

from robotrl.policies.networks import (
    DeterministicActor,
    GaussianActor,
    QCritic,
    SquashedGaussianActor,
    TwinQCritic,
    ValueCritic,
    mlp,
)
from robotrl.policies.normalizer import RunningMeanStd
from robotrl.policies.policy import DeployedPolicy, from_record, make_record

__all__ = [
    "DeployedPolicy", "DeterministicActor", "GaussianActor", "QCritic", "RunningMeanStd", "SquashedGaussianActor",
    "TwinQCritic", "ValueCritic",
    "from_record", "make_record", "mlp",
]
