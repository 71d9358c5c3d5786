"""What runs inside Ray: the control actor, the call registry, the task executor and
the pure policies they apply. Nothing here imports the SDK, the CLI or Ray Serve (but
``_ray_compat.serve_run``, for the SDK, inside the function). Every private Ray API
rayfn uses is in ``_ray_compat``."""
