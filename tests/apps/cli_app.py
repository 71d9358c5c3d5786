"""An app with an entrypoint that takes options, for the CLI tests."""

import time

import rayfn

app = rayfn.App("test-cli")


@app.function()
def double(x: int) -> int:
    return 2 * x


@app.function()
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.local_entrypoint()
def main(n: int = 3, word: str = "ho"):
    print(" ".join([word] * n))


@app.local_entrypoint()
def doubles(n: int = 5):
    print(list(double.map(range(n))))
