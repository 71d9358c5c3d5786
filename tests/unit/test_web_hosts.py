"""Host labels of web functions at the root of their own host (pure: no cluster)."""

from __future__ import annotations

from rayfn._web_hosting import host_label
from rayfn.runtime.records import WebEndpoint
from rayfn.serve._hosts import host_label as label_of_request

ASGI = WebEndpoint("asgi")


def test_a_web_function_has_a_dns_label_of_its_own() -> None:
    assert host_label("my-app", "page", ASGI) == "my-app-page"
    assert host_label("My_App", "Greeter.greet", ASGI) == "my-app-greeter-greet"
    assert host_label("my-app", "page", ASGI, dev=True) == "my-app-page-dev"
    assert host_label("a", "b", WebEndpoint("asgi", route_prefix="/team/jobs")) == "team-jobs"
    long = host_label("a" * 60, "b" * 60, ASGI)
    assert len(long) <= 63 and long.startswith("a" * 40) and long != host_label("a" * 60, "c", ASGI)


def test_the_label_a_request_asks_for_is_its_hosts_first() -> None:
    assert label_of_request("my-app-page.localhost:8000") == "my-app-page"
    assert label_of_request("My-App-Page.example.com") == "my-app-page"
    assert label_of_request("127.0.0.1:8000") is None
    assert label_of_request("[::1]:8000") is None
    assert label_of_request("localhost:8000") is None
    assert label_of_request("") is None
