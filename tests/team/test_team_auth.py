"""A team server other machines can reach: ``trackbook serve --host ADDR`` with authentication.

Real processes: ``trackbook serve`` bound to 127.0.0.2 (routed to this machine, standing
in for another address) speaking https with a self-signed certificate made here, so
MLflow's basic-auth app with trackbook's Arrow endpoint inside it, and PostgreSQL with
scram-sha-256 passwords. Every client (MLflow's, trackbook's, the trainings, plain
requests) trusts that certificate through MLflow's ``MLFLOW_TRACKING_SERVER_CERT_PATH``
and requests' ``REQUESTS_CA_BUNDLE``, as a team's clients would. Users and permissions are made
with ``trackbook serve users add`` / ``grant``; what they may read is checked against
the server's own answers (status codes) and MLflow's own client.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.requirements import require
from tests.team.test_team import _assert_exactly_once, _read_until, _train_concurrently

import trackbook as tb
from trackbook import columns as C
from trackbook.errors import AccessDenied, TrackbookError
from trackbook.servers import free_port
from trackbook.store import _mlflow_rest
from trackbook.store._mlflow_app import ROUTE

HOST = "127.0.0.2"
PASSWORDS = {"alice": "alice-Secret-4711", "bob": "bob-Secret-0815"}
TRACKBOOK = str(Path(sys.executable).with_name("trackbook"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``trackbook serve --host 127.0.0.2``; yields what it printed, its folder and its admin password."""
    import glob
    import shutil

    require(bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")),
            "PostgreSQL's server binaries (initdb, pg_ctl, postgres)", "apt-get install postgresql")
    folder = tmp_path_factory.mktemp("secure-team")
    key, cert = _self_signed(folder, HOST)
    trust = pytest.MonkeyPatch()
    trust.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(cert))
    trust.setenv("REQUESTS_CA_BUNDLE", str(cert))
    proc = subprocess.Popen([TRACKBOOK, "serve", "--folder", str(folder), "--host", HOST, "--port", str(free_port()),
                             "--workers", "1", "--ssl-keyfile", str(key), "--ssl-certfile", str(cert)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        printed = _read_until(proc, "Ctrl+C", timeout=420)
        found = dict(re.findall(r"^(mlflow server|direct SQL|optuna storage):\s+(\S+)", printed, re.M))
        admin = re.search(r"^admin password .*: (\S+)$", printed, re.M).group(1)
        assert len(found) == 3, printed
        assert found["mlflow server"].startswith(f"https://{HOST}:"), printed
        yield {"url": found["mlflow server"], "cert": cert, "sql": found["direct SQL"], "optuna": found["optuna storage"],
               "admin": admin, "printed": printed, "folder": folder, "proc": proc}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    finally:
        trust.undo()
        if proc.poll() is None:
            proc.kill()


def _self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    """A key and a self-signed certificate for the IP address ``host``, valid for a day."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(private, hashes.SHA256()))
    key_path, cert_path = folder / "tls-key.pem", folder / "tls-cert.pem"
    key_path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def _as(monkeypatch, user: str, password: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def _admin_cli(server, *args: str, stdin: str | None = None) -> str:
    env = dict(os.environ)
    env.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=server["admin"])
    done = subprocess.run([TRACKBOOK, "serve", *args, "--url", server["url"]], input=stdin, capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def team(server):
    """alice: READ on 'shared', nothing on 'private'; bob: EDIT on 'training'. Runs written as admin."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    for user, password in PASSWORDS.items():
        _admin_cli(server, "users", "add", user, "--password-stdin", stdin=password + "\n")
    _admin_cli(server, "grant", "alice", "shared", "READ")
    _admin_cli(server, "grant", "bob", "training", "EDIT")
    mp = pytest.MonkeyPatch()
    _as(mp, "admin", server["admin"])
    try:
        client = MlflowClient(tracking_uri=server["url"])
        runs = {}
        client.create_experiment("private")  # alice has no permission on it: default_permission is NO_PERMISSIONS
        for name in ("shared", "private"):
            exp = client.get_experiment_by_name(name)
            run = client.create_run(exp.experiment_id)
            client.log_batch(run.info.run_id, metrics=[Metric("loss", 1.0 / (s + 1), 1_000 + s, s)
                                                       for s in range(500)])
            client.set_terminated(run.info.run_id)
            runs[name] = run.info.run_id
    finally:
        mp.undo()
    return runs


def test_no_or_wrong_credentials_get_401_from_mlflow_and_the_arrow_endpoint(server, team):
    url = server["url"]
    for path, params in (("/api/2.0/mlflow/experiments/search", {"max_results": 1}),
                         (ROUTE, {"run_id": team["shared"], "metric_key": "loss"})):
        assert requests.get(url + path, params=params, timeout=30).status_code == 401
        assert requests.get(url + path, params=params, auth=("alice", "wrong"), timeout=30).status_code == 401
        assert requests.get(url + path, params=params, auth=("nobody", "x"), timeout=30).status_code == 401
        assert requests.get(url + path, params=params, auth=("alice", PASSWORDS["alice"]), timeout=30).ok
    assert requests.get(url + "/health", timeout=30).ok  # the health check stays open for probes


def test_the_server_speaks_only_tls_with_its_certificate(server):
    import ssl

    import certifi

    plain = server["url"].replace("https://", "http://", 1)
    with pytest.raises(requests.ConnectionError):  # no cleartext on the port
        requests.get(plain + "/health", timeout=30)
    with pytest.raises(requests.exceptions.SSLError):  # a client that does not trust the certificate refuses it
        requests.get(server["url"] + "/health", timeout=30, verify=certifi.where())
    port = int(server["url"].rsplit(":", 1)[1])
    served = ssl.get_server_certificate((HOST, port))
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(server["cert"].read_text())


def test_read_permission_gates_the_arrow_endpoint(server, team, monkeypatch):
    url, alice = server["url"], ("alice", PASSWORDS["alice"])
    denied = requests.get(url + ROUTE, params={"run_id": team["private"], "metric_key": "loss"}, auth=alice,
                          timeout=30)
    assert denied.status_code == 403 and b"loss" not in denied.content and not denied.content.startswith(b"\xff")
    # one denied run among allowed ones denies the whole request: no points of it leak
    mixed = requests.get(url + ROUTE, params={"run_id": [team["shared"], team["private"]], "metric_key": "loss"},
                         auth=alice, timeout=30)
    assert mixed.status_code == 403
    # MLflow's own endpoint answers the same
    bulk = requests.get(url + "/ajax-api/2.0/mlflow/metrics/get-history-bulk",
                        params={"run_id": team["private"], "metric_key": "loss"}, auth=alice, timeout=30)
    assert bulk.status_code == 403
    # the history index (point counts per series) is gated the same way
    from trackbook.store._mlflow_app import INDEX_ROUTE

    index = url + INDEX_ROUTE
    assert requests.post(index, json={"run_ids": [team["private"]]}, auth=alice, timeout=30).status_code == 403
    assert requests.post(index, json={"run_ids": [team["shared"]]}, timeout=30).status_code == 401
    allowed = requests.post(index, json={"run_ids": [team["shared"]]}, auth=alice, timeout=30)
    assert allowed.ok and [r["run_id"] for r in allowed.json()["runs"]] == [team["shared"]]


def test_a_reader_reads_its_experiment_through_arrow_and_is_told_what_to_ask_for(server, team, monkeypatch):
    from mlflow.tracking import MlflowClient

    _as(monkeypatch, *next(iter(PASSWORDS.items())))
    json_reads = []
    real_json = _mlflow_rest._read_json
    monkeypatch.setattr(_mlflow_rest, "_read_json", lambda *a: json_reads.append(a) or real_json(*a))
    store = tb.connect(server["url"])
    hist = store.history([team["shared"]], cache=False)
    assert json_reads == [] and store._host_creds.host not in _mlflow_rest._no_arrow
    expected = MlflowClient(tracking_uri=server["url"]).get_metric_history(team["shared"], "loss")
    assert sorted(zip(hist[C.STEP], hist[C.VALUE])) == sorted((m.step, m.value) for m in expected)
    assert len(hist) == 500

    with pytest.raises(AccessDenied) as caught:
        _mlflow_rest.read_points(store._host_creds, [team["private"]], ["loss"])
    message = str(caught.value)
    assert "403" in message and team["private"] in message and "trackbook serve grant alice" in message
    assert PASSWORDS["alice"] not in message
    with pytest.raises(TrackbookError):  # through the public API too, whichever request is refused first
        store.history([team["private"]], cache=False)

    # JSON path (a server without the endpoint): the same credentials and the same error
    monkeypatch.setattr(_mlflow_rest, "_read_arrow", lambda *a: None)
    json_hist = _mlflow_rest.read_points(store._host_creds, [team["shared"]], ["loss"])
    assert len(json_hist) == 500
    with pytest.raises(AccessDenied, match="403"):
        _mlflow_rest.read_points(store._host_creds, [team["private"]], ["loss"])


def test_credentials_in_the_uri_work_and_are_masked(server, team, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    host = server["url"].split("://", 1)[1]
    store = tb.connect(f"https://alice:{PASSWORDS['alice']}@{host}")
    assert len(store.history([team["shared"]], cache=False)) == 500
    with pytest.raises(AccessDenied) as caught:
        _mlflow_rest.read_points(store._host_creds, [team["private"]], ["loss"])
    assert PASSWORDS["alice"] not in str(caught.value)
    with pytest.raises(TrackbookError) as caught:
        tb.connect(f"https://alice:wrong-{PASSWORDS['alice']}@{host}")
    assert PASSWORDS["alice"] not in str(caught.value)
    from mlflow.utils.rest_utils import MlflowHostCreds

    with pytest.raises(AccessDenied, match="401"):
        _mlflow_rest.read_points(MlflowHostCreds(server["url"]), [team["shared"]], ["loss"])


def test_eight_trainings_with_edit_log_into_their_experiment(server, team, tmp_path, monkeypatch):
    _as(monkeypatch, "bob", PASSWORDS["bob"])
    results = _train_concurrently(server["url"], "training", tmp_path)
    for result in results:
        assert not [w for w in result["warnings"] if "cannot write" in w], result["warnings"]
    _assert_exactly_once(tb.connect(server["url"]), results)
    # bob may not write elsewhere: MLflow's own check on its own endpoint
    denied = requests.post(server["url"] + "/api/2.0/mlflow/runs/create", auth=("bob", PASSWORDS["bob"]),
                           json={"experiment_id": _experiment_id(server, "shared")}, timeout=30)
    assert denied.status_code == 403


def _experiment_id(server, name: str) -> str:
    from mlflow.tracking import MlflowClient

    mp = pytest.MonkeyPatch()
    _as(mp, "admin", server["admin"])
    try:
        return MlflowClient(tracking_uri=server["url"]).get_experiment_by_name(name).experiment_id
    finally:
        mp.undo()


def test_postgresql_refuses_connections_without_the_password(server, monkeypatch):
    import psycopg

    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")
    password_file = server["folder"] / "pg-password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(server["sql"], connect_timeout=10).close()
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(server["sql"], password="wrong", connect_timeout=10).close()
    monkeypatch.setenv("PGPASSWORD", password_file.read_text().strip())
    with psycopg.connect(server["optuna"], connect_timeout=10) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "trackbook"
        rules = conn.execute("SELECT type, auth_method FROM pg_hba_file_rules").fetchall()
    assert rules and all(method == "scram-sha-256" for _, method in rules), rules


def test_no_secret_in_logs_process_arguments_or_reports(server, team, tmp_path, monkeypatch):
    folder = server["folder"]
    secrets = {server["admin"], (folder / "pg-password").read_text().strip(),
               (folder / "auth" / "flask-secret-key").read_text().strip(), *PASSWORDS.values()}
    # the admin password is printed once, on its own line, and nowhere else
    printed_lines = [line for line in server["printed"].splitlines() if server["admin"] in line]
    assert len(printed_lines) == 1 and printed_lines[0].startswith("admin password")
    assert "PGPASSWORD" in server["printed"] and (folder / "pg-password").read_text().strip() not in server["printed"]
    for secret in secrets:
        assert secret not in server["sql"] + server["optuna"] + server["url"]
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    logs = "".join(path.read_text(errors="replace") for path in folder.rglob("*.log"))
    assert "mlflow-server" in " ".join(p.name for p in folder.rglob("*.log"))
    for secret in secrets:
        assert secret not in ps
        assert secret not in logs

    host = server["url"].split("://", 1)[1]
    _, path = tb.report("training", tmp_path / "report.html", store_uri=f"https://alice:{PASSWORDS['alice']}@{host}",
                        run_id=team["shared"],
                        progress=False)
    html = Path(path).read_text()
    assert team["shared"] in html
    for secret in secrets:
        assert secret not in html
