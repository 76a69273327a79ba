"""Registry auth without a registry: challenges, docker's config.json, the token flow."""

from __future__ import annotations

import base64
import http.server
import json
import os
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from sampan.errors import InvalidArgument
from sampan.image.registry import auth
from sampan.image.registry.auth import Authenticator, Credentials, parse_challenges
from sampan.image.registry.errors import Unauthorized
from sampan.image.registry.transport import Transport


def test_parse_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    [challenge] = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull",
    }


def test_parse_challenge_forms() -> None:
    [basic] = parse_challenges('Basic realm="Registry Realm"')
    assert (basic.scheme, basic.params) == ("basic", {"realm": "Registry Realm"})
    both = parse_challenges(
        'Basic realm="a, b", Bearer realm=http://x/t,error="insufficient_scope"'
    )
    assert [c.scheme for c in both] == ["basic", "bearer"]
    assert both[0].params == {"realm": "a, b"}
    assert both[1].params == {"realm": "http://x/t", "error": "insufficient_scope"}
    [escaped] = parse_challenges(r'Bearer realm="say \"hi\""')
    assert escaped.params["realm"] == 'say "hi"'
    assert parse_challenges("") == []


def test_config_round_trip(tmp_path: Path) -> None:
    d = str(tmp_path / "cfg")
    assert auth.load_credentials("127.0.0.1:5000", d) is None
    path = auth.store_credentials("127.0.0.1:5000", "bob", "pa:ss", d)
    assert os.stat(path).st_mode & 0o777 == 0o600
    doc = json.loads(Path(path).read_text())
    assert doc["auths"]["127.0.0.1:5000"]["auth"] == base64.b64encode(b"bob:pa:ss").decode()
    creds = auth.load_credentials("127.0.0.1:5000", d)
    assert creds is not None and (creds.username, creds.password) == ("bob", "pa:ss")
    assert "pa:ss" not in repr(creds)
    # other keys survive; a second login replaces the entry
    doc["credsStore"] = "desktop"
    Path(path).write_text(json.dumps(doc))
    auth.store_credentials("http://127.0.0.1:5000/v2/", "carol", "x", d)
    doc = json.loads(Path(path).read_text())
    assert doc["credsStore"] == "desktop" and list(doc["auths"]) == ["127.0.0.1:5000"]
    assert auth.erase_credentials("127.0.0.1:5000", d) is True
    assert auth.erase_credentials("127.0.0.1:5000", d) is False
    assert auth.load_credentials("127.0.0.1:5000", d) is None


def test_docker_hub_key_and_url_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    hub = base64.b64encode(b"hubuser:hubpw").decode()
    other = base64.b64encode(b"u:p").decode()
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": hub},
                    "https://quay.example:8443": {"auth": other},
                    "ident.example": {"identitytoken": "refresh-me"},
                }
            }
        )
    )
    for name in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        creds = auth.load_credentials(name)
        assert creds is not None and creds.username == "hubuser"
    quay = auth.load_credentials("quay.example:8443")
    assert quay is not None and quay.password == "p"
    ident = auth.load_credentials("ident.example")
    assert ident is not None and ident.identity_token == "refresh-me"
    auth.store_credentials("docker.io", "new", "pw")
    keys = json.loads((tmp_path / "config.json").read_text())["auths"]
    assert "https://index.docker.io/v1/" in keys and "docker.io" not in keys


def test_bad_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match=r"config\.json: not valid JSON"):
        auth.load_credentials("h", str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"h": {"auth": "bm9jb2xvbg=="}}}))
    with pytest.raises(InvalidArgument, match=r"auths.h.auth is not base64\(user:password\)"):
        auth.load_credentials("h", str(tmp_path))
    with pytest.raises(InvalidArgument, match="username"):
        auth.store_credentials("h", "a:b", "pw", str(tmp_path))


class _Realm:
    """A token realm on loopback: grants to bob:pw, counts requests."""

    def __init__(self) -> None:
        self.seen: list[dict[str, list[str]]] = []
        realm = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                realm.seen.append(query)
                ok = self.headers.get("Authorization") == Credentials("bob", "pw").basic()
                granted = {"token": f"tok{len(realm.seen)}", "expires_in": 300}
                refused = {"errors": [{"code": "UNAUTHORIZED", "message": "no way"}]}
                body = json.dumps(granted if ok else refused).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def realm() -> Iterator[_Realm]:
    r = _Realm()
    yield r
    r.httpd.shutdown()
    r.httpd.server_close()


def test_token_flow_caches_per_scope(realm: _Realm) -> None:
    with Transport() as transport:
        a = Authenticator(transport, credentials={"reg.example": Credentials("bob", "pw")})
        assert a.header("reg.example", ["repository:x:pull"]) is None  # no challenge yet
        challenge = f'Bearer realm="{realm.url}",service="reg"'
        assert a.challenge("reg.example", challenge, ["repository:x:pull"]) == "Bearer tok1"
        assert a.header("reg.example", ["repository:x:pull"]) == "Bearer tok1"  # cached
        # a new scope is fetched before any 401, now that the realm is known
        assert a.header("reg.example", ["repository:y:pull,push"]) == "Bearer tok2"
        assert realm.seen[1] == {
            "service": ["reg"],
            "scope": ["repository:y:pull,push"],
            "account": ["bob"],
        }
        assert len(realm.seen) == 2


def test_token_flow_refused(realm: _Realm) -> None:
    with Transport() as transport:
        wrong = Authenticator(transport, credentials={"reg.example": Credentials("bob", "x")})
        bad_password = r"incorrect username or password for reg\.example"
        with pytest.raises(Unauthorized, match=bad_password):
            wrong.challenge("reg.example", f'Bearer realm="{realm.url}"', ["s"], "reg.example/x")
        anonymous = Authenticator(transport, credentials={})
        with pytest.raises(Unauthorized, match=r"authentication required for reg\.example/x"):
            anonymous.challenge(
                "reg.example", f'Bearer realm="{realm.url}"', ["s"], "reg.example/x"
            )
        with pytest.raises(Unauthorized, match=r"authentication required for reg\.example/x"):
            anonymous.challenge("reg.example", 'Basic realm="r"', ["s"], "reg.example/x")
        with pytest.raises(Unauthorized, match="not support"):
            anonymous.challenge("reg.example", "Negotiate", ["s"])


def test_basic_challenge_uses_credentials() -> None:
    with Transport() as transport:
        a = Authenticator(transport, credentials={"h:1": Credentials("u", "p")})
        value = a.challenge("h:1", 'Basic realm="r"', ["repository:x:pull"])
        assert value == "Basic " + base64.b64encode(b"u:p").decode()
        assert a.header("h:1", ["repository:other:push"]) == value
