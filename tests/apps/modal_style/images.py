"""Issue 17, item 1, as a Modal user writes it: images on the app, on one function and on
a class, each call in its own; `rayfn run tests/apps/modal_style/images.py`."""

import os

import rayfn as modal

app_image = modal.Image.debian_slim(python_version="3.11").env({"WHO": "the app's image"})
own_image = (
    modal.Image.debian_slim()
    .uv_pip_install("fastapi")  # the cluster has it: no virtualenv is built
    .env({"WHO": "its own image"})
)
class_image = modal.Image.micromamba().pip_install("pydantic").env({"WHO": "the class's image"})

app = modal.App("modal-style-images", image=app_image)

with own_image.imports():
    import fastapi  # noqa: F401  (Modal programs import what the image has like this)
    import surely_not_installed_anywhere  # noqa: F401


@app.function()
def plain() -> str | None:
    return os.environ.get("WHO")


@app.function(image=own_image)
def own() -> str | None:
    return os.environ.get("WHO")


@app.cls(image=class_image)
class Model:
    @modal.method()
    def who(self) -> str | None:
        return os.environ.get("WHO")


@app.local_entrypoint()
def main() -> None:
    print("plain:", plain.remote())
    print("own:", own.remote())
    print("class:", Model().who.remote())
