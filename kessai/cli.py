"""The `kessai` command line: one entry point, one line and exit code 2 for every mistake.

This is the one runtime module that composes the rest: it picks the agent modules a worker
runs (:data:`agents.AGENTS`, or with ``--sim`` the simulator's variants of :data:`sim.agents.
SIMULATED`), hands the development key generator (:mod:`sim.devkeys`) to `kessai up` and
`kessai keys init`, and runs the simulator's drivers (`pay`, `demo`, `bench`). Nothing else
under ``kessai/`` imports ``agents`` or ``sim``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from kessai.errors import ConfigError, KessaiError
from kessai.settings import Settings

SIM_FLAG = "--sim"
# Agents that serve a page on a port: one worker each, `up --replicas` refuses more.
LISTENS_ON_A_PORT = ("shop", "relay", "device", "selector", "webshop")
# Seed 004's examples for `kessai pay --flow selector --mode …` (sim.selector_demo.MODES).
SELECTOR_MODES = ("preselect", "ask", "brand-selector", "brand-module", "brand-live", "multi",
                  "proxy", "certificate", "pick-slave", "address", "attached-brands",
                  "attached-slaves")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"kessai: {message} (see 'kessai --help')\n")
        raise SystemExit(2)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", help="Kafka bootstrap HOST:PORT (env KESSAI_BOOTSTRAP)")
    p.add_argument("--keys", type=Path, help="key directory (env KESSAI_KEYS)")
    p.add_argument("--broker-kind", choices=("embedded", "kafka"),
                   help="sets the hot-path waits: 'embedded' (Tansu, short fetch waits) or "
                        "'kafka' (a real cluster, Kafka's defaults) (env KESSAI_BROKER_KIND)")


def _selector_flags(p: argparse.ArgumentParser) -> None:
    """Seed 004 (`--flow selector`): where the examples run and the page prompts go to."""
    p.add_argument("--in-memory", action="store_true",
                   help="selector flow: on the in-memory bus, no broker")
    p.add_argument("--selector-url", help="selector flow: the selector's page, where the "
                   "simulated user answers prompts (default "
                   "http://127.0.0.1:$KESSAI_SELECTOR_PORT, port 8480)")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kessai", description="A Kafka-native payment message bus.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("up", help="start the broker, create topics, run every agent")
    _common(up)
    up.add_argument("--port", type=int, default=9092,
                    help="port for the embedded broker (default 9092)")
    up.add_argument("--demo", action="store_true", help="run the demo workload once up")
    up.add_argument("--exit-after-demo", action="store_true",
                    help="stop everything after the demo (for scripts)")
    up.add_argument("--agents", help="comma-separated agent types (default: all)")
    up.add_argument("--replicas", metavar="AGENT=N[,...]",
                    help="run N workers of an agent type, splitting its partitions (e.g. "
                    "settlement=2); not for the shop and relay, which listen on one port")

    w = sub.add_parser("worker", help="run one agent type as a worker process")
    _common(w)
    w.add_argument("agent")
    w.add_argument("--loglevel", default="info",
                   choices=["crit", "error", "warn", "info", "debug"])
    w.add_argument(SIM_FLAG, action="store_true",
                   help="run the simulator's variant of the agent where sim/ has one (the shop "
                   "that obeys the demo's shop_tamper knob); `kessai up` runs these. Never in "
                   "production")

    b = sub.add_parser("broker", help="run the embedded Tansu broker on loopback")
    b.add_argument("--port", type=int, default=9092)

    t = sub.add_parser("topics", help="the topic catalogue on the broker")
    tsub = t.add_subparsers(dest="topics_command", required=True, parser_class=_Parser)
    for name in ("list", "create", "describe"):
        tp = tsub.add_parser(name)
        _common(tp)
        tp.add_argument("--json", action="store_true")
        if name == "describe":
            tp.add_argument("topic", nargs="?")

    k = sub.add_parser("keys", help="development key sets")
    ksub = k.add_subparsers(dest="keys_command", required=True, parser_class=_Parser)
    ki = ksub.add_parser("init", help="create a development key set for every actor")
    ki.add_argument("dir", nargs="?", type=Path)
    ki.add_argument("--force", action="store_true")

    d = sub.add_parser("demo", help="run a handful of purchases and print their journeys")
    _common(d)
    d.add_argument("flow", nargs="?", default="settlement",
                   choices=["settlement", "relay", "wakeup", "selector"],
                   help="settlement: the seed-003 purchases; relay: one purchase from a "
                   "simulated phone through the relay (seeds 000/001); wakeup: the mobile "
                   "wake-up payments of seed 002; selector: the 12 examples of seed 004, each "
                   "wake-up's route and settlement")
    d.add_argument("--json", action="store_true")
    d.add_argument("--profile", default="phone",
                   help="relay flow: the terminal profile (phone, game, pc)")
    d.add_argument("--user", default="alice", help="relay flow: a user with a preset wallet")
    d.add_argument("--shop-url", help="relay flow: the shop's HTTP front "
                   "(default http://127.0.0.1:$KESSAI_SHOP_HTTP_PORT, port 8450)")
    d.add_argument("--timeout", type=float, default=60.0)
    _selector_flags(d)

    pay = sub.add_parser("pay", help="drive one purchase and print its journey")
    _common(pay)
    pay.add_argument("--user", default="alice")
    pay.add_argument("--shop", default="shop-1")
    pay.add_argument("--item", action="append", metavar="CODE[:QTY]",
                     help="product to buy (repeatable; default XXXX and YYYY, the Fig. 5 order)")
    pay.add_argument("--card", default="main", help="card alias in the user's wallet")
    pay.add_argument("--tamper", default="none",
                     choices=["none", "user-amount", "user-quantity", "shop-amount"],
                     help="a dishonest user (the simulated device alters its 2nd request) or "
                     "shop (shop-amount: only the simulator's shop, which `kessai up` runs, "
                     "overcharges; a production shop ignores it)")
    pay.add_argument("--delay", type=float, default=0.0,
                     help="seconds the user waits before sending the 2nd request")
    pay.add_argument("--abandon", action="store_true", help="never send the 2nd request")
    pay.add_argument("--flow", default="settlement", choices=["settlement", "selector", "wakeup"],
                     help="selector: a seed-004 purchase of a two-wallet client (carol, or "
                     "her set-up of the example --mode names), its wake-up routed as that "
                     "example says, on the running system; wakeup: a seed-002 payment at a "
                     "POS, the phone woken by the gateway")
    _selector_flags(pay)
    pay.add_argument("--mode", choices=["VIA_TERMINAL", "DIRECT_BOTH", "SHOP_POLLS",
                                        *SELECTOR_MODES],
                     help="the result route (settlement flow) or the seed-004 example "
                     "(selector flow)")
    pay.add_argument("--server-assigned-id", action="store_true")
    pay.add_argument("--hash", action="store_true", help="first request carries a content hash")
    pay.add_argument("--wrong-password", action="store_true")
    pay.add_argument("--forge-authenticator", action="store_true")
    pay.add_argument("--forge-relay", action="store_true")
    pay.add_argument("--duplicate-second", action="store_true")
    pay.add_argument("--timeout", type=float, default=60.0)
    pay.add_argument("--json", action="store_true")
    # Seed 002: `kessai pay --flow wakeup --device 1234567 --card "CARD B" --pos pos-1`.
    pay.add_argument("--pos", default="pos-1", help="wakeup flow: the POS terminal")
    pay.add_argument("--device", default="1234567", help="wakeup flow: the phone's device id")
    pay.add_argument("--method", default="L", help="wakeup flow: L, I, B, pB or R")
    pay.add_argument("--not-agree", action="store_true", help="wakeup flow: press Not agree")
    pay.add_argument("--embodiment", type=int, choices=[1, 2], default=1,
                     help="wakeup flow: 2 = the encrypted card number via the POS")
    pay.add_argument("--webshop", metavar="SHOP", default="",
                     help="wakeup flow: check out at this web shop (V3, e.g. webshop-1) with "
                     "the user id instead of at a POS")

    r = sub.add_parser("replay", help="print decoded, signature-checked records of topics")
    _common(r)
    r.add_argument("topics", nargs="*", metavar="TOPIC",
                   help="topics to read (default with --trace: every catalogued topic)")
    r.add_argument("--from-offset", type=int, default=None)
    r.add_argument("--to-offset", type=int, default=None)
    r.add_argument("--since", type=float, default=None,
                   help="only records at or after this UNIX time (seconds)")
    r.add_argument("--until", type=float, default=None)
    r.add_argument("--correlation-id", default=None)
    r.add_argument("--trace", default=None, metavar="ID",
                   help="only the records of one purchase (its trace id), in time order")
    r.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    r.add_argument("--archive", type=Path, metavar="FILE",
                   help="read the audit archive instead of the broker (default topics: every "
                   "archived one); --since/--until scan its time index")

    a = sub.add_parser("audit", help="audit the recorded history (the archiver's archive)")
    asub = a.add_subparsers(dest="audit_command", required=True, parser_class=_Parser)
    av = asub.add_parser("verify", help="check the archive: hash chains and signed "
                         "checkpoints (with --bootstrap on the command line, also the broker's "
                         "checkpoint topic), signatures and producers, settlement outcomes and "
                         "the other flows' decisions recomputed, one outcome and one charge "
                         "per order, no card number where the shop side reads; exit 1 naming "
                         "each discrepancy")
    ash = asub.add_parser("shadow", help="re-run an agent's decisions over the recorded "
                          "slice and diff its outputs against the recorded ones")
    ash.add_argument("agent", choices=["settlement", "gateway", "wallet", "relay", "paygate",
                                       "selector", "issuer"])
    for audit_parser in (av, ash):
        _common(audit_parser)
        _audit_arguments(audit_parser)

    bench = sub.add_parser(
        "bench", help="settled payments/s and latency, with the raw-broker and crypto floors "
        "measured in the same run",
        description="Drive purchases through the workers (its own embedded broker and workers "
        "unless --bootstrap names a running system) and report throughput, latency, CPU per "
        "payment per worker, and the raw-broker and crypto floors of the same run.")
    _common(bench)
    bench.add_argument("-n", "--purchases", type=int, default=300, metavar="N",
                       help="purchases to measure (default 300)")
    how = bench.add_mutually_exclusive_group()
    how.add_argument("--rate", type=float, metavar="R",
                     help="open loop: start R purchases per second")
    how.add_argument("--sequential", action="store_true",
                     help="one purchase at a time (the default)")
    bench.add_argument("--warmup", type=int, default=10, metavar="N",
                       help="purchases before the measured ones, discarded (default 10)")
    bench.add_argument("--timeout", type=float, default=60.0, metavar="S",
                       help="seconds to wait for a purchase's final status (default 60)")
    bench.add_argument("--raw-records", type=int, default=20_000, metavar="N",
                       help="records for the raw produce → consume floor (default 20000)")
    bench.add_argument("--raw-samples", type=int, default=300, metavar="N",
                       help="one-hop samples for the raw latency floor (default 300)")
    bench.add_argument("--idle-seconds", type=float, default=5.0, metavar="S",
                       help="after the run, measure the idle system's CPU for S seconds "
                       "(default 5; 0 skips it)")
    bench.add_argument("--agents", help="comma-separated agent types the bench starts "
                       "(default: the ones a purchase passes through: settlement, issuer, "
                       "shop, terminal; add archiver to measure the audit archive too)")
    bench.add_argument("--replicas", metavar="AGENT=N[,...]",
                       help="workers per agent type, as 'kessai up --replicas'")
    bench.add_argument("--keep", action="store_true",
                       help="keep the bench's temporary keys, data and worker logs")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--plot", type=Path, metavar="FILE.png",
                       help="draw latency over time and its histogram (matplotlib)")
    return p


def _audit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--archive", type=Path, metavar="FILE",
                   help="the archive (default: $KESSAI_ARCHIVE, else the newest `kessai up` "
                   "run's .kessai/runs/<time>/archive.sqlite)")
    p.add_argument("--from", dest="since", metavar="TIME",
                   help="only records at or after TIME (UNIX seconds or ISO 8601, UTC)")
    p.add_argument("--until", metavar="TIME", help="only records at or before TIME")
    p.add_argument("--json", action="store_true", help="one JSON object")


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(bootstrap=getattr(args, "bootstrap", None),
                             keys_dir=getattr(args, "keys", None),
                             broker_kind=getattr(args, "broker_kind", None))


def agent_table(simulated: bool) -> dict[str, str]:
    """Agent name → module: the production agents, or the development system's (the
    simulator's variants in place of the production agents they compose)."""
    from agents import AGENTS

    if not simulated:
        return dict(AGENTS)
    from sim.agents import SIMULATED

    return {**AGENTS, **SIMULATED}


def agent_module(name: str, simulated: bool = False) -> ModuleType:
    table = agent_table(simulated)
    if name not in table:
        raise ConfigError(
            f"unknown agent {name!r}; choose one of: {', '.join(sorted(table))}")
    return importlib.import_module(table[name])


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(dispatch(args) or 0)
    except KessaiError as exc:
        sys.stderr.write(f"kessai: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


def dispatch(args: argparse.Namespace) -> int | None:
    cmd = args.command
    if cmd == "keys":
        from kessai import keys
        from sim import devkeys

        directory = args.dir or keys.default_dir()
        created = devkeys.init(directory, force=args.force)
        print(f"created a development key set for {len(created)} actors in {directory}")
        return 0
    if cmd == "broker":
        from kessai.supervisor import run_broker

        return run_broker(args.port)
    if cmd == "worker":
        from kessai import worker

        worker.run(args.agent, agent_module(args.agent, args.sim), settings_from(args),
                   args.loglevel)
        return 0
    if cmd == "up":
        from agents import AGENTS
        from kessai.supervisor import up
        from sim import devkeys

        # The development system: dev keys on first use, the simulator's agent variants.
        settings = settings_from(args)
        for actor in devkeys.add_missing_services(settings.keys_dir):
            print(f"kessai: added the {actor} to the key set in {settings.keys_dir}")
        return up(args, settings, agents=list(AGENTS), make_keys=devkeys.init,
                  worker_args=(SIM_FLAG,), single=LISTENS_ON_A_PORT)
    if cmd == "topics":
        from topics.provision import run_cli

        return run_cli(args, settings_from(args))
    if cmd == "replay":
        from kessai.replay import run_cli as replay_cli

        return replay_cli(args, settings_from(args))
    if cmd in ("pay", "demo") and getattr(args, "flow", "") == "selector":
        from sim.selector_demo import run_cli as selector_cli

        return selector_cli(args, settings_from(args), demo=cmd == "demo")
    if cmd == "pay" and args.flow == "wakeup":
        from sim.wakeup_demo import run_pay as run_wakeup_pay

        return run_wakeup_pay(args, settings_from(args))
    if cmd == "demo" and args.flow == "wakeup":
        from sim.wakeup_demo import run_demo as run_wakeup_demo

        return run_wakeup_demo(args, settings_from(args))
    if cmd == "pay":
        from sim.journey import run_pay

        return run_pay(args, settings_from(args))
    if cmd == "demo" and args.flow == "relay":
        from sim.relay_demo import run_relay_demo

        return run_relay_demo(args, settings_from(args))
    if cmd == "demo":
        from sim.journey import run_demo

        return run_demo(args, settings_from(args))
    if cmd == "bench":
        from sim.bench import run as run_bench

        return run_bench(args, settings_from(args))
    if cmd == "audit":
        from audit import cli as audit_cli

        run = audit_cli.run_verify if args.audit_command == "verify" else audit_cli.run_shadow
        return run(args, settings_from(args))
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
