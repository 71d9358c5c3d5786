"""Issue 17, item 7, as a Modal user writes it: a web endpoint shows its own /docs only
when asked (`docs=True`)."""

import rayfn as modal

app = modal.App("modal-style-web")


@app.function()
@modal.fastapi_endpoint(docs=True)
def documented(x: int) -> dict[str, int]:
    return {"double": 2 * x}


@app.function()
@modal.fastapi_endpoint()
def plain(x: int) -> dict[str, int]:
    return {"triple": 3 * x}
