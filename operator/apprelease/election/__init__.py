"""Leader election of operator replicas on a coordination.k8s.io/v1 Lease (the README's "High availability").

`rules` holds the decisions (pure), `lease` the Lease on the API server, `elector` the loop on kopf's event
loop, `identity` who we are. The runtime starts an `Elector` when APPRELEASE_LEADER_ELECTION is on and gates its
workers on `Leadership.leads()`; every replica keeps watching, so a new leader starts with warm caches.
"""

from apprelease.election.elector import AlwaysLeader, Elector, Leadership, exit_process
from apprelease.election.identity import candidate_identity
from apprelease.election.lease import KubernetesLeaseStore, LeaseStore, Observed
from apprelease.election.rules import LeaseRecord, Timing

__all__ = [
    "AlwaysLeader",
    "Elector",
    "KubernetesLeaseStore",
    "Leadership",
    "LeaseRecord",
    "LeaseStore",
    "Observed",
    "Timing",
    "candidate_identity",
    "exit_process",
]
