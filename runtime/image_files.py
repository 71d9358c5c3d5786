"""An image's local files (``add_local_dir``, ``add_local_file``) at the paths the image
names, and its ``workdir``, in each worker process that runs its calls (a relative
path is under the workdir, else under the copy described below).

The deploying client copies the files into one folder, ``<n>/<name>`` for its n-th
entry, which Ray ships as the runtime env's ``working_dir`` (a worker starts in Ray's
copy of it); the environment variables below say where each goes. Absolute paths are
symlinks on the node (one image's files per path and node at a time), relative ones
are under that copy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rayfn.runtime.links import link

# [[remote path, path in the working_dir copy], ...] and the image's workdir.
FILES_ENV = "RAYFN_IMAGE_FILES"
WORKDIR_ENV = "RAYFN_IMAGE_WORKDIR"

_placed = False


def place() -> None:
    """Once per process, before its first call: the files where the image says, then
    its workdir as the working directory.

    Raises:
        RuntimeError: a path cannot be written on this node (the call fails saying so).
    """
    global _placed
    if _placed:
        return
    copy = Path.cwd()  # Ray's copy of the image's files
    workdir = os.environ.get(WORKDIR_ENV)
    if workdir:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    base = Path(workdir) if workdir else copy  # what a relative remote path is under
    for remote, inside in json.loads(os.environ.get(FILES_ENV, "[]")):
        link(base / remote, copy / inside, "the image's files")  # absolute: base ignored
    if workdir:
        os.chdir(workdir)
    _placed = True
