"""The ``vigie`` command: one subcommand per service, plus topics, validation, the local stack and benchmarks.

Each service subcommand builds its pydantic settings from the command line and the
environment (``VIGIE_KAFKA``, ``VIGIE_NAMESPACE``), then runs the service until
SIGTERM or SIGINT. Exit codes: 0 clean stop, 1 failure, 2 bad usage or configuration, 3 the database
(accounts, register) cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from vigie.core.options import bounded, output_file
from vigie.core.errors import BrokerUnavailable, ConfigError, DatabaseUnavailable
from vigie.core.logs import setup_logging
from vigie.core.settings import KafkaSettings

log = logging.getLogger("vigie")


def _kafka(args: argparse.Namespace) -> KafkaSettings:
    """The Kafka settings of the command line and the environment. Raises ConfigError naming the setting."""
    from pydantic import ValidationError

    from vigie.core.config import format_loc, validation_issues

    given = {"bootstrap": args.kafka, "namespace": args.namespace,
             "replication_factor": getattr(args, "replication_factor", None),
             "min_insync_replicas": getattr(args, "min_insync_replicas", None)}
    try:
        return KafkaSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError("Kafka settings (options and VIGIE_KAFKA* environment): " + "; ".join(
            f"{format_loc(loc) or 'kafka'}: {message}" for loc, message in validation_issues(exc))) from None


def _cmd_topics(args: argparse.Namespace) -> int:
    from vigie.core.kafka import apply_topics, sandbox_topics, wait_for_broker
    from vigie.core.topics import Topics

    kafka = _kafka(args)
    if args.action in ("sandboxes", "drop-sandboxes"):
        async def sandboxes() -> list[str]:
            await wait_for_broker(kafka, timeout_s=args.wait)
            return await sandbox_topics(kafka, delete=args.action == "drop-sandboxes")

        verb = "deleted" if args.action == "drop-sandboxes" else "sandbox"
        for name in asyncio.run(sandboxes()):
            print(f"{verb} {name}")
        return 0
    routing = _load_routing(args.routing)
    stations = sorted(set(routing.all_stations()) | set(args.stations or []))

    async def apply() -> list[str]:
        await wait_for_broker(kafka, timeout_s=args.wait)
        return await apply_topics(kafka, catalogue.all(stations))

    catalogue = Topics(kafka.namespace, cameras_partitions=args.cameras_partitions)
    created = asyncio.run(apply())
    for name in catalogue.all(stations):
        mark = "created" if name.name in created else "exists "
        print(f"{mark} {name.name:<32} partitions={name.spec.partitions} retention.ms={name.spec.retention_ms} "
              f"replication={kafka.replication_factor} min.insync.replicas={kafka.min_insync_replicas}")
    return 0


def _load_routing(path: str | None):  # noqa: ANN202
    from vigie.core.config import load_yaml_model
    from vigie.correlator.config import Routing

    return load_yaml_model(Path(path), Routing) if path else Routing()


def _load_policy(path: str | None):  # noqa: ANN202
    from vigie.core.config import load_yaml_model
    from vigie.correlator.config import CorrelatorPolicy

    return load_yaml_model(Path(path), CorrelatorPolicy) if path else CorrelatorPolicy()


def _validate(cameras_path: str | None, routing_path: str | None, policy_path: str | None = None) -> list[str]:
    """Load and check the cameras, routing and correlator policy files; returns what to report (warnings included).

    Every problem of the cameras file, its analytics sections, its cameras' password variables and
    files, missing source files, and privacy masks or zones wholly outside frames of a size the file gives
    included, is reported as ``FILE:LINE: location: message``, one per line. Raises ConfigError.
    """
    from vigie.validation import validate_cameras

    lines = []
    cameras = None
    if cameras_path:
        cameras, lines = validate_cameras(cameras_path)
    if routing_path:
        routing = _load_routing(routing_path)
        lines.append(f"{routing_path}: {len(routing.routes)} route(s) valid, stations: {', '.join(routing.all_stations())}")
        for camera in cameras.cameras if cameras is not None else []:
            if not routing.stations_for(camera.id):
                lines.append(f"  warning: camera {camera.id} matches no route: its incidents reach no station")
    if policy_path:
        policy = _load_policy(policy_path)
        kinds = ", ".join(f"{kind} {level}" for kind, level in sorted(policy.priority.kinds.items()))
        lines.append(f"{policy_path}: policy valid; priorities {kinds}; other kinds {policy.priority.default}")
        from vigie.core.authorisations import KIND_PURPOSES

        named = set(policy.priority.kinds) | {k for o in policy.priority.cameras for k in o.kinds} | set(
            policy.merge.reactivation_s)
        for kind in sorted(named - set(KIND_PURPOSES)):
            lines.append(f"  warning: kind {kind!r} is no analytic's kind ({', '.join(sorted(KIND_PURPOSES))}): "
                         "a misspelling? (a plugin's kind is fine)")
    return lines


def _cmd_validate(args: argparse.Namespace) -> int:
    if not (args.cameras or args.routing or args.policy):
        raise ConfigError("give a cameras file, --routing FILE and/or --policy FILE")
    print("\n".join(_validate(args.cameras, args.routing, args.policy)))
    return 0


def _cmd_grabber(args: argparse.Namespace) -> int:
    from vigie.core.lifecycle import serve
    from vigie.grabber.app import GrabberService, GrabberSettings

    if args.apply_cameras and not args.cameras_topic:
        raise ConfigError("--apply-cameras writes the cameras topic: give it with --cameras-topic")
    settings = GrabberSettings(
        kafka=_kafka(args), cameras_file=args.cameras, cameras_topic=args.cameras_topic,
        apply_cameras=args.apply_cameras, session_timeout_s=args.session_timeout_s, as_fast_as_possible=args.as_fast_as_possible,
        http_host=args.http_host, http_port=args.http_port, buffer_frames=args.buffer_frames,
        heartbeat_s=args.heartbeat_s,
    )
    return asyncio.run(serve(GrabberService(settings), settings.http_host, settings.http_port))


def _cmd_detector(args: argparse.Namespace) -> int:
    from vigie.core.lifecycle import serve
    from vigie.detector.app import DetectorService, DetectorSettings

    settings = DetectorSettings(
        kafka=_kafka(args), device=args.device, max_batch=args.batch, threads=args.threads, cameras_file=args.cameras,
        object_classes=args.object_classes, object_verdict=args.object_verdict, http_host=args.http_host,
        http_port=args.http_port,
    )
    return asyncio.run(serve(DetectorService(settings), settings.http_host, settings.http_port))


def _cmd_correlator(args: argparse.Namespace) -> int:
    from vigie.correlator.app import run
    from vigie.correlator.config import CorrelatorSettings

    policy = _load_policy(args.policy)
    settings = CorrelatorSettings(
        kafka=_kafka(args), routing=_load_routing(args.routing), http_host=args.http_host, http_port=args.http_port,
        session_timeout_s=args.session_timeout, merge=policy.merge, priority=policy.priority,
    )
    return run(settings, loglevel=args.log_level.lower())


def _cmd_station(args: argparse.Namespace) -> int:
    from vigie.core.lifecycle import serve
    from vigie.station.app import StationService, StationSettings

    from pydantic import ValidationError

    from vigie.core.config import format_loc, validation_issues
    from vigie.core.db import DatabaseSettings
    from vigie.station.auth import AuthSettings

    try:
        auth = AuthSettings(session_idle_s=args.session_idle_s, session_max_s=args.session_max_s,
                            lock_after=args.lock_after, lock_base_s=args.lock_base_s, lock_max_s=args.lock_max_s,
                            tls_cert=args.tls_cert, tls_key=args.tls_key, trusted_proxies=tuple(args.trusted_proxy),
                            proxy_user_header=args.proxy_user_header)
        database = DatabaseSettings(**({"url": args.database} if args.database else {}))
    except ValidationError as exc:
        raise ConfigError("; ".join(f"{format_loc(loc) or 'station'}: {message}"
                                    for loc, message in validation_issues(exc))) from None
    settings = StationSettings(
        kafka=_kafka(args), station=args.station, http_host=args.http_host, database=database, auth=auth,
        evidence_store=args.evidence_store, cameras_file=args.cameras,
        http_port=args.http_port, max_incidents=args.max_incidents, keep_closed_s=args.keep_closed_s,
        event_queue=args.event_queue, snapshot_cache_bytes=args.snapshot_cache_mib << 20,
        rates_window_s=args.rates_window_s, false_alarm_flag_rate=args.false_alarm_flag_rate,
        false_alarm_min_verdicts=args.false_alarm_min_verdicts,
        max_live_views=args.max_live_views,
    )
    return asyncio.run(serve(StationService(settings), settings.http_host, settings.http_port))


def _cmd_up(args: argparse.Namespace) -> int:
    from vigie.stack import run_stack

    return run_stack(args)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vigie.evaluate import main as evaluate_main

    return evaluate_main(args)


def _cmd_replay(args: argparse.Namespace) -> int:
    from vigie.replay import main as replay_main

    return replay_main(args, _kafka(args))


def _cmd_chaos(args: argparse.Namespace) -> int:
    from vigie.chaos import main as chaos_main

    return chaos_main(args)


def _cmd_soak(args: argparse.Namespace) -> int:
    from vigie.chaos import soak_main

    return soak_main(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from vigie.bench import main as bench_main

    return bench_main(args)


class _Parser(argparse.ArgumentParser):
    """argparse, except that unrecognised arguments are named by their options only: the values after them
    are not repeated, since one may be a password typed where it does not belong."""

    def parse_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's signature
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            options = [e.split("=", 1)[0] for e in extras if e.startswith("-")]
            self.error(f"unrecognized arguments: {' '.join(options)}" if options else
                       f"{len(extras)} unexpected argument(s) (not repeated here)")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``vigie`` command."""
    parser = _Parser(prog="vigie", description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", help="bootstrap servers (default $VIGIE_KAFKA or 127.0.0.1:9092)")
    parser.add_argument("--namespace", help="topic and group prefix (default $VIGIE_NAMESPACE or none)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    def service(name: str, port: int, help_: str, serves: str = "/healthz and /metrics") -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--http-host", default="127.0.0.1", help=f"address of {serves}")
        p.add_argument("--http-port", type=int, default=port, help=f"port of {serves} (default {port})")
        return p

    p = sub.add_parser("topics", help="create the topics (partitions, retention at most 30 days); list or "
                       "delete replay sandboxes")
    p.add_argument("action", choices=["apply", "sandboxes", "drop-sandboxes"],
                   help="apply: create the topics; sandboxes: list vigie replay's sandbox topics; "
                   "drop-sandboxes: delete them (the live topics are never touched)")
    p.add_argument("--routing", help="routing YAML: its stations get alert topics")
    p.add_argument("--stations", nargs="*", help="more station ids to create alert topics for")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the broker")
    p.add_argument("--replication-factor", type=bounded(int, 1, 16),
                   help="copies of each partition of the topics created (default $VIGIE_KAFKA_REPLICATION_FACTOR "
                   "or 1); at most the number of brokers")
    p.add_argument("--min-insync-replicas", type=bounded(int, 1, 16),
                   help="min.insync.replicas of every topic (default $VIGIE_KAFKA_MIN_INSYNC_REPLICAS or 1); "
                   "below the replication factor so that a broker may be down")
    p.add_argument("--cameras-partitions", type=bounded(int, 1, 1000), default=12,
                   help="partitions of the cameras topic when it is created (default 12): at most this many "
                   "grabber replicas get cameras; an existing topic keeps its count")
    p.set_defaults(func=_cmd_topics)

    p = sub.add_parser("validate", help="check a cameras file, a routing file and/or a correlator policy file; "
                       "errors name the field and line")
    p.add_argument("cameras", nargs="?", help="cameras YAML")
    p.add_argument("--routing", help="routing YAML")
    p.add_argument("--policy", help="correlator policy YAML (merging, reactivation, priorities)")
    p.set_defaults(func=_cmd_validate)

    p = service("grabber", 8091, "decode, sample, mask and publish camera frames")
    cameras = p.add_mutually_exclusive_group(required=True)
    cameras.add_argument("--cameras", help="cameras YAML: this grabber runs all its cameras")
    cameras.add_argument("--cameras-topic", action="store_true",
                         help="run the cameras the broker assigns this replica from the cameras topic (consumer "
                         "group vigie-grabber; `vigie cameras apply` writes it): replicas share the cameras")
    p.add_argument("--apply-cameras", metavar="YAML",
                   help="--cameras-topic: first write this cameras file to the topic, as `vigie cameras apply "
                   "--prune` does (an invalid file: exit 2, nothing written); every replica may: what is unchanged "
                   "is not written again")
    p.add_argument("--session-timeout-s", type=bounded(float, 6, 300), default=6.0,
                   help="--cameras-topic: seconds without a heartbeat before a dead replica's cameras go to the "
                   "others (6-300, default 6; heartbeats every sixth of it)")
    p.add_argument("--as-fast-as-possible", action="store_true", help="files: do not pace to real time")
    p.add_argument("--buffer-frames", type=bounded(int, 1, 10000), default=50,
                   help="frames kept per camera while the broker is away, the oldest dropped first (default 50)")
    p.add_argument("--heartbeat-s", type=bounded(float, 0.1, 300), default=10.0,
                   help="seconds between two statuses of an unchanged camera on the camera-status topic "
                   "(0.1-300, default 10); a change is published at once")
    p.set_defaults(func=_cmd_grabber)

    p = service("detector", 8092, "run the analytics on frames and publish anomalies")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--batch", type=bounded(int, 1, 1024), default=32, help="most frames per batch (1-1024)")
    p.add_argument("--threads", type=bounded(int, 1, 64), default=1, help="CPU threads torch may use (default 1)")
    p.add_argument("--cameras", help="cameras YAML (per-camera analytics); default: the default kinds everywhere")
    p.add_argument("--no-object-classes", dest="object_classes", action="store_false",
                   help="do not offer the object-class stage (SSD-MobileNet-v2) to the analytics: less CPU "
                   "and memory, more false alarms (e.g. someone standing still taken for a left object)")
    p.add_argument("--object-verdict", choices=("after", "before"), default="after",
                   help="after (default): an alarm the object-class stage may reject leaves at once and is withdrawn "
                   "if the stage rejects it; before: the analytics wait for the stage (about 0.15 s of CPU a frame)")
    p.set_defaults(func=_cmd_detector)

    p = service("correlator", 8093, "merge anomalies into incidents and route alerts (faust)")
    p.add_argument("--routing", help="routing YAML (camera patterns to stations, escalation steps); default: all "
                   "to 'main', no escalation")
    p.add_argument("--policy", help="policy YAML: 'merge' (merging, reactivation thresholds) and 'priority' "
                   "(per kind, per camera); default: the built-in policy")
    p.add_argument("--session-timeout", type=bounded(float, 6, 300), default=15.0,
                   help="seconds without a heartbeat before a worker's partitions go to the others (6-300, default 15)")
    p.set_defaults(func=_cmd_correlator)

    p = service("station", 8080, "operator console in the browser", "the console, /healthz and /metrics")
    p.add_argument("--station", default="main", help="station id")
    p.add_argument("--database", help="accounts database URL (default $VIGIE_DATABASE_URL, else "
                   "sqlite:///var/vigie.db); create accounts with `vigie users add`")
    p.add_argument("--evidence-store", default="var/evidence",
                   help="folder of the evidence store, where incidents' clips are played from (default var/evidence)")
    p.add_argument("--cameras", help="cameras YAML: lets supervisors make right-of-access exports in the console, "
                   "and limits the camera health it shows to these cameras (default: every camera that reports)")
    p.add_argument("--session-idle-s", type=bounded(float, 1, 7 * 86400), default=1800.0,
                   help="seconds without a request before a console session ends (default 1800)")
    p.add_argument("--session-max-s", type=bounded(float, 1, 30 * 86400), default=43200.0,
                   help="seconds after which a console session ends whatever its use (default 43200)")
    p.add_argument("--lock-after", type=bounded(int, 1, 100), default=5,
                   help="failed logins in a row before an account is locked (default 5)")
    p.add_argument("--lock-base-s", type=bounded(float, 1, 3600), default=30.0,
                   help="seconds of the first lock, doubling at each further failure (default 30)")
    p.add_argument("--lock-max-s", type=bounded(float, 1, 86400), default=900.0,
                   help="longest lock, seconds (default 900)")
    p.add_argument("--tls-cert", default="", help="PEM certificate chain: serve the console over HTTPS")
    p.add_argument("--tls-key", default="", help="PEM private key of --tls-cert")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="CIDR",
                   help="address or network of a reverse proxy trusted for --proxy-user-header, "
                   "X-Forwarded-Proto and X-Forwarded-For (repeatable)")
    p.add_argument("--proxy-user-header", default="", help="header in which a trusted proxy names the user "
                   "(single sign-on), e.g. X-Remote-User")
    p.add_argument("--max-incidents", type=bounded(int, 1, 1_000_000), default=5000,
                   help="most incidents held in memory, open and closed (default 5000)")
    p.add_argument("--keep-closed-s", type=bounded(float, 0, 86400), default=1800.0,
                   help="seconds a closed incident stays in the live list before only the history shows it "
                   "(default 1800)")
    p.add_argument("--event-queue", type=bounded(int, 1, 100_000), default=1000,
                   help="events waiting per console before it is resynchronised (default 1000)")
    p.add_argument("--snapshot-cache-mib", type=bounded(int, 0, 4096), default=32,
                   help="MiB of snapshot JPEGs kept in memory (default 32)")
    p.add_argument("--rates-window-s", type=bounded(float, 3600, 30 * 86400), default=7 * 86400.0,
                   help="seconds of closing time of the false-alarm rates' window (default 604800: 7 days)")
    p.add_argument("--false-alarm-flag-rate", type=bounded(float, 0, 1), default=0.5,
                   help="flag a camera-kind pair whose false-alarm rate is over this (default 0.5) ...")
    p.add_argument("--false-alarm-min-verdicts", type=bounded(int, 1, 1_000_000), default=10,
                   help="... with at least this many verdicts, confirmed + false alarms (default 10)")
    p.add_argument("--max-live-views", type=bounded(int, 0, 256), default=8,
                   help="live views (WebRTC video of a camera) open at a time; 503 beyond (default 8)")
    p.set_defaults(func=_cmd_station)

    # Console accounts (vigie.accounts.cli): add, list, disable, enable, passwd, assign.
    from vigie.accounts.cli import add_arguments as users_arguments, main as users_main

    users_arguments(sub)
    sub.choices["users"].set_defaults(func=lambda args: users_main(args, _kafka(args)))

    from vigie.station.rates_cli import add_arguments as rates_arguments  # argparse only: a light import
    from vigie.grabber.cameras_cli import add_arguments as cameras_arguments

    cameras_arguments(sub, _kafka)

    rates_arguments(sub, _kafka)

    p = sub.add_parser("up", help="run the six services locally (Ctrl-C stops them cleanly)")
    p.add_argument("--cameras", required=True, help="cameras YAML")
    p.add_argument("--routing", help="routing YAML")
    p.add_argument("--policy", help="correlator policy YAML (merging, reactivation, priorities)")
    p.add_argument("--as-fast-as-possible", action="store_true")
    p.add_argument("--station-port", type=int, default=8080, help="port of the operator console (default 8080)")
    p.add_argument("--ports", default="8091,8092,8093",
                   help="ports of the grabber's, detector's and correlator's /healthz and /metrics (default 8091,8092,8093)")
    p.add_argument("--register-port", type=bounded(int, 1, 65535), default=8094,
                   help="port of the register's /healthz and /metrics (default 8094)")
    p.add_argument("--evidence-port", type=bounded(int, 1, 65535), default=8095,
                   help="port of the evidence service's /healthz and /metrics (default 8095)")
    p.add_argument("--evidence-store", default="var/evidence", help="folder of the evidence store (default var/evidence)")
    p.add_argument("--database", help="database of accounts, sessions and the register (default $VIGIE_DATABASE_URL "
                   "or sqlite:///var/vigie.db)")
    p.add_argument("--demo-accounts", action="store_true",
                   help="in a database without accounts, create an admin and an operator and print their one-time "
                   "passwords (or take them from VIGIE_DEMO_ADMIN_PASSWORD and VIGIE_DEMO_OPERATOR_PASSWORD)")
    p.set_defaults(func=_cmd_up)

    p = sub.add_parser("evaluate", help="measure the analytics on a labelled clip (no broker needed)")
    from vigie.evaluate import add_arguments as evaluate_arguments  # argparse only: a light import

    evaluate_arguments(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("replay", help="re-run the analytics on recorded frames into a sandbox topic (analysts)")
    p.add_argument("--from", dest="start", required=True, help="start: ISO 8601 (UTC if naive) or relative, written "
                   "--from=-2h; frames older than the frames topic's retention (1 day by default) are gone")
    p.add_argument("--to", dest="end", default="now", help="end (default now)")
    p.add_argument("--cameras", help="comma-separated camera ids (default all)")
    p.add_argument("--cameras-file", metavar="YAML", help="the detector's cameras YAML: each camera's `analytics` "
                   "section is re-run, as the live detector runs it (--rules, if given, applies on top)")
    p.add_argument("--rules", help="rules YAML: `defaults: [kinds]` (default: the detector's default kinds) and "
                   "`cameras: {id: {kind: settings}}`")
    p.add_argument("--report", type=output_file, help="write the JSON report to this file (default: print it)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--no-object-classes", dest="object_classes", action="store_false",
                   help="leave out the object-class stage, which the live detector offers the analytics by default")
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser("chaos", help="inject faults (broker restart, killed and joining workers) on a private broker "
                       "and count lost and duplicated incidents")
    from vigie.chaos import add_arguments as chaos_arguments

    chaos_arguments(p)
    p.set_defaults(func=_cmd_chaos)

    p = sub.add_parser("soak", help="run every service on many synthetic cameras for long; resident memory, "
                       "descriptors and threads must stay flat")
    from vigie.chaos import add_soak_arguments

    add_soak_arguments(p)
    p.set_defaults(func=_cmd_soak)

    p = sub.add_parser("register", help="the tamper-evident register: run it (default, or `serve`), `verify` its "
                       "hash chain, `show` or `export` its entries")
    from vigie.register.cli import add_arguments as register_arguments  # argparse only: a light import

    register_arguments(p, _kafka)

    p = sub.add_parser("evidence", help="incidents' clips and snapshots: run the service (`serve`), `list` them, "
                       "legal `holds`, `hold`/`release` (a supervisor), `purge` what is due")
    from vigie.evidence.cli import add_arguments as evidence_arguments  # argparse only: a light import

    evidence_arguments(p, _kafka)

    p = sub.add_parser("bench", help="print throughput, latency and memory figures")
    p.add_argument("--quick", action="store_true", help="fewer frames (a smoke run)")
    p.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vigie`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    setup_logging(args.command, args.log_level)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"vigie {args.command}: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except BrokerUnavailable as exc:
        print(f"vigie {args.command}: {exc}", file=sys.stderr)
        return 1
    except DatabaseUnavailable as exc:  # the database of accounts and the register, named, password hidden
        print(f"vigie {args.command}: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
