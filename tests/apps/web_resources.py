"""Web functions that ask for resources, for tests/test_http.py."""

import rayfn

app = rayfn.App("web-resources")


@app.function(cpu=0.5, memory=256)
@rayfn.fastapi_endpoint(method="GET")
def sized():
    import ray

    return ray.get_runtime_context().get_assigned_resources()  # what this replica holds


@app.function(gpu="any")
@rayfn.fastapi_endpoint(method="GET")
def needs_gpu():
    return "ran without a GPU"
