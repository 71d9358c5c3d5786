"""Ray Serve: the built-in HTTP job API (``rayfn.serve.api``) and hosting of users'
web functions (``rayfn.serve.deploy``). Imported only by code that serves HTTP."""
