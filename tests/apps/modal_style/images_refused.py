"""Images a Ray cluster cannot give: `rayfn deploy` refuses each with one sentence."""

import rayfn as modal

app = modal.App("modal-style-images-refused")

# Set where the test deploys; workers import this file too, where it is not set.
WHICH = __import__("os").environ.get("IMAGE_CASE", "apt-present")
IMAGES = {
    "apt": modal.Image.debian_slim().apt_install("surely-absent-apt-package"),
    "python": modal.Image.debian_slim(python_version="3.8"),
    "registry": modal.Image.from_registry("nvcr.io/nvidia/pytorch:24.01-py3"),
    "apt-present": modal.Image.debian_slim().apt_install("bash"),
}


@app.function(image=IMAGES[WHICH])
def f() -> int:
    return 1
