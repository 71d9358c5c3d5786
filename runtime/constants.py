"""Names and defaults shared by every rayfn process. One line of why for each."""

# Ray namespace of rayfn's own actors, so they never collide with a user's names.
NAMESPACE = "rayfn"

# The control actor keeps deployed apps; one per cluster.
CONTROL_ACTOR_NAME = "rayfn:control"

# rayfn's own actors (control, registry, Dict/Queue stores) ask for a sliver of the
# resource only the head node has, as Ray Serve pins its controller: an actor that asks
# for nothing may land on a worker node, which the autoscaler removes once it is idle.
ON_HEAD_NODE = {"node:__internal_head__": 0.001}

# The call registry owns every call; the trailing number is its shard.
REGISTRY_SHARD = 0
REGISTRY_ACTOR_NAME = f"rayfn:registry:{REGISTRY_SHARD}"

# GCS key-value entry (plus the shard number) counting a registry shard's starts: its
# epoch, written into every call id it issues.
KV_REGISTRY_EPOCH_PREFIX = "rayfn:registry-epoch:"
# Prefix (plus the shard number) of a registry shard's journal of calls
# (runtime/journal.py): segments, snapshot chunks and the head entry naming them.
KV_JOURNAL_PREFIX = "rayfn:journal:"

# Prefix of the GCS key-value entries that persist deployed apps across actor restarts.
KV_APP_PREFIX = "rayfn:app:"

# Prefix of the GCS key-value entries holding deployed code, per app version and function
# (runtime/code.py), and how many versions of an app keep theirs: the previous one
# stays for calls dispatched just before a redeploy.
KV_CODE_PREFIX = "rayfn:code:"
# The attribute of rayfn's wrappers (a Function, a Cls) naming the user's code inside:
# a worker importing the user's module finds the wrapper there (runtime/sources.py).
CODE_ATTRIBUTE = "__rayfn_code__"

# Prefix of the GCS key-value entries holding secrets (name -> pickled dict of env vars).
KV_SECRET_PREFIX = "rayfn:secret:"
# Prefix of the GCS key-value entries holding Dict and Queue contents (runtime/stores.py),
# and how many bytes of keys and values one Dict or Queue may hold: the GCS keeps them
# in memory, so a store is for coordination and work items, not for bulk data.
KV_STORE_PREFIX = "rayfn:store:"
STORE_MAX_BYTES = 64 * 1024 * 1024
# The folder under which the cluster keeps volumes (runtime/volumes.py), for workers.
KV_VOLUMES_ROOT = "rayfn:volumes-root"
# Where Ray Serve listens for rayfn's HTTP side (RAYFN_HTTP_HOST, RAYFN_HTTP_PORT):
# loopback unless asked, so nothing is reachable from other machines by default.
DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8000
# The job API's defaults (RAYFN_HTTP_MAX_BODY, _MAX_RESULT, _BODY_TIMEOUT override them):
# request bodies and JSON results up to 16 MiB, and 10 s for each piece of a body.
DEFAULT_HTTP_MAX_BODY = 16 * 1024 * 1024
DEFAULT_HTTP_MAX_RESULT = 16 * 1024 * 1024
DEFAULT_HTTP_BODY_TIMEOUT_S = 10.0
# Where Ray Serve answers HTTP on this cluster (as the first ``serve.start`` set it),
# written when web functions are deployed: their URLs, from any process.
KV_HTTP_BASE_URL = "rayfn:http-base-url"
# Web functions at the root of a host of their own (serve/_hosts.py): the route prefix
# of each host label, one key each; and the header that marks a request handed on so.
KV_WEB_HOST_PREFIX = "rayfn:web-host:"
AT_ROOT_HEADER = b"x-rayfn-at-root"
# The settings the running job API was deployed with (JSON; the token only as a digest).
KV_API_CONFIG = "rayfn:api-config"

# How often the control actor looks for scheduled functions that are due, in seconds.
SCHEDULE_TICK_S = 0.2
# How often the control actor looks for ephemeral apps to stop (runtime/control.py).
REAP_EVERY_S = 1.0
CODE_VERSIONS_KEPT = 2
# How often a watch of a call's events (FunctionCall.watch, the API's event stream)
# looks at its status record, in seconds.
WATCH_EVERY_S = 0.25
# How long the registry keeps what an ended generator call yielded and nobody read to
# its end (runtime/streams.py); a reader after that is told its values are gone.
STREAM_KEEP_S = 600.0

# Call ids: "fc-", the issuing shard and its epoch, then 26 base32 characters carrying
# 128 random bits (runtime/ids.py).
CALL_ID_PREFIX = "fc-"
CALL_ID_RANDOM_BYTES = 16

# Seconds an ephemeral app outlives its client's last heartbeat (RAYFN_CLIENT_GRACE):
# long enough for a laptop's network blip, short enough that a killed run's calls stop.
DEFAULT_CLIENT_GRACE_S = 30.0

# How long a finished call's result is kept, in seconds (Modal keeps outputs for a day
# on its side; an hour bounds the object store memory a busy queue can pin).
DEFAULT_RESULT_TTL_S = 3600.0

# Upper bound of result_ttl; beyond a week a result store, not a queue, is wanted.
MAX_RESULT_TTL_S = 7 * 24 * 3600.0

# Expired call ids remembered so a late get() says "expired", not "not found".
DEFAULT_MAX_TOMBSTONES = 1_000_000

# How often the registry checks the deadline heap for results to drop, in seconds.
EXPIRY_TICK_S = 0.25

# Results dropped per slice of an expiry pass (well under a millisecond of work), and
# the pause after each: a real pause, not sleep(0), lets Ray's receiving thread take
# the GIL and hand the registry the calls that arrived meanwhile.
EXPIRY_SLICE = 250
EXPIRY_PAUSE_S = 0.001

# Calls an async rayfn actor serves at once; each waiting get() holds one slot.
ACTOR_MAX_CONCURRENCY = 10_000

# The longest wait a caller may ask for (get, Queue.get...): one year is past any real
# wait, and far inside what Ray's and asyncio's timers can represent.
MAX_WAIT_S = 365 * 24 * 3600.0

# Extra seconds a client waits for the registry beyond the get() timeout it asked for,
# so a slow round trip is not mistaken for a pending call.
GET_ROUND_TRIP_MARGIN_S = 30.0

# Per-attempt execution time limit (Modal's default), and its upper bound.
DEFAULT_TIMEOUT_S = 300.0
MAX_TIMEOUT_S = 24 * 3600.0

# How many calls one registry round trip of spawn_map/map carries.
SPAWN_BATCH_SIZE = 1000

# Results that pickle to at most this many bytes travel inside the task's first return
# and the registry's answer (no second fetch); larger ones stay in the object store.
INLINE_RESULT_BYTES = 64 * 1024

# Results larger than this fail the call (RAYFN_MAX_RESULT_BYTES, read by the worker).
DEFAULT_MAX_RESULT_BYTES = 1024**3

# A call reports RUNNING (and starts its timeout clock, from its real start) once it
# has run this long; shorter calls go from PENDING straight to their end.
REPORT_RUNNING_AFTER_S = 0.05

# How long a caller of rayfn's own actors waits out their restart before giving up.
CONTROL_RESTART_WAIT_S = 60.0
# Pause between tries of an operation while the actor it went to restarts.
RESTART_RETRY_PAUSE_S = 0.2
# How long a deploy waits for the registry to confirm it dropped the app's old version.
REGISTRY_NOTICE_WAIT_S = 10.0

# Packing: when a function's calls are short (they ran under PACK_MAX_RUN_S on
# average) and many are queued, the registry hands up to PACK_MAX_CALLS of them to Ray
# as one task that runs them in turn, so Ray's per-task cost is paid once per pack. A
# pack keeps at least PACK_SPREAD packs' worth of work per pack in the queue (so a
# short queue is still spread over many workers), and stops taking new calls after
# PACK_BUDGET_S.
PACK_MAX_RUN_S = 0.01
PACK_MAX_CALLS = 32
PACK_SPREAD = 8
PACK_BUDGET_S = 0.1
# Calls with a timeout shorter than this are never packed: a packed call's timeout
# clock starts when it reports RUNNING (after REPORT_RUNNING_AFTER_S).
PACK_MIN_TIMEOUT_S = 1.0

# Fair resources on a fixed cluster: a class's containers above min_containers that
# have been idle RECLAIM_IDLE_S are stopped before their scaledown_window when Ray has
# work waiting for the resources they hold (runtime/containers.py, to_reclaim). Ray's
# pending demand is read at most every RECLAIM_CHECK_S, and only while such containers
# exist; the pause also lets a stop show in Ray's demand before the next look.
RECLAIM_IDLE_S = 1.0
RECLAIM_CHECK_S = 1.0
