"""Issue 17, item 7: `rayfn run` serves the app's web endpoints while it runs, as `modal
run` does, and `get_web_url()` says where, here and inside a remote function."""

import httpx

import rayfn as modal

app = modal.App("modal-style-web-run")


@app.function()
@modal.fastapi_endpoint()
def hello(name: str = "you") -> dict[str, str]:
    return {"hello": name}


@app.function()
def where() -> str | None:
    return hello.get_web_url()


@app.local_entrypoint()
def main() -> None:
    url = hello.get_web_url()
    print("url:", url)
    print("same inside a call:", where.remote() == url)
    print("answer:", httpx.get(url, params={"name": "run"}, timeout=30).json())
