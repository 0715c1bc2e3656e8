"""The pure parts of `kessai bench`: percentiles, summaries, CPU per payment, the floors' ratios,
the flow model and its check, /proc parsing, and argument errors (exit 2, one line)."""

from __future__ import annotations

import argparse

import pytest

from kessai import cli
from kessai.errors import ConfigError
from sim import bench, cpu, floors, stats


def test_percentile_interpolates_linearly_between_closest_ranks() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert stats.percentile(values, 0) == 10.0
    assert stats.percentile(values, 100) == 40.0
    assert stats.percentile(values, 50) == 25.0
    assert stats.percentile(values, 95) == pytest.approx(38.5)
    assert stats.percentile([7.0], 99) == 7.0
    assert stats.percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input


def test_percentile_rejects_no_values_and_out_of_range_q() -> None:
    with pytest.raises(ValueError):
        stats.percentile([], 50)
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)
    with pytest.raises(ValueError):
        stats.percentile([1.0], -1)


def test_summarise_gives_p50_p95_p99_max_of_1_to_100() -> None:
    s = stats.summarise([float(v) for v in range(1, 101)])
    assert s is not None
    assert (s.count, s.min, s.max, s.mean) == (100, 1.0, 100.0, 50.5)
    assert s.p50 == pytest.approx(50.5)
    assert s.p95 == pytest.approx(95.05)
    assert s.p99 == pytest.approx(99.01)
    assert set(s.as_dict()) == {"count", "p50", "p95", "p99", "max", "mean", "min"}
    assert stats.summarise([]) is None


def test_rate_and_ratio_handle_zero_and_unknown() -> None:
    assert stats.rate(300, 2.0) == 150.0
    assert stats.rate(5, 0.0) == 0.0
    assert stats.ratio(30.0, 1.5) == pytest.approx(20.0)
    assert stats.ratio(None, 1.0) is None
    assert stats.ratio(1.0, 0.0) is None
    assert stats.ratio(1.0, None) is None


def test_cpu_seconds_and_per_payment_drop_vanished_and_restarted_processes() -> None:
    before = {"shop": 10.0, "terminal": 4.0, "gone": 1.0, "restarted": 9.0}
    after = {"shop": 13.0, "terminal": 5.5, "restarted": 0.2, "new": 3.0}
    used = stats.cpu_seconds(before, after)
    assert used == {"shop": 3.0, "terminal": 1.5}
    assert stats.per_payment_ms(used, 100) == {"shop": 30.0, "terminal": 15.0}
    assert stats.per_payment_ms(used, 0) == {}


def test_floors_and_ratios() -> None:
    fl = stats.Floors(raw_msgs_per_s=22_000.0, raw_hop_p50_ms=2.0, raw_hop_p99_ms=5.0,
                      records_per_payment=11, hops_per_payment=9,
                      crypto_s_per_payment=0.004, cores=2)
    assert fl.broker_payments_per_s == pytest.approx(2000.0)
    assert fl.crypto_payments_per_s == pytest.approx(500.0)
    assert fl.latency_p50_ms == pytest.approx(18.0)
    assert fl.latency_p99_ms == pytest.approx(45.0)
    lat = stats.summarise([36.0, 36.0, 90.0])
    r = stats.ratios(fl, payments_per_s=100.0, latency=lat, cpu_ms_per_payment=40.0)
    assert r["throughput_vs_broker"] == pytest.approx(20.0)
    assert r["throughput_vs_crypto"] == pytest.approx(5.0)
    assert r["latency_p50_vs_hops"] == pytest.approx(2.0)
    assert r["cpu_vs_crypto"] == pytest.approx(10.0)
    none = stats.ratios(fl, payments_per_s=None, latency=None, cpu_ms_per_payment=None)
    assert set(none.values()) == {None}


def test_flow_model_counts_every_envelope_and_extra() -> None:
    counts = floors.op_counts()
    assert counts["sign"] == len(floors.FLOW) + 1  # + the user's authenticator
    assert counts["verify"] == sum(len(r.readers) for r in floors.FLOW) + 1
    assert (counts["seal"], counts["open"], counts["mac"]) == (2, 3, 4)
    assert 0 < floors.hops(floors.FLOW) < len(floors.FLOW)
    assert floors.FLOW[0].topic == bench.COMMANDS
    assert floors.FLOW[-1].topic == bench.ORDER_STATUS


def test_crypto_ops_match_the_counts_and_run() -> None:
    world = floors.build_world()
    flow = floors.model_flow(world)
    kinds: dict[str, int] = {}
    for kind, fn in floors.crypto_ops(flow, world):
        kinds[kind] = kinds.get(kind, 0) + 1
        fn()
    assert kinds == {k: v for k, v in floors.op_counts(flow).items() if v}
    for _, fn in floors.envelope_ops(flow, world):
        fn()
    assert all(len(r.raw) > 50 for r in flow)


def as_seen(flow: list[floors.Record], statuses: list[str]) -> list[floors.Seen]:
    """The model's records as a probe would read them back, one millisecond apart."""
    out, status = [], iter(statuses)
    for i, r in enumerate(flow):
        sender = {"shop": "shop-1"}.get(r.producer, r.producer)
        body = {"status": next(status)} if r.type == "order-status" else {}
        out.append(floors.Seen(r.topic, r.type, "k", "k", body, "T", sender, 1000 + i, r.raw))
    return out


def test_observed_flow_finds_the_model_s_critical_path() -> None:
    flow = floors.model_flow(floors.build_world())
    seen = as_seen(flow, ["AWAITING_PAYMENT", "PAID"])
    observed, source = floors.observed_flow(list(reversed(seen)), None)
    assert [(r.topic, r.type, r.on_path) for r in observed] == \
        [(r.topic, r.type, r.on_path) for r in floors.FLOW]
    assert set(source.values()) == {"model"}
    assert floors.differences(observed) == {"missing": [], "extra": [], "readers_differ": []}


def test_observed_flow_takes_readers_from_the_broker() -> None:
    flow = floors.model_flow(floors.build_world())
    readers = {t: list(r) for t, r in floors.model_readers().items()}
    readers["kessai.wakeups"] = ["terminal", "relay"]  # say the relay read them again
    observed, source = floors.observed_flow(as_seen(flow, ["AWAITING_PAYMENT", "PAID"]),
                                            readers)
    assert set(source.values()) == {"broker"}
    wake = next(r for r in observed if r.topic == "kessai.wakeups")
    assert wake.readers == ("relay", "terminal")
    assert floors.op_counts(observed)["verify"] == floors.op_counts()["verify"] + 1
    assert floors.differences(observed)["readers_differ"] == ["kessai.wakeups: relay, terminal"]


def test_critical_path_needs_a_final_status() -> None:
    flow = floors.model_flow(floors.build_world())
    seen = as_seen(flow, ["AWAITING_PAYMENT", "AWAITING_PAYMENT"])
    assert floors.critical_path(seen, floors.model_readers()) == set()


def seen(topic: str, type_: str, key: str, body: dict[str, object],
         trace: str = "") -> floors.Seen:
    return floors.Seen(topic, type_, key, key, body, trace)


def test_related_follows_the_session_to_the_join_key_in_any_order() -> None:
    jk = "shop-1/ORDER1"
    records = [
        seen("kessai.settlement.first", "settlement-first", jk, {"shop_id": "shop-1"}),
        seen("kessai.authorizations", "authorization", jk, {"join_key": jk}),
        seen("kessai.order-requests", "order-request", "s1", {"session": "s1"}),
        seen("kessai.wakeups", "payment-request", jk,
             {"session": "s1", "shop_id": "shop-1", "order_id": "ORDER1"}),
        seen("kessai.order-requests", "order-request", "s2", {"session": "s2"}),
    ]
    mine = bench.related(records, "s1")
    assert len(mine) == 4
    assert all(r.key != "s2" for r in mine)


def test_related_prefers_the_trace_id() -> None:
    records = [seen("a", "x", "k1", {}, "T1"), seen("b", "y", "k2", {}, "T1"),
               seen("c", "z", "s1", {"session": "s1"}, "T2")]
    assert [r.topic for r in bench.related(records, "s1", "T1")] == ["a", "b"]


def test_differences_name_missing_and_extra_records() -> None:
    changed = [*floors.FLOW[1:], floors.Record("kessai.dead-letters", "dead-letter", "shop",
                                               (), False)]
    diff = floors.differences(changed)
    assert diff["missing"] == [f"{floors.FLOW[0].topic} {floors.FLOW[0].type}"]
    assert diff["extra"] == ["kessai.dead-letters dead-letter"]


def test_parse_stat_reads_utime_and_stime_after_a_command_with_spaces() -> None:
    fields = ["S"] + [str(i) for i in range(4, 60)]  # field 3 onwards; field n holds n
    text = "1234 (python (kessai) worker) " + " ".join(fields)
    assert cpu.parse_stat(text) == (14, 15)


def test_find_workers_and_broker_by_bootstrap() -> None:
    procs = [
        cpu.Proc(10, ["python", "-m", "kessai.cli", "worker", "shop"],
                 {"KESSAI_BOOTSTRAP": "127.0.0.1:1"}),
        cpu.Proc(12, ["python", "-m", "kessai.cli", "worker", "shop"],
                 {"KESSAI_BOOTSTRAP": "127.0.0.1:1"}),
        cpu.Proc(11, ["kessai", "worker", "terminal", "--bootstrap", "127.0.0.1:1"], {}),
        cpu.Proc(13, ["python", "-m", "kessai.cli", "worker", "issuer"],
                 {"KESSAI_BOOTSTRAP": "127.0.0.1:2"}),
        cpu.Proc(14, ["tansu", "broker", "--listener-url", "tcp://127.0.0.1:1"], {}),
    ]
    assert cpu.find_workers("127.0.0.1:1", procs) == {"shop": 10, "terminal": 11, "shop#2": 12}
    assert cpu.find_broker("127.0.0.1:1", procs) == 14
    assert cpu.find_broker("127.0.0.1:2", procs) is None


def test_busy_fraction() -> None:
    assert cpu.busy_fraction((100.0, 1000.0), (250.0, 1200.0)) == pytest.approx(0.75)
    assert cpu.busy_fraction(None, (1.0, 2.0)) is None


def bench_args(*argv: str) -> argparse.Namespace:
    return cli.parser().parse_args(["bench", *argv])


def test_bench_defaults_are_300_sequential_with_warmup() -> None:
    plan = bench.plan_from(bench_args())
    assert (plan.purchases, plan.rate, plan.mode) == (300, None, "sequential")
    assert bench.plan_from(bench_args("--rate", "50", "-n", "10")).mode == "rate"


@pytest.mark.parametrize("argv, words", [
    (("-n", "0"), "-n must be at least 1"),
    (("--rate", "0"), "--rate must be a positive"),
    (("--warmup", "-1"), "--warmup must not be negative"),
    (("--timeout", "0"), "--timeout must be positive"),
    (("--plot", "latency.jpg"), "--plot must name a .png file"),
    (("--plot", "/no/such/dir/latency.png"), "does not exist"),
    (("--raw-records", "5"), "--raw-records must be at least"),
    (("--idle-seconds", "-1"), "--idle-seconds must be within"),
])
def test_bad_bench_arguments_are_config_errors(argv: tuple[str, ...], words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        bench.plan_from(bench_args(*argv))


def test_bad_bench_argument_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "-n", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "-n must be at least 1" in err
    assert cli.main(["bench", "--agents", "nobody"]) == 2
    assert "unknown agent" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--rate", "5", "--sequential"])
    assert exc.value.code == 2


def test_partitions_read_is_the_mean_over_the_readers_on_the_path() -> None:
    from topics.catalogue import CATALOGUE

    def read_by(kind: str) -> int:
        return sum(t.partitions for t in CATALOGUE if kind in t.readers)

    rec = floors.Record
    flow = [rec("kessai.settlement.second", "settlement-second", "terminal", ("settlement",),
                True),
            rec("kessai.authorizations", "authorization", "settlement", ("issuer",), True),
            rec("kessai.settlement.first", "settlement-first", "shop", ("shop-1",), False)]
    assert read_by("settlement") > 0 and read_by("issuer") > 0
    assert floors.partitions_read(flow) == round((read_by("settlement") + read_by("issuer")) / 2)
    # The off-path record's reader does not count; no reader at all: one 4-partition topic.
    assert floors.partitions_read(flow[:1]) == read_by("settlement")
    assert floors.partitions_read([]) == 4
