"""``python -m rayfn.cli``, as the ``rayfn`` script."""

from rayfn.cli import main

main()
