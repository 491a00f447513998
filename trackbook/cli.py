"""``trackbook`` on the command line: ``trackbook report KIND ... -o out.html``, ``trackbook serve``,
``trackbook sync``, ``trackbook hpo CONFIG.yaml [overrides]``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from trackbook.errors import TrackbookError


def _parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: write parameters as name=value")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trackbook", description="Ask questions of your experiment runs.")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="execute a report notebook and export it",
                         description="Execute a report template with papermill and export it with nbconvert.")
    rep.add_argument("kind", nargs="?", choices=["training", "hpo", "comparison", "chain"],
                     help="which report (or --template)")
    rep.add_argument("-o", "--output", "--output-path", dest="output", help="file to write")
    rep.add_argument("--format", choices=["html", "ipynb"], default="html")
    rep.add_argument("--show-code", action="store_true", help="keep the code cells in the HTML")
    rep.add_argument("--template", help="a notebook of your own with a cell tagged 'parameters'")
    rep.add_argument("--store", "--tracking-uri", dest="store_uri", help="store URI (default $MLFLOW_TRACKING_URI, "
                     "else sqlite:///mlflow.db)")
    rep.add_argument("--run-id", "--final-run-id", dest="run_id", help="run (training) or last run of the chain")
    rep.add_argument("--run-ids", nargs="+", help="runs to compare")
    rep.add_argument("--parent-run-id", help="the study's parent run (hpo)")
    rep.add_argument("--experiment-name", dest="experiment", help="chain: take the deepest chain of this experiment")
    rep.add_argument("--metrics", nargs="+", help="metrics to show")
    rep.add_argument("--objective", help="hpo: the metric trials are judged by (default: the study's own)")
    rep.add_argument("--direction", choices=["maximize", "minimize"], help="hpo: default the study's own")
    rep.add_argument("--title")
    rep.add_argument("-p", "--parameter", action="append", type=_parameter, default=[], metavar="NAME=VALUE",
                     help="any other template parameter (a string)")
    rep.add_argument("--no-progress", action="store_true")
    srv = sub.add_parser("serve", help="a team server: PostgreSQL + mlflow server (with users on any address "
                         "but 127.0.0.1)",
                         description="Start PostgreSQL (databases mlflow and optuna) and an mlflow server on it "
                                     "(--app-name trackbook: MLflow's server plus trackbook's Arrow bulk-history "
                                     "endpoint), until Ctrl+C. Bound to 127.0.0.1 (the default) nothing "
                                     "authenticates; on any other --host authentication is on: MLflow's basic-auth "
                                     "app with the endpoint behind its permissions (--app-name trackbook-auth) and "
                                     "PostgreSQL with scram-sha-256 passwords.")
    srv.add_argument("--folder", default="trackbook-server", help="where the database and artifacts live")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on; any but 127.0.0.1 turns "
                     "authentication on")
    srv.add_argument("--port", type=int, default=5000, help="mlflow server port")
    srv.add_argument("--pg-port", type=int, default=None, help="PostgreSQL port (a free one by default)")
    srv.add_argument("--workers", type=int, default=4, help="mlflow server worker processes")
    srv.add_argument("--allowed-hosts", help="Host headers to accept, comma-separated (mlflow server "
                     "--allowed-hosts; default: the --host address, every name for 0.0.0.0)")
    srv.add_argument("--ssl-keyfile", help="TLS key for uvicorn (with --ssl-certfile: the server speaks https)")
    srv.add_argument("--ssl-certfile", help="TLS certificate for uvicorn")
    admin = srv.add_subparsers(dest="serve_command", metavar="{users,grant}",
                               description="manage a running server's users, as its admin (credentials from "
                                           "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)")
    users = admin.add_parser("users", help="users of a server with authentication")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="add a user; the password is prompted for, or read from "
                               "$TRACKBOOK_USER_PASSWORD, or from stdin with --password-stdin")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--url", help="the server (default $MLFLOW_TRACKING_URI)")
    grant = admin.add_parser("grant", help="give a user READ, EDIT or MANAGE (or DENY) on an experiment")
    grant.add_argument("name")
    grant.add_argument("experiment", help="experiment name (created if it does not exist)")
    grant.add_argument("permission", choices=["READ", "EDIT", "MANAGE", "DENY"],
                       help="MLflow's experiment permissions (DENY: none, even where a default would give some)")
    grant.add_argument("--url", help="the server (default $MLFLOW_TRACKING_URI)")
    hpo = sub.add_parser("hpo", help="run a study from a config's hpo section",
                         description="Run an Optuna study from a YAML config: hpo.param_space, hpo.n_trials (or "
                                     "num_trials), direction, sampler, metric; the objective function named by "
                                     "hpo.objective (module:function, called with each trial). Overrides after the "
                                     "config: section.key=value or --section.key value.")
    hpo.add_argument("--objective", help="module:function to optimise (default: the config's hpo.objective)")
    hpo.add_argument("--store", "--tracking-uri", dest="store_uri", help="store URI (default: experiment.tracking_uri, "
                     "then $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    hpo.add_argument("--n-trials", type=int, help="trials to run (default: the config's)")
    hpo.add_argument("config", help="the YAML config")
    hpo.add_argument("overrides", nargs=argparse.REMAINDER, help="section.key=value or --section.key value")
    syn = sub.add_parser("sync", help="deliver the journals of runs whose writes did not reach their store",
                         description="Deliver every pending run journal (a server down when a script ended, a "
                                     "killed process, offline runs) to its store, exactly once and in order.")
    syn.add_argument("--status", action="store_true", help="list what is pending; deliver nothing")
    syn.add_argument("--store", dest="store_uri", help="only the journals written for this store URI")
    syn.add_argument("--run", dest="local_id", help="only this journal (a local id, local-...)")
    syn.add_argument("--discard", metavar="LOCAL_ID", help="delete this journal without delivering it")
    args = parser.parse_args(argv)
    if args.command == "serve" and args.serve_command:
        return _serve_admin(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "sync":
        return _sync(args)
    if args.command == "hpo":
        return _hpo(args)

    if not args.kind and not args.template:
        parser.error("name a report kind or give --template")
    return _report(args)


def _report(args: argparse.Namespace) -> int:
    """Exit status 0 with the written path on stdout; 2 with the error on stderr (nothing printed to stdout)."""
    from trackbook._uri import resolve_uri
    from trackbook.reports import report, template_parameters

    params = {k: v for k, v in {
        "run_id": args.run_id, "run_ids": args.run_ids, "parent_run_id": args.parent_run_id,
        "objective": args.objective, "direction": args.direction,
        "experiment": args.experiment, "metrics": args.metrics, "title": args.title,
    }.items() if v is not None}
    try:
        # the default store only for templates that take one: a template of your own may not
        if args.store_uri is not None or "store_uri" in template_parameters(args.kind, template=args.template):
            params["store_uri"] = resolve_uri(args.store_uri)
        params.update(dict(args.parameter))
        _, path = report(args.kind, args.output, template=args.template, format=args.format,
                         show_code=args.show_code, progress=not args.no_progress, **params)
    except (TrackbookError, ValueError) as exc:
        print(f"trackbook report: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _hpo(args: argparse.Namespace) -> int:
    overrides, rest = [], list(args.overrides)
    own = {"--objective": "objective", "--store": "store_uri", "--tracking-uri": "store_uri", "--n-trials": "n_trials"}
    while rest:  # our options may also come after the config, among the overrides
        item = rest.pop(0)
        flag, sep, value = item.partition("=")
        if flag in own:
            value = value if sep else (rest.pop(0) if rest else "")
            setattr(args, own[flag], int(value) if flag == "--n-trials" else value)
        else:
            overrides.append(item)
    from trackbook.tracking.config import load_config
    from trackbook.tracking.hpo import load_objective, optimize

    try:
        cfg = load_config(args.config, overrides)
        name = args.objective or cfg.hpo.objective
        if not name:
            raise ValueError(f"{args.config} has no hpo.objective; name the function with --objective module:function.")
        result = optimize(load_objective(name), cfg, args.n_trials, store=args.store_uri)
    except (TrackbookError, ValueError) as exc:
        print(f"trackbook hpo: {exc}", file=sys.stderr)
        return 2
    done = [t for t in result.study.trials if t.state.name == "COMPLETE"]
    print(f"study {result.study.study_name}: {len(done)} of {len(result.study.trials)} trials complete")
    if done:
        print(f"best value: {result.best_value}")
        print(f"best params: {result.best_params}")
    print(f"parent run: {result.parent_run_id}  (tb.study(tb.connect({result.uri!r}), {result.parent_run_id!r}))")
    return 0 if done else 1


def _sync(args: argparse.Namespace) -> int:
    from trackbook.tracking import sync

    if args.discard:
        try:
            folder = sync.discard(args.discard)
        except LookupError as exc:
            print(f"trackbook sync: {exc.args[0]}", file=sys.stderr)
            return 2
        print(f"discarded {folder}")
        return 0
    if args.status:
        rows = sync.pending(args.store_uri)
        if not rows:
            print("nothing pending")
        for row in rows:
            print(f"{row['local_id']}  run {row['run_id'] or '(not created yet)'}  {row['state']:<7}  "
                  f"{row['writes']} writes ({row['points']} points)  experiment {row['experiment']!r}  -> {row['uri']}")
            for problem in row["problems"]:
                print(f"    {problem}")
        return 0
    results = sync.sync(args.store_uri, local_id=args.local_id)
    if not results:
        print("nothing to sync")
    for result in results:
        print(result.message, file=sys.stdout if result.outcome in (sync.DELIVERED, sync.SKIPPED) else sys.stderr,
              flush=True)
    return 1 if any(r.outcome in (sync.FAILED, sync.DELETED) for r in results) else 0


def _serve(args: argparse.Namespace) -> int:
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl+C and SIGTERM (a service manager's stop) both stop PostgreSQL and the mlflow server
    # cleanly; set explicitly, since a shell's background job inherits SIGINT ignored.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)

    from trackbook.servers import LOCAL_HOST, MlflowAuth

    folder = Path(args.folder).resolve()
    secure = args.host != LOCAL_HOST
    if bool(args.ssl_keyfile) != bool(args.ssl_certfile):
        print("trackbook serve: give both --ssl-keyfile and --ssl-certfile, or neither", file=sys.stderr)
        return 2
    uvicorn_opts = (f"--ssl-keyfile {shlex.quote(args.ssl_keyfile)} --ssl-certfile {shlex.quote(args.ssl_certfile)}"
                    if args.ssl_keyfile else None)
    auth = MlflowAuth(folder / "auth") if secure else None
    try:
        return _run_servers(args, folder, auth, uvicorn_opts)
    except BaseException:
        if auth:
            auth.forget_first_start()
        raise


def _run_servers(args: argparse.Namespace, folder: Path, auth: Any, uvicorn_opts: str | None) -> int:
    import time

    from trackbook.servers import mlflow_server, postgres_server

    secure = auth is not None
    with postgres_server(folder, port=args.pg_port, databases=("mlflow", "optuna"), host=args.host) as pg, \
            mlflow_server(pg.uri("mlflow"), folder / "mlflow", port=args.port, workers=args.workers, host=args.host,
                          auth=auth, env=pg.env, uvicorn_opts=uvicorn_opts,
                          allowed_hosts=args.allowed_hosts) as url:
        print(f"mlflow server:   {url}          (training processes, notebooks: tb.connect(url))")
        print(f"direct SQL:      {pg.uri('mlflow')}  (read-only analysis without the server)")
        print(f"optuna storage:  {pg.uri('optuna')}  (tb.hpo.optimize(..., storage=...))")
        if secure:
            print(f"PostgreSQL password: in {pg.password_file} (owner-only); clients set it in their "
                  f"environment, never in a URI: export PGPASSWORD=\"$(cat {pg.password_file})\"")
            print("mlflow users: clients set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD; add users with "
                  "`trackbook serve users add NAME`, give them experiments with "
                  "`trackbook serve grant NAME EXPERIMENT READ|EDIT|MANAGE`.")
            if auth.admin_password:
                print(f"admin password (shown this once, MLflow keeps only its hash): {auth.admin_password}")
                auth.admin_password = None  # shown: a later failure must not forget the admin
        print("Ctrl+C (or SIGTERM) stops both.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping ...")
    return 0


def _serve_admin(args: argparse.Namespace) -> int:
    """``serve users add`` / ``serve grant`` through MLflow's own auth client."""
    import getpass
    import os

    from trackbook._uri import redact_uri
    from trackbook.tracking import team

    url = args.url or os.environ.get("MLFLOW_TRACKING_URI")
    if not url or not url.startswith(("http://", "https://")):
        print("trackbook serve: name the server with --url http://HOST:PORT (or $MLFLOW_TRACKING_URI) and set "
              "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD to the admin's", file=sys.stderr)
        return 2
    try:
        if args.serve_command == "users":
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = os.environ.get("TRACKBOOK_USER_PASSWORD") or getpass.getpass(f"password for {args.name}: ")
            if not password:
                print("trackbook serve users add: empty password; nothing created", file=sys.stderr)
                return 2
            team.add_user(url, args.name, password)
            print(f"user {args.name} created on {redact_uri(url)}")
            return 0
        experiment_id = team.grant(url, args.name, args.experiment, args.permission)
        print(f"{args.name}: {args.permission} on experiment {args.experiment!r} ({experiment_id})")
        return 0
    except TrackbookError as exc:
        print(f"trackbook serve {args.serve_command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
