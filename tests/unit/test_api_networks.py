"""api/networks.py: the /networks endpoints over the real HTTP server, in front of a fake
NetworkService (no daemon, no root).  The bodies are those the docker CLI 28 and
docker-py send (captured from `docker -H unix://...` against a recording socket)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sampan.api.client import ApiError, Client
from sampan.api.router import make_router
from sampan.api.server import ApiServer
from sampan.errors import Conflict, InvalidArgument, NotFound

NET_ID = "7a3f" * 16
CREATED = "2024-05-01T10:00:00.123456789Z"

# `docker network create --subnet 10.5.0.0/24 --gateway 10.5.0.1 --ip-range 10.5.0.128/25
#  --aux-address a=10.5.0.5 --internal --attachable --label x=y
#  -o com.docker.network.bridge.name=foo n2`, as the docker CLI 28.2 sent it (API 1.41).
DOCKER_CREATE = {
    "Driver": "bridge", "Scope": "",
    "IPAM": {"Driver": "default", "Options": {}, "Config": [
        {"Subnet": "10.5.0.0/24", "IPRange": "10.5.0.128/25", "Gateway": "10.5.0.1",
         "AuxiliaryAddresses": {"a": "10.5.0.5"}}]},
    "Internal": True, "Attachable": True, "Ingress": False, "ConfigOnly": False,
    "ConfigFrom": None, "Options": {"com.docker.network.bridge.name": "foo"},
    "Labels": {"x": "y"}, "Name": "n2", "CheckDuplicate": True,
}  # fmt: skip
# `docker network connect --ip 10.0.0.2 --alias a1 --alias a2 --link c2:db n1 c1`
DOCKER_CONNECT = {
    "Container": "c1",
    "EndpointConfig": {
        "IPAMConfig": {"IPv4Address": "10.0.0.2"}, "Links": ["c2:db"], "Aliases": ["a1", "a2"],
        "MacAddress": "", "DriverOpts": {}, "GwPriority": 0, "NetworkID": "", "EndpointID": "",
        "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None,
    },
}  # fmt: skip


def network_doc(name: str, nid: str, **extra: Any) -> dict[str, Any]:
    """A network in docker's inspect shape."""
    doc = {
        "Name": name, "Id": nid, "Created": CREATED, "Scope": "local", "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None,
                 "Config": [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}]},
        "Internal": False, "Attachable": False, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": {"c" * 64: {"Name": "web", "EndpointID": "e" * 64,
                                  "MacAddress": "02:42:0a:09:00:02",
                                  "IPv4Address": "10.9.0.2/24", "IPv6Address": ""}},
        "Options": {}, "Labels": {},
    }  # fmt: skip
    doc.update(extra)
    return doc


class FakeNetworks:
    """NetworkService's interface over a dict; every call recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.nets: dict[str, dict[str, Any]] = {
            "bridge": network_doc("bridge", "b" * 64),
            "web10": network_doc("web10", "1" * 64, Labels={"env": "prod", "team": "a"}),
            "web9": network_doc("web9", "9" * 64, Internal=True),
        }

    def _get(self, ref: str) -> dict[str, Any]:
        for doc in self.nets.values():
            if ref in (doc["Name"], doc["Id"]) or (len(ref) >= 3 and doc["Id"].startswith(ref)):
                return doc
        raise NotFound(f"network {ref} not found")

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", body))
        if body["Name"] in self.nets:
            raise Conflict(f"network with name {body['Name']} already exists")
        if body.get("Driver") not in (None, "", "bridge"):
            raise InvalidArgument(f"Driver: {body['Driver']!r}")
        self.nets[body["Name"]] = network_doc(body["Name"], NET_ID, Labels=body.get("Labels"))
        return {"Id": NET_ID, "Warning": ""}

    def listing(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        self.calls.append(("list", filters))
        names = filters.get("name")
        return [d for d in self.nets.values() if not names or any(n in d["Name"] for n in names)]

    def inspect(self, name: str, verbose: bool = False) -> dict[str, Any]:
        self.calls.append(("inspect", name, verbose))
        return self._get(name)

    def remove(self, name: str) -> None:
        self.calls.append(("remove", name))
        doc = self._get(name)
        if doc["Name"] == "bridge":
            raise Conflict("bridge is a pre-defined network and cannot be removed")
        del self.nets[doc["Name"]]

    def prune(self, filters: dict[str, list[str]]) -> list[str]:
        self.calls.append(("prune", filters))
        gone = [n for n in self.nets if n != "bridge"]
        for name in gone:
            del self.nets[name]
        return gone

    def connect(self, name: str, container: str, endpoint_config: dict[str, Any] | None) -> None:
        self.calls.append(("connect", name, container, endpoint_config))
        self._get(name)
        if container == "ghost":
            raise NotFound("No such container: ghost")

    def disconnect(self, name: str, container: str, force: bool) -> None:
        self.calls.append(("disconnect", name, container, force))
        self._get(name)


class FakeEngine:
    def __init__(self) -> None:
        self.networks = FakeNetworks()

    def release_thread(self) -> None:
        pass


class Served:
    """An ApiServer with every route, in front of FakeEngine, on a socket of its own."""

    def __init__(self, path: str) -> None:
        self.engine = FakeEngine()
        self.path = path
        self.host = f"unix://{path}"
        self.client = Client(self.host)
        self.server = ApiServer(self.engine, path, make_router())  # type: ignore[arg-type]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self.thread.start()

    @property
    def calls(self) -> list[tuple[Any, ...]]:
        return self.engine.networks.calls

    def raw(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        """One request with any path (a version prefix of the caller's choice)."""
        conn = http.client.HTTPConnection("localhost", timeout=10)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.path)
        conn.sock = sock
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, json.loads(data) if data else None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(str(tmp_path / "api.sock"))
    yield s
    s.close()


# -- create ------------------------------------------------------------------------------


def test_create_passes_the_docker_clis_body_to_the_engine(served: Served) -> None:
    status, doc = served.raw("POST", "/v1.41/networks/create", json.dumps(DOCKER_CREATE).encode())
    assert (status, doc) == (201, {"Id": NET_ID, "Warning": ""})
    assert served.calls == [("create", DOCKER_CREATE)]


def test_create_a_taken_name_is_409(served: Served) -> None:
    with pytest.raises(ApiError) as caught:
        served.client.json("POST", "/networks/create", None, {"Name": "web9"})
    assert caught.value.status == 409 and "already exists" in caught.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1], "request body: expected a JSON object"),
        ({}, "Name: required"),
        ({"Name": None}, "Name: must not be null"),
        ({"Name": 5}, "Name: expected a string"),
        ({"Name": "n", "Internal": "yes"}, "Internal: expected a boolean"),
        ({"Name": "n", "Attachable": 1}, "Attachable: expected a boolean"),
        ({"Name": "n", "Driver": ["bridge"]}, "Driver: expected a string"),
        ({"Name": "n", "Labels": {"a": 1}}, "Labels: expected an object of strings"),
        ({"Name": "n", "Options": ["a=b"]}, "Options: expected an object of strings"),
        ({"Name": "n", "IPAM": []}, "IPAM: expected an object"),
        ({"Name": "n", "IPAM": {"Config": {}}}, "IPAM.Config: expected a list"),
        ({"Name": "n", "IPAM": {"Config": ["10.0.0.0/8"]}}, "IPAM.Config[0]: expected a JSON"),
        ({"Name": "n", "IPAM": {"Config": [{"Subnet": 10}]}},
         "IPAM.Config[0].Subnet: expected a string"),
        ({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.1.0.0/16", "Bogus": ""}]}},
         "IPAM.Config[0].Bogus: unknown field"),
        ({"Name": "n", "IPAM": {"Config": [{"AuxiliaryAddresses": {"a": 1}}]}},
         "IPAM.Config[0].AuxiliaryAddresses: expected an object of strings"),
        ({"Name": "n", "IPAM": {"Drivr": "default"}}, "IPAM.Drivr: unknown field"),
        ({"Name": "n", "ConfigFrom": {"Network": 3}}, "ConfigFrom.Network: expected a string"),
        ({"Name": "n", "EnableIPv6": "false"}, "EnableIPv6: expected a boolean"),
        ({"Name": "n", "Foo": 1}, "Foo: unknown field"),
    ],
)  # fmt: skip
def test_create_bad_shapes_are_400_naming_the_field(
    served: Served, body: Any, message: str
) -> None:
    with pytest.raises(ApiError) as caught:
        served.client.json("POST", "/networks/create", None, body)
    assert caught.value.status == 400 and message in caught.value.message
    assert served.calls == []  # the engine never saw it


def test_create_needs_a_body_and_refuses_no_ipv4(served: Served) -> None:
    status, doc = served.raw("POST", "/networks/create", b"")
    assert status == 400 and "a JSON document is required" in doc["message"]
    status, doc = served.raw("POST", "/networks/create", b"{nope")
    assert status == 400
    with pytest.raises(ApiError) as caught:
        served.client.json("POST", "/networks/create", None, {"Name": "n", "EnableIPv4": False})
    assert caught.value.status == 501 and "EnableIPv4" in caught.value.message
    # EnableIPv4 true (clients of API 1.47+) is what sampan does anyway
    served.client.json("POST", "/networks/create", None, {"Name": "n", "EnableIPv4": True})
    assert served.calls == [("create", {"Name": "n", "EnableIPv4": True})]


# -- list, inspect -----------------------------------------------------------------------


def test_list_passes_filters_and_leaves_out_containers(served: Served) -> None:
    found = served.client.json("GET", "/networks", {"filters": '{"name": {"web": true}}'})
    assert sorted(n["Name"] for n in found) == ["web10", "web9"]
    assert all(n["Containers"] == {} for n in found)  # API >= 1.28: only inspect has them
    assert served.calls == [("list", {"name": ["web"]})]
    served.client.json("GET", "/networks", {"filters": '{"driver": ["bridge"], "label": []}'})
    assert served.calls[-1] == ("list", {"driver": ["bridge"], "label": []})
    status, old = served.raw("GET", "/v1.27/networks")
    assert status == 200 and old[0]["Containers"]  # older clients got them
    status, doc = served.raw("GET", "/networks?filters=%5B1%5D")
    assert status == 400 and "filters: expected a JSON object" in doc["message"]
    status, doc = served.raw("GET", "/networks?filters=%7B%22name%22%3A5%7D")
    assert status == 400 and "expected a list of strings" in doc["message"]


def test_inspect_verbose_scope_and_missing(served: Served) -> None:
    doc = served.client.json("GET", "/networks/web9")
    assert doc["Id"] == "9" * 64 and doc["Containers"]
    served.client.json("GET", "/networks/web9", {"verbose": "true", "scope": "local"})
    assert served.calls == [("inspect", "web9", False), ("inspect", "web9", True)]
    for query in ({"scope": "swarm"}, None):
        name = "web9" if query else "nope"
        with pytest.raises(ApiError) as caught:
            served.client.json("GET", f"/networks/{name}", query)
        assert caught.value.status == 404
        assert caught.value.message == f"network {name} not found"


# -- rm, prune ---------------------------------------------------------------------------


def test_remove_is_204_and_errors_keep_their_status(served: Served) -> None:
    status, body = served.raw("DELETE", "/v1.41/networks/web9")
    assert (status, body) == (204, None)
    for name, code in (("web9", 404), ("bridge", 409)):
        with pytest.raises(ApiError) as caught:
            served.client.request("DELETE", f"/networks/{name}")
        assert caught.value.status == code


def test_prune_reports_the_names(served: Served) -> None:
    doc = served.client.json("POST", "/networks/prune", {"filters": '{"until": ["1h"]}'})
    assert doc == {"NetworksDeleted": ["web10", "web9"]}
    assert served.calls == [("prune", {"until": ["1h"]})]


# -- connect, disconnect -----------------------------------------------------------------


def test_connect_passes_the_endpoint_config(served: Served) -> None:
    status, body = served.raw("POST", "/networks/web9/connect", json.dumps(DOCKER_CONNECT).encode())
    assert (status, body) == (200, None)
    assert served.calls == [("connect", "web9", "c1", DOCKER_CONNECT["EndpointConfig"])]
    served.client.request("POST", "/networks/web9/connect", None, {"Container": "c2"})
    assert served.calls[-1] == ("connect", "web9", "c2", None)
    with pytest.raises(ApiError) as caught:
        served.client.request("POST", "/networks/web9/connect", None, {"Container": "ghost"})
    assert caught.value.status == 404 and caught.value.message == "No such container: ghost"


@pytest.mark.parametrize(
    ("action", "body", "message"),
    [
        ("connect", {}, "Container: required"),
        ("connect", {"Container": 7}, "Container: expected a string"),
        ("connect", {"Container": "c", "EndpointConfig": "x"},
         "EndpointConfig: expected an object"),
        ("connect", {"Container": "c", "Endpoint": {}}, "Endpoint: unknown field"),
        ("disconnect", {"Container": "c", "Force": "yes"}, "Force: expected a boolean"),
        ("disconnect", {"Force": True}, "Container: required"),
        ("disconnect", "c", "request body: expected a JSON object"),
    ],
)  # fmt: skip
def test_connect_and_disconnect_bad_bodies(
    served: Served, action: str, body: Any, message: str
) -> None:
    with pytest.raises(ApiError) as caught:
        served.client.request("POST", f"/networks/web9/{action}", None, body)
    assert caught.value.status == 400 and message in caught.value.message
    assert served.calls == []


def test_disconnect_passes_force(served: Served) -> None:
    served.client.request("POST", "/networks/web9/disconnect", None,
                          {"Container": "c1", "Force": True})  # fmt: skip
    served.client.request("POST", "/networks/web9/disconnect", None, {"Container": "c1"})
    assert served.calls == [("disconnect", "web9", "c1", True),
                            ("disconnect", "web9", "c1", False)]  # fmt: skip


# -- docker-py ---------------------------------------------------------------------------


def test_docker_py_network_calls(served: Served) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=served.host, version="1.41")
    try:
        ipam = docker.types.IPAMConfig(pool_configs=[
            docker.types.IPAMPool(subnet="10.7.0.0/24", gateway="10.7.0.1")])  # fmt: skip
        net = client.networks.create("pynet", driver="bridge", ipam=ipam, labels={"k": "v"},
                                     internal=True, check_duplicate=True)  # fmt: skip
        assert net.id == NET_ID
        _, body = served.calls[0]
        assert body["Name"] == "pynet" and body["Internal"] is True
        assert body["IPAM"]["Config"][0]["Subnet"] == "10.7.0.0/24"
        assert {n.name for n in client.networks.list(names=["web"])} == {"web10", "web9"}
        net.connect("c1", aliases=["db"], links=[("c2", "x")], ipv4_address="10.7.0.9")
        config = served.calls[-1][3]
        assert config["Aliases"] == ["db"] and config["Links"] == ["c2:x"]
        assert config["IPAMConfig"]["IPv4Address"] == "10.7.0.9"
        net.disconnect("c1", force=True)
        assert served.calls[-1] == ("disconnect", NET_ID, "c1", True)
        assert client.networks.prune() == {"NetworksDeleted": ["web10", "web9", "pynet"]}
        with pytest.raises(docker.errors.NotFound):
            client.networks.get("web9")
        with pytest.raises(docker.errors.APIError) as caught:
            client.api.create_network("x", driver="bridge", options={"a": 1})  # type: ignore[dict-item]
        assert "Options: expected an object of strings" in str(caught.value)
    finally:
        client.close()
