"""The stateful suite with online load (issue 27): requests arrive at the gateway and are
served at each VM's capacity, while every other rule of the suite (faults, crashes,
kills, caps, preemptions, time) goes on. On top of the suite's invariants:

- **no-scale-in-of-work**: a stop the control plane sends while it holds a valid lease
  for a scale-in (not a kill, cap, expiry, runtime cap, restart or error) never hits a VM whose
  stored heartbeat is fresh and busy, nor one still loading (started, no ready heartbeat
  since, inside the boot grace) that was desired RUNNING before: what the control plane
  knew when it decided;
- **scale-out-within-caps**: a start sent by a decision that scaled out for load leaves
  the pool's projected spend (spent + the run rate of the VMs up until the period's end)
  within its daily and monthly caps.

The load model: each VM runs at most ``CAPACITY`` requests; the rest wait at the gateway
(held). A VM's agent reports at once when its load changes (a heartbeat with running
and waiting), the gateway its in flight and held (``LoadReported``); a VM that stops
hands its requests back to the gateway (none is lost).
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule

from reliability.harness import T0, TICK_S, World, pool_config
from reliability.invariants import Checker
from reliability.test_stateful import FIXED_SEED, ControlPlane, Setup, _run, chosen_seed
from yoyo_control.domain import scaling
from yoyo_control.domain.facts import Fact, HeartbeatReceived, LoadReported
from yoyo_control.domain.heartbeats import is_busy
from yoyo_control.domain.model import ActionKind, Heartbeat
from yoyo_control.domain.spend import period_bounds
from yoyo_control.service import Handled

CAPACITY = 4  # requests a VM runs at once (the pool's max_num_seqs)
PRICE_PER_H = 3.6  # harness.pool_config's hourly price

LOAD_SETUPS = st.builds(
    Setup,
    instances=st.just(3),
    second_pool=st.just(False),
    daily_cap=st.sampled_from([None, 60.0, 120.0, 200.0]),
    monthly_cap=st.sampled_from([None, None, 2500.0]),
    kill_fraction=st.just(1.0),
    max_session_s=st.sampled_from([1800.0, 3600.0]),
    lease_s=st.sampled_from([300.0, 900.0, 1800.0]),
    idle_timeout_s=st.sampled_from([300.0, 600.0]),
    max_action_attempts=st.integers(2, 4),
    lag_steps=st.integers(1, 3),
    start_offset=st.sampled_from([0.0, 0.0, 57_000.0]),
)


class LoadedControlPlane(ControlPlane):
    suite = "stateful-load"

    @initialize(setup=LOAD_SETUPS)
    def build(self, setup: Setup) -> None:
        config = pool_config(
            instances=tuple(f"vm-{i}" for i in range(setup.instances)),
            daily_cap_usd=setup.daily_cap,
            monthly_cap_usd=setup.monthly_cap,
            max_session_s=setup.max_session_s,
            lease_s=setup.lease_s,
            idle_timeout_s=setup.idle_timeout_s,
            max_action_attempts=setup.max_action_attempts,
            max_num_seqs=CAPACITY,
            scale_target=3,
            scale_window_s=60,
        )
        start = T0 + setup.start_offset
        self.world = World.build(config, self.dir, start=start)
        self.world.sim.lag_steps = setup.lag_steps
        self.checker = Checker(self.world, self.suite, tick_s=self.checker_tick_s)
        self.setup = setup
        self.next_cron = start + TICK_S
        self.delivering: Fact | None = None
        self.wanted_before: set[str] = set()  # desired RUNNING before this delivery
        self.on_vm: dict[str, int] = {}  # requests running on each VM (the truth)
        self.held = 0  # requests waiting at the gateway
        self.served = 0
        self.arrived = 0
        self.built()
        self.trace(f"setup: {setup}")

    def built(self) -> None:
        sim = self.w.sim
        check_start = self.checker.on_start

        def on_start(instance: str, request_id: str) -> None:
            check_start(instance, request_id)
            self._check_scale_out_within_caps(instance)

        sim.on_start = on_start
        stop = sim.stop

        def checked_stop(zone: str, instance: str, request_id: str) -> None:
            self._check_no_scale_in_of_work(instance)
            stop(zone, instance, request_id)

        sim.stop = checked_stop  # type: ignore[method-assign]

    # --- the load ---------------------------------------------------------------------------

    def _serving(self) -> list[str]:
        sim = self.w.sim
        return [
            n
            for n in self.w.config.pools["gpu"].instances
            if sim.running(n) and sim.instances[n].status == "RUNNING"
        ]

    def _settle(self) -> None:
        """Requests on VMs that no longer run go back to the gateway; held ones fill
        free slots; every VM whose load changed reports it, and so does the gateway."""
        serving = self._serving()
        changed = set()
        for name in list(self.on_vm):
            if name not in serving:
                self.held += self.on_vm.pop(name)
        for name in sorted(serving, key=lambda n: self.on_vm.get(n, 0)):
            free = CAPACITY - self.on_vm.get(name, 0)
            take = min(free, self.held)
            if take > 0:
                self.on_vm[name] = self.on_vm.get(name, 0) + take
                self.held -= take
                changed.add(name)
        for name in sorted(changed):
            self._report(name)
        self._gateway()

    def _report(self, name: str) -> None:
        now = self.vm_now()
        n = self.on_vm.get(name, 0)
        hb = Heartbeat(name, self.w.sim.boot_id(name), now, 0.0, busy=n > 0, running=n)
        self.deliver(HeartbeatReceived(self.mid("load-hb"), now, "gpu", hb))

    def _gateway(self) -> None:
        in_flight = sum(self.on_vm.values())
        now = self.w.clock.now()
        self.deliver(LoadReported(self.mid("load"), now, "gpu", in_flight, self.held))

    @rule(n=st.integers(1, 12))
    def requests_arrive(self, n: int) -> None:
        self.arrived += n
        self.held += n
        self._settle()

    @rule(k=st.integers(1, CAPACITY))
    def requests_served(self, k: int) -> None:
        done = []
        for name in sorted(self.on_vm):
            took = min(k, self.on_vm[name])
            self.on_vm[name] -= took
            self.served += took
            if took:
                done.append(name)
        for name in done:
            self._report(name)
        self._settle()

    def agent_heartbeats(self) -> None:
        """The agents report their VM's load (not the suite's busy/idle mode)."""
        if self.agents == "dead":
            return
        for name in self._serving():
            self._report(name)
        self._settle()

    def pass_time(self, seconds: float) -> None:
        super().pass_time(seconds)
        self._settle()

    # --- the checks ---------------------------------------------------------------------------

    def deliver(self, fact: Fact) -> Handled | None:
        self.delivering = fact
        state = self.w.store.get_pool("gpu")
        self.wanted_before = {n for n, i in state.instances.items() if i.desired.value == "RUNNING"}
        try:
            return super().deliver(fact)
        finally:
            self.delivering = None

    def _expected_heartbeat_note(self, fact: Fact) -> str | None:
        note = super()._expected_heartbeat_note(fact)
        if note == "heartbeat recorded" and isinstance(fact, HeartbeatReceived):
            stored = self.heartbeats.get((fact.pool, fact.heartbeat.instance))
            policy = self.w.config.pools[fact.pool]
            if scaling.load_matters(stored, fact.heartbeat, policy):
                return ""
        return note

    def _check_no_scale_in_of_work(self, instance: str) -> None:
        w = self.w
        now = w.clock.now()
        state = w.store.get_pool("gpu")
        policy = w.config.pools["gpu"]
        inst = state.instances.get(instance)
        lease = state.lease
        scale_in = (
            inst is not None
            and lease is not None
            and lease.valid(now)
            and not w.store.get_kill().engaged
            and state.paused is None
            and inst.retired_epoch != lease.epoch
            and inst.next_start_at is None
            and not inst.restarts
            and not inst.orphan
            and inst.error is None
            and inst.desired.value == "STOPPED"
        )
        hb = w.store.get_heartbeat("gpu", instance)
        fact = self.delivering
        if isinstance(fact, HeartbeatReceived) and fact.heartbeat.instance == instance:
            # The heartbeat being handled is stored after its decision: that is what it knew.
            hb = replace(fact.heartbeat, received_at=now)
        busy = hb is not None and now - hb.received_at <= policy.heartbeat_gap_s and is_busy(hb)
        loading = False
        # A VM already desired STOPPED (by a kill, a cap, an expiry) that loads while its
        # stop is still being sent is not one this decision scaled in.
        if inst is not None and instance in self.wanted_before:
            la = inst.last_action
            started = la.issued_at if la is not None and la.kind == ActionKind.START else None
            since = inst.running_since or started
            if since is not None and now - since < policy.boot_grace_s:
                loading = hb is None or not hb.ready or hb.received_at < since
        self.checker.tally("no-scale-in-of-work", relevant=scale_in and (busy or loading))
        assert not (scale_in and busy), f"no-scale-in-of-work: stopped {instance} with work ({hb})"
        assert not (scale_in and loading), f"no-scale-in-of-work: stopped {instance} still loading"

    def _check_scale_out_within_caps(self, instance: str) -> None:
        w = self.w
        now = w.clock.now()
        state = w.store.get_pool("gpu")
        policy = w.config.pools["gpu"]
        inst = state.instances.get(instance)
        la = inst.last_action if inst is not None else None
        scaled_out = la is not None and la.reason.startswith("4-load")
        up = sum(1 for i in state.instances.values() if i.desired.value == "RUNNING")
        rate = up * PRICE_PER_H
        _, day_end, _, month_end = period_bounds(now, policy.timezone)
        ledger = state.ledger
        over = []
        if policy.daily_cap_usd is not None:
            projected = ledger.day_usd + rate * (day_end - now) / 3600
            if projected > policy.daily_cap_usd + 0.01:
                over.append(f"day {projected:.2f} > {policy.daily_cap_usd}")
        if policy.monthly_cap_usd is not None:
            projected = ledger.month_usd + rate * (month_end - now) / 3600
            if projected > policy.monthly_cap_usd + 0.01:
                over.append(f"month {projected:.2f} > {policy.monthly_cap_usd}")
        self.checker.tally("scale-out-within-caps", relevant=scaled_out and up > 1)
        assert not (scaled_out and up > 1 and over), (
            f"scale-out-within-caps: start {instance} with {up} VMs up: {over}"
        )

    def teardown(self) -> None:
        if self.world is not None:
            self._settle()
            in_system = self.held + sum(self.on_vm.values())
            assert self.arrived == self.served + in_system, "a request was lost"
        super().teardown()


def test_invariants_hold_with_load() -> None:
    _run(examples=40, steps=80, seed=chosen_seed(slow=False), machine=LoadedControlPlane)


def test_the_fixed_seed_is_the_suites() -> None:
    assert FIXED_SEED  # the same seed as the suite: ``make test`` runs the same steps
