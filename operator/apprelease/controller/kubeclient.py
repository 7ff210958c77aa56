"""One way to reach the Kubernetes API, shared by the operator and the CLI: in-cluster or kubeconfig."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client, config


class KubeConfigError(RuntimeError):
    """No usable credentials; the message says what to set."""


@dataclass(frozen=True)
class Connection:
    api_client: client.ApiClient
    namespace: str  # the kubeconfig context's namespace, the pod's own in-cluster, else "default"


def connect(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    prefer_in_cluster: bool = False,
    pool_size: int | None = None,
) -> Connection:
    """An ApiClient for the given (or current) kubeconfig, or the pod's ServiceAccount.

    The operator prefers in-cluster credentials (it runs as a pod); the CLI prefers the user's kubeconfig.
    `pool_size`: connections kept open to the API server, at least the threads that call it at once. The
    kubernetes client's `Configuration.connection_pool_maxsize` is 5 per CPU of the machine (10 on a 2-CPU
    node), the size of its urllib3 pool; a thread that finds the pool full gets a connection that is closed
    after one request, so every request past it paid a new TCP and TLS handshake (583 in one wave of 1,000
    AppReleases with 32 workers). A smaller `pool_size` than that default leaves the default.
    """
    configuration = client.Configuration()
    if pool_size is not None:
        configuration.connection_pool_maxsize = max(pool_size, configuration.connection_pool_maxsize)
    loaders = [_in_cluster, _kubeconfig] if prefer_in_cluster else [_kubeconfig, _in_cluster]
    problems: list[str] = []
    for loader in loaders:
        try:
            namespace = loader(configuration, kubeconfig, context)
        except (config.ConfigException, FileNotFoundError, OSError) as err:
            problems.append(str(err))
            continue
        return Connection(client.ApiClient(configuration), namespace)
    raise KubeConfigError(
        "no Kubernetes credentials: set KUBECONFIG or pass --kubeconfig (" + "; ".join(problems) + ")"
    )


def _kubeconfig(configuration: client.Configuration, path: str | None, context: str | None) -> str:
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=path, context=context, client_configuration=configuration
    )
    contexts, active = config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    return str((chosen or {}).get("context", {}).get("namespace") or "default")


def _in_cluster(configuration: client.Configuration, _path: str | None, _context: str | None) -> str:
    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"
