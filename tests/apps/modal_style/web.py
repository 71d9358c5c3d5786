"""Issue 17, item 7, as a Modal user writes it: the kinds of web function, deployed with
`rayfn deploy tests/apps/modal_style/web.py`. A fastapi endpoint shows its own /docs only
when asked (`docs=True`); a Flask app (`@wsgi_app`); a server the function starts
(`@web_server`); a class's endpoints, served by an instance built once; an endpoint
streaming what a generator function yields; a site whose pages use absolute paths, at
the root of its own host."""

import subprocess
import sys
import tempfile
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

import rayfn as modal

app = modal.App("modal-style-web")
SERVER_PORT = 18765


@app.function()
@modal.fastapi_endpoint(docs=True)
def documented(x: int) -> dict[str, int]:
    return {"double": 2 * x}


@app.function()
@modal.fastapi_endpoint()
def plain(x: int) -> dict[str, int]:
    return {"triple": 3 * x}


@app.function()
@modal.wsgi_app()
def flask_app():
    from flask import Flask, request

    web = Flask(__name__)

    @web.route("/hello")
    def hello() -> dict[str, str]:
        return {"hello": request.args.get("name", "world")}

    return web


@app.function()
@modal.web_server(SERVER_PORT, startup_timeout=30)
def files() -> None:
    folder = Path(tempfile.mkdtemp())
    (folder / "hello.txt").write_text("served by http.server")
    command = [sys.executable, "-m", "http.server", str(SERVER_PORT), "--bind", "127.0.0.1"]
    subprocess.Popen([*command, "--directory", str(folder)])


@app.cls()
class Greeter:
    @modal.enter()
    def load(self) -> None:
        self.greeting = "hello"  # built once per replica, before any request

    @modal.fastapi_endpoint()
    def greet(self, name: str) -> dict[str, str]:
        return {"greeting": f"{self.greeting} {name}"}


@app.function()
def letters(word: str):
    yield from word


@app.function()
@modal.fastapi_endpoint()
def spell(word: str) -> StreamingResponse:
    return StreamingResponse((f"{c}\n" for c in letters.remote_gen(word)), media_type="text/plain")


site_app = FastAPI()


@site_app.get("/")
def home() -> HTMLResponse:
    return HTMLResponse('<a href="/about">about</a>')


@site_app.get("/about")
def about() -> dict[str, str]:
    return {"page": "about"}


@site_app.get("/go")
def go() -> RedirectResponse:
    return RedirectResponse("/about")


@app.function()
@modal.asgi_app()
def site() -> FastAPI:
    return site_app
