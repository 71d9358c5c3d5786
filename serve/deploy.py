"""Putting the job API on Ray Serve: the Serve application ``rayfn-api``, at route
``/`` (users' web functions, ``rayfn._web_hosting``, take longer prefixes, which Serve
prefers)."""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray import serve
from ray.serve.config import BackpressureConfig

from rayfn.config import settings
from rayfn.runtime import _ray_compat as ray_compat
from rayfn.runtime.constants import KV_API_CONFIG, NAMESPACE
from rayfn.serve._guard import token_digest
from rayfn.serve._hosting import ApiConfig, JobAPI

logger = logging.getLogger(__name__)
# Serve logs each of our calls at INFO ("Connecting to existing Serve app..."); the CLI
# prints what matters itself.
logging.getLogger("ray.serve").setLevel(logging.WARNING)

API_APP_NAME = "rayfn-api"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Requests one API replica serves at once (Serve's default of 5 let five stalled
# clients freeze the API), and how many more may wait at the proxies before 503.
API_MAX_ONGOING_REQUESTS = 512
API_MAX_QUEUED_REQUESTS = 512
# What a 503 tells clients to wait before trying again, in seconds.
API_RETRY_AFTER_S = 1.0
# The API adds a replica per this many cores of the cluster, up to API_MAX_REPLICAS.
API_CPUS_PER_REPLICA = 8
API_MAX_REPLICAS = 8


def deploy_api() -> str:
    """Run the job API on Serve with the settings now in force; returns its base URL.

    A running API with the same settings is left alone; one with other settings (a
    new ``RAYFN_API_TOKEN``, body or result limits) is redeployed, and this returns
    once the new one answers. Without ``RAYFN_API_TOKEN`` a running API keeps the
    token it has: removing it takes ``rayfn http stop`` first, never a forgotten
    variable.
    """
    s = settings()
    serve.start(http_options=s.serve_http_options)
    running = _running_api_config()
    token = s.api_token.get_secret_value() if s.api_token else None
    digest = token_digest(token) if token else (running and running.token_sha256)
    config = ApiConfig(digest or None, s.http_max_body, s.http_max_result, s.http_body_timeout)
    if config == running:
        return s.http_base_url
    if config.token_sha256 is None and s.http_host not in _LOOPBACK:
        logger.warning(
            "The rayfn job API listens on %s without a token: anyone who reaches it "
            "can run your functions. Set RAYFN_API_TOKEN.",
            s.http_host,
        )
    deployment = serve.deployment(
        name="JobAPI",
        ray_actor_options={"num_cpus": 0},
        # The API mostly waits on rayfn's actors: many requests share a replica, and
        # past that many more wait at the proxy; beyond both, Serve answers 503 with
        # Retry-After instead of queueing without bound.
        max_ongoing_requests=API_MAX_ONGOING_REQUESTS,
        max_queued_requests=API_MAX_QUEUED_REQUESTS,
        backpressure_config=BackpressureConfig(status_code=503, retry_after_s=API_RETRY_AFTER_S),
        **api_replicas(int(ray.cluster_resources().get("CPU", 1))),
    )(JobAPI)
    serve.run(deployment.bind(config), name=API_APP_NAME, route_prefix="/")
    ray_compat.kv_put(KV_API_CONFIG, config.to_json().encode(), namespace=NAMESPACE)
    return s.http_base_url


def stop_api() -> None:
    """Remove the job API from Serve (and what it ran with)."""
    serve.delete(API_APP_NAME)
    ray_compat.kv_delete(KV_API_CONFIG, namespace=NAMESPACE)


def _running_api_config() -> ApiConfig | None:
    """The settings the running job API was deployed with; None if none runs (or an
    older rayfn deployed it without saying)."""
    if API_APP_NAME not in serve.status().applications:
        return None
    stored = ray_compat.kv_get(KV_API_CONFIG, namespace=NAMESPACE)
    return None if stored is None else ApiConfig.from_json(stored)


def api_replicas(cores: int) -> dict[str, Any]:
    """The API's replica options on a cluster of ``cores`` CPUs: one replica per
    API_CPUS_PER_REPLICA cores, started at one and added by Serve's autoscaler as
    requests pile up."""
    most = max(1, min(API_MAX_REPLICAS, cores // API_CPUS_PER_REPLICA))
    if most == 1:
        return {"num_replicas": 1}
    return {
        "autoscaling_config": {
            "min_replicas": 1,
            "max_replicas": most,
            "target_ongoing_requests": API_MAX_ONGOING_REQUESTS // 4,
        }
    }
