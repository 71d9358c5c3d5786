"""Ray Serve: the built-in HTTP job API and users' ASGI apps (coming next)."""
