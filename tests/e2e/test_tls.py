"""HTTPS: `berth serve --tls-cert --tls-key` with a test CA made here.

The official SDK (`protocol='https'`, the CA in its `ca` option) creates, describes and execs
over TLS; the exec URL handed out is `wss://` and works with the CA; `berth logs -f` follows
an `https://` stream; the CLI trusts the CA given with `--ca-file` or `BERTH_CA_FILE`. Plain
HTTP to the HTTPS address is answered with `InvalidProtocol.NeedSsl`, and a client without
the CA refuses the server. Bad certificate or key files stop `berth serve` at once with a
message, and a key file other users may read is refused. This berth has a state directory,
bridge and subnet of its own and leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websocket
from alibabacloud_eci20180808 import models
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import support
from support import REGION, Berth, container, wait_for, wait_status

BRIDGE = "berthtls0"
SUBNET = "10.215.0.0/16"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_pki(out: Path, ip: str = "127.0.0.1") -> dict[str, Path]:
    """A CA, a server certificate for `ip` signed by it, and an unrelated CA."""
    now = dt.datetime.now(dt.timezone.utc)
    paths = {}

    def ca(cn: str):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return key, cert

    ca_key, ca_cert = ca("berth e2e test CA")
    _, other_cert = ca("some other CA")
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("berth e2e server"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    for name, data in (
        ("ca.pem", _pem(ca_cert)),
        ("other-ca.pem", _pem(other_cert)),
        ("server.pem", _pem(server_cert)),
    ):
        paths[name] = out / name
        paths[name].write_bytes(data)
    paths["server.key"] = out / "server.key"
    fd = os.open(paths["server.key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(_key_pem(server_key))
    return paths


class TlsBerth(Berth):
    """`berth serve` over HTTPS, on its own bridge and subnet."""

    def __init__(self, base: Path, args: list[str]):
        self.pki = make_pki(base)
        super().__init__(
            base / "state",
            base / "berth.log",
            [
                *args,
                "--tls-cert", str(self.pki["server.pem"]),
                "--tls-key", str(self.pki["server.key"]),
            ],
        )
        self.ca = self.pki["ca.pem"]
        self.url = f"https://{self.endpoint}"

    def client(self, secret: str | None = None, **config) -> Client:
        creds = self.credentials()
        cfg = Config(
            access_key_id=creds["AccessKeyId"],
            access_key_secret=secret if secret is not None else creds["AccessKeySecret"],
            endpoint=self.endpoint,
            region_id=REGION,
            connect_timeout=5000,
            read_timeout=60000,
            **{"protocol": "https", "ca": str(self.ca), **config},
        )
        return Client(cfg)

    def cli(self, *args: str, timeout: float = 60, ca: bool = True, input: str | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        cmd = [str(support.BERTH_BIN), "--endpoint", self.url,
               "--credentials", str(self.credentials_path)]
        if ca:
            cmd += ["--ca-file", str(self.ca)]
        base_env = {k: v for k, v in os.environ.items() if k != "BERTH_CA_FILE"}
        return subprocess.run(
            [*cmd, *args], capture_output=True, text=True, timeout=timeout,
            input=input, stdin=None if input is not None else subprocess.DEVNULL,
            env={**base_env, **(env or {})},
        )


@pytest.fixture(scope="module")
def tls(host_ready, images):
    with support.own_berth("tls", bridge=BRIDGE, subnet=SUBNET, make=TlsBerth) as server:
        yield server, server.pki, server.tracker


def _create(server: TlsBerth, images, name: str, command: list[str], policy="Always") -> str:
    req = models.CreateContainerGroupRequest(
        region_id=REGION,
        container_group_name=name,
        restart_policy=policy,
        termination_grace_period_seconds=1,
        plain_http_registry=images.registry,
        container=[container("main", images.image, command)],
    )
    return server.client().create_container_group(req).body.container_group_id


def _exec(client: Client, gid: str, command: list[str], sync: bool, stdin=False):
    req = models.ExecContainerCommandRequest(
        region_id=REGION, container_group_id=gid, container_name="main",
        command=json.dumps(command), tty=False, stdin=stdin, sync=sync,
    )
    return client.exec_container_command(req).body


def _channels(uri: str, ca: Path) -> tuple[bytes, dict | None]:
    """Runs a v4.channel.k8s.io session to its end: (stdout+stderr, the status)."""
    ws = websocket.create_connection(
        uri, subprotocols=["v4.channel.k8s.io"], timeout=30, sslopt={"ca_certs": str(ca)}
    )
    out, status = b"", None
    try:
        while status is None:
            frame = ws.recv()
            if isinstance(frame, str):
                frame = frame.encode()
            if not frame:
                continue
            if frame[0] in (1, 2):
                out += frame[1:]
            elif frame[0] == 3:
                status = json.loads(frame[1:])
    finally:
        ws.close()
    return out, status


def test_sdk_creates_describes_and_execs_over_https(tls, images):
    server, pki, created = tls
    client = server.client()
    gid = _create(server, images, "tls-sleeper", ["sleep", "3600"])
    created.add(gid)
    wait_status(client, gid, ["Running"], 90, never=["Failed"], diag=server.diag)
    group = support.describe(client, gid)
    assert group["ContainerGroupName"] == "tls-sleeper", group

    body = _exec(client, gid, ["sh", "-c", "echo sync-$((6*7))"], sync=True)
    assert "sync-42" in body.sync_response, body

    body = _exec(client, gid, ["sh", "-c", "echo over-$((2+3)); echo err >&2"], sync=False)
    uri = body.web_socket_uri
    assert uri.startswith(f"wss://{server.endpoint}/exec/"), uri
    out, status = _channels(uri, pki["ca.pem"])
    assert b"over-5" in out and b"err" in out, out
    assert status == {"metadata": {}, "status": "Success"}, status

    # The socket checks the server like the API does: another CA is refused.
    body = _exec(client, gid, ["true"], sync=False)
    with pytest.raises(Exception) as exc:
        _channels(body.web_socket_uri, pki["other-ca.pem"])
    assert "CERTIFICATE_VERIFY_FAILED" in str(exc.value), exc.value


def test_cli_with_the_ca_file(tls, images):
    server, _, created = tls
    client = server.client()
    gid = _create(server, images, "tls-cli", ["sleep", "3600"])
    created.add(gid)
    wait_status(client, gid, ["Running"], 90, never=["Failed"], diag=server.diag)

    res = server.cli("ps")
    assert res.returncode == 0, res.stderr
    assert gid in res.stdout, res.stdout
    res = server.cli("ps", ca=False, env={"BERTH_CA_FILE": str(server.ca)})
    assert res.returncode == 0, res.stderr
    assert gid in res.stdout, res.stdout

    res = server.cli("exec", gid, "--", "sh", "-c", "echo cli-$((3*3)); exit 4")
    assert (res.returncode, res.stdout.strip()) == (4, "cli-9"), (res.returncode, res.stdout,
                                                                  res.stderr)
    # Interactive: the WebSocket is wss:// and is checked against the same CA file.
    res = server.cli("exec", "-i", gid, "--", "sh", "-c", "read x; echo got-$x",
                     input="abc\n")
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert "got-abc" in res.stdout, (res.stdout, res.stderr)

    # `logs -f` follows an https:// stream until the container exits.
    short = _create(server, images, "tls-logs",
                    ["sh", "-c", "echo line-1; sleep 2; echo line-2"], policy="Never")
    created.add(short)
    wait_status(client, short, ["Running", "Succeeded"], 90, never=["Failed"],
                diag=server.diag)
    res = server.cli("logs", "-f", short, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "line-1" in res.stdout and "line-2" in res.stdout, res.stdout


def test_plain_http_and_unknown_ca_are_refused(tls):
    server, pki, _ = tls
    # Plain HTTP on the HTTPS address: an ECI-shaped 400, nothing served.
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"http://{server.endpoint}/?Action=DescribeRegions", timeout=10)
    assert exc.value.code == 400
    assert json.loads(exc.value.read())["Code"] == "InvalidProtocol.NeedSsl"
    with pytest.raises(ClientException) as exc:
        server.client(protocol="http").describe_regions(
            models.DescribeRegionsRequest(region_id=REGION)
        )
    assert exc.value.code == "InvalidProtocol.NeedSsl", exc.value

    # A client that does not trust the test CA refuses the server. (In a process of its own:
    # the SDK keeps connections alive across clients, and a connection verified with the CA
    # would be reused here.)
    for ca in (None, str(pki["other-ca.pem"])):
        out = _sdk_in_fresh_process(server, ca)
        assert out.returncode == 3, (out.returncode, out.stdout, out.stderr)
        assert "CERTIFICATE_VERIFY_FAILED" in out.stdout, out.stdout
    res = server.cli("ps", ca=False)
    assert res.returncode != 0, res.stdout
    assert "certificate" in res.stderr.lower() or "UnknownIssuer" in res.stderr, res.stderr
    res = server.cli("ps", ca=False, env={"BERTH_CA_FILE": str(pki["other-ca.pem"])})
    assert res.returncode != 0, res.stdout

    # The server still serves the clients that trust it.
    regions = server.client().describe_regions(models.DescribeRegionsRequest(region_id=REGION))
    assert regions.body.regions, regions.body


def _sdk_in_fresh_process(server: TlsBerth, ca: str | None) -> subprocess.CompletedProcess:
    """DescribeRegions over HTTPS from a new Python process with `ca` (None: the SDK's
    default trust); exits 3 with the error on stdout when the call fails."""
    creds = server.credentials()
    script = f"""
import sys
from alibabacloud_eci20180808.client import Client
from alibabacloud_eci20180808 import models
from alibabacloud_tea_openapi.models import Config
cfg = Config(access_key_id={creds["AccessKeyId"]!r}, access_key_secret={creds["AccessKeySecret"]!r},
             endpoint={server.endpoint!r}, protocol="https", region_id={REGION!r}, ca={ca!r},
             connect_timeout=5000, read_timeout=10000)
try:
    Client(cfg).describe_regions(models.DescribeRegionsRequest(region_id={REGION!r}))
except Exception as e:
    print(type(e).__name__, e)
    sys.exit(3)
"""
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=env)


def _serve_fails(base: Path, cert: Path, key: Path) -> str:
    """Runs `berth serve` with these files; it must exit at once with an error. Its output."""
    return support.serve_refused(
        base / "state-bad",
        ["--bridge", BRIDGE, "--subnet", SUBNET, "--tls-cert", str(cert), "--tls-key", str(key)],
        timeout=30,
    )


def test_bad_certificate_or_key_stops_the_start_with_a_message(host_ready, tmp_path):
    pki = make_pki(tmp_path)
    missing = tmp_path / "missing.pem"
    out = _serve_fails(tmp_path, missing, pki["server.key"])
    assert "cannot read the TLS certificate file" in out and str(missing) in out, out

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    out = _serve_fails(tmp_path, garbage, pki["server.key"])
    assert "holds no PEM CERTIFICATE" in out, out

    # The CA's certificate does not match the server's key.
    out = _serve_fails(tmp_path, pki["ca.pem"], pki["server.key"])
    assert "do not make a TLS configuration" in out, out

    no_key = tmp_path / "no-key.pem"
    no_key.write_bytes(pki["server.pem"].read_bytes())
    no_key.chmod(0o600)
    out = _serve_fails(tmp_path, pki["server.pem"], no_key)
    assert "holds no PEM PRIVATE KEY" in out, out

    pki["server.key"].chmod(0o644)
    out = _serve_fails(tmp_path, pki["server.pem"], pki["server.key"])
    assert "can be read by other users" in out and "0644" in out, out
    # A group-readable key (e.g. for Debian's ssl-cert group) is accepted: checked by the
    # module fixture's server, whose key is 0600; here only the refusal matters.
    pki["server.key"].chmod(0o600)
