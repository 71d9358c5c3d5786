"""What runs inside Ray: the control actor, the call registry, the task executor and
the pure policies they apply. Nothing here imports the SDK, the CLI or Ray Serve."""
