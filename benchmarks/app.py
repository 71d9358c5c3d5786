"""The functions the benchmarks call, rayfn's and raw Ray's side by side."""

import ray

import rayfn

app = rayfn.App("rayfn-bench")


@app.function()
def noop(x=None):
    return None


@ray.remote
def raw_noop(x=None):
    return None
