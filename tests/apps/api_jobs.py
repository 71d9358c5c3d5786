"""Functions the job API tests call over HTTP."""

import time

import rayfn

app = rayfn.App("api-jobs")


@app.function()
def add(a, b=0):
    return a + b


@app.function()
def nap(seconds):
    time.sleep(seconds)
    return seconds


@app.function(result_ttl=1)
def fleeting(value):
    return value


@app.function()
def explode(message):
    raise ValueError(message)


@app.function()
def not_json():
    return "a lone \ud800 surrogate"


@app.function()
def binary(size):
    return b"\xff\xfe" * (size // 2)


@app.function()
@rayfn.fastapi_endpoint(method="GET")
def square(x: int):
    return {"square": x * x}
