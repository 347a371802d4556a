"""The autoscaling simulation: online load on a pool of VMs with a real capacity.

What is simulated, in virtual time (sim/events.py):

- **the VMs' model server** (``Server``): continuous batching. A VM runs at most
  ``max_num_seqs`` sequences at once; every running sequence advances at
  ``min(seq_tokens_per_s, tokens_per_s / running)`` tokens per second (one GPU shared
  by the batch), first through its prefill (``context_tokens × prefill_weight``
  decode-token equivalents; its first token comes at the end of it), then through its
  generated tokens. So a VM past its throughput serves every sequence slower, its
  batch fills, and requests queue: queueing is real;
- **the gateway**: a request goes to the ready VM (not draining) with the fewest
  sequences that has a free slot; with none it is held in arrival order and handed
  out as slots free up or VMs get ready. A request on a VM that stops goes back to
  the head of the queue (``interrupted``);
- **Compute**: sim/compute.py (seeded boot and stop times; billed while RUNNING or
  STOPPING).

The policy under test decides how many VMs run:

- ``today`` and ``yoyo`` run the production ``Service`` (so ``decide()``) on a
  MemoryStore: the gateway publishes a wake when requests are held at a pool without a
  lease and ``LoadReported`` when ``scaling.report_due`` says so; each ready VM sends a
  heartbeat (running, waiting) every ``heartbeat_s`` and at once when its load crosses
  a half-target step; Cloud Scheduler ticks every ``tick_s``. ``today`` is the rule
  before issue 27 (one VM whatever the load: a target no load reaches);
- ``kpa``: Knative's Pod Autoscaler (``Kpa``), acting on Compute directly;
- the oracle is not simulated: ``oracle()`` computes it from the future.

Invariants: deterministic for a given (workload, policy, params); nothing sleeps; a
request is never lost (each is served exactly once, or counted unserved at the end).
"""

from __future__ import annotations

import heapq
import io
import itertools
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TextIO, cast

from .. import logs
from ..config import Config
from ..domain import scaling
from ..domain.facts import HeartbeatReceived, RunRequested, Tick
from ..domain.model import Heartbeat, Holder, PoolPolicy
from ..errors import InvalidMessage, TemporaryError
from ..ports import Store
from ..service import Service
from .compute import Dist, Machine, SimCompute
from .events import EventQueue
from .loadgen import Arrival
from .memory_store import MemoryStore
from .result import percentile

POOL = "gpu"
POLICIES = ("today", "kpa", "yoyo")
KNATIVE_UTILIZATION = 0.7  # container-concurrency-target-percentage, default 70


@dataclass(frozen=True)
class Server:
    """One VM's model server (continuous batching)."""

    max_num_seqs: int = 64
    tokens_per_s: float = 3000.0  # the VM's whole decode throughput
    seq_tokens_per_s: float = 50.0  # one sequence's best speed (20 ms per token)
    prefill_weight: float = 0.02  # a context token costs this many decode tokens

    @property
    def full_speed_seqs(self) -> int:
        """Sequences a VM runs at full speed each (beyond, each one slows)."""
        return max(1, min(self.max_num_seqs, int(self.tokens_per_s / self.seq_tokens_per_s)))

    def work(self, a: Arrival) -> tuple[float, float]:
        """(prefill, total) work of a request, in decode tokens."""
        prefill = a.context_tokens * self.prefill_weight
        return prefill, prefill + a.generated_tokens


@dataclass(frozen=True)
class AutoscaleParams:
    server: Server = Server()
    machine: Machine = field(
        default_factory=lambda: Machine(staging=Dist(20.0, 0.2), ready=Dist(120.0, 0.2))
    )
    instances: int = 8
    hourly_price: float = 0.70
    heartbeat_s: float = 15.0
    tick_s: float = 60.0
    lead_s: float = 300.0  # the pool is warm (one VM ready) when the load begins
    tail_s: float = 120.0  # measured until this long after the last arrival
    seed: int = 0

    def policy(self, kind: str) -> PoolPolicy:
        target = 1e12 if kind == "today" else 0.0
        return PoolPolicy(
            pool=POOL,
            zone="sim",
            instances=tuple(f"vm-{i}" for i in range(self.instances)),
            hourly_price_usd=self.hourly_price,
            keepalive="fixed",
            idle_timeout_s=900.0,
            boot_s=self.machine.mean_boot_s,
            heartbeat_gap_s=180.0,
            tick_s=self.tick_s,
            max_num_seqs=self.server.max_num_seqs,
            scale_target=target,
        )


@dataclass
class Outcome:
    policy: str
    vm_hours: float
    ttft: list[float]  # per request served (seconds from arrival to its first token)
    boots: int
    interrupted: int
    unserved: int
    max_vms: int
    events: int

    def p(self, q: float) -> float:
        return percentile(sorted(self.ttft), q) if self.ttft else math.inf


@dataclass
class _Seq:
    index: int
    first_at: float  # virtual progress at which its first token comes
    done_at: float  # … and at which it is done


@dataclass
class _Vm:
    name: str
    boot_id: str
    ready: bool = False
    draining: bool = False
    seqs: dict[int, _Seq] = field(default_factory=dict)
    progress: float = 0.0  # tokens every running sequence has advanced (virtual)
    updated: float = 0.0
    version: int = 0
    heap: list[tuple[float, int, int]] = field(default_factory=list)  # (progress, kind, i)
    last_key: tuple[bool, int] = (False, 0)


class _Null(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


class AutoscaleSim:
    def __init__(self, arrivals: list[Arrival], kind: str, params: AutoscaleParams) -> None:
        if kind not in POLICIES:
            raise ValueError(f"policy {kind!r}: one of {POLICIES}")
        self.arrivals, self.kind, self.params = arrivals, kind, params
        self.server = params.server
        self.start = -params.lead_s
        self.end = (arrivals[-1].at if arrivals else 0.0) + params.tail_s
        self.queue = EventQueue(self.start)
        self.rng = random.Random(params.seed)
        self.compute = SimCompute(self.queue, self.rng, params.machine, listener=self)
        self.pool = params.policy(kind)
        for name in self.pool.instances:
            self.compute.add(POOL, name)
        self.vms: dict[str, _Vm] = {}
        self.held: deque[int] = deque()
        self.first_token: dict[int, float] = {}
        self.served: set[int] = set()
        self.interrupted = 0
        self.max_vms = 0
        self.ids = itertools.count(1)
        self.last_report: tuple[int, int, float] | None = None
        self.service: Service | None = None
        self.kpa: Kpa | None = None
        if kind == "kpa":
            self.kpa = Kpa(target=KNATIVE_UTILIZATION * self.server.max_num_seqs)
        else:
            config = Config(backend="local", pools={POOL: self.pool})
            # MemoryStore implements what Service uses of ports.Store (sim/memory_store.py).
            store = cast(Store, MemoryStore())
            self.service = Service(store, self.compute, self.queue.clock, config)

    # --- running ---------------------------------------------------------------------

    def run(self) -> Outcome:
        logs.set_stream(cast(TextIO, _Null()))
        try:
            for index, a in enumerate(self.arrivals):
                self.queue.at(a.at, self._arrive, index)
            if self.service is not None:
                self.queue.at(self.start, self._warm)
                self.queue.at(self.start, self._tick)
            else:
                self.queue.at(self.start, self._kpa_start)
            self.queue.run_until(self.end)
        finally:
            logs.set_stream(None)
        ttft = [self.first_token[i] - self.arrivals[i].at for i in sorted(self.first_token)]
        return Outcome(
            self.kind,
            self.compute.billed_s() / 3600.0,
            ttft,
            sum(vm.boots for vm in self.compute.vms.values()),
            self.interrupted,
            len(self.arrivals) - len(self.served),
            self.max_vms,
            self.queue.processed,
        )

    def _mid(self, kind: str) -> str:
        return f"{kind}-{next(self.ids)}"

    def _deliver(self, fact: Any) -> None:
        assert self.service is not None
        try:
            self.service.handle(fact)
        except TemporaryError:
            self.queue.after(10.0, self._deliver, fact)
        except InvalidMessage:
            pass

    def _warm(self) -> None:
        """The pool is warm when the load begins: an operator start, lead_s ahead."""
        warm_s = self.params.lead_s + self.pool.lease_s
        fact = RunRequested(
            self._mid("op"), self.queue.now(), POOL, Holder.OPERATOR, "warm", warm_s
        )
        self._deliver(fact)

    def _tick(self) -> None:
        self._deliver(Tick(self._mid("tick"), self.queue.now()))
        self.queue.after(self.params.tick_s, self._tick)

    # --- the gateway -------------------------------------------------------------------

    def _arrive(self, index: int) -> None:
        self.held.append(index)
        self._dispatch()
        self._gateway_report()

    def _open(self) -> list[_Vm]:
        return [
            vm
            for vm in self.vms.values()
            if vm.ready and not vm.draining and len(vm.seqs) < self.server.max_num_seqs
        ]

    def _dispatch(self) -> None:
        while self.held:
            open_vms = self._open()
            if not open_vms:
                break
            vm = min(open_vms, key=self._route_key)
            self._admit(vm, self.held.popleft())
        if self.held and self.service is not None and not self._open():
            state = self.service.store.get_pool(POOL)
            if state.lease is None or not state.lease.valid(self.queue.now()):
                fact = RunRequested(
                    f"wake-{state.epoch}-{int(self.queue.now() // 60)}",
                    self.queue.now(),
                    POOL,
                    Holder.WAKE,
                    "gateway: request waiting",
                    self.pool.lease_s,
                )
                self._deliver(fact)

    def _route_key(self, vm: _Vm) -> tuple[bool, int, str]:
        """``pack`` (Yo-Yo's gateway): fill VMs in a stable order up to the target, so a
        VM the load no longer needs goes idle and scale-in may stop it (a busy VM is
        never stopped); past the target on every VM, the least loaded. ``spread``
        (Knative's activator): the least loaded always (KPA drains the VMs it removes)."""
        n = len(vm.seqs)
        if self.kind == "kpa":
            return (False, n, vm.name)
        under = n < self.pool.target
        return (not under, 0 if under else n, vm.name)

    def _in_flight(self) -> int:
        return sum(len(vm.seqs) for vm in self.vms.values())

    def _gateway_report(self) -> None:
        if self.service is None:
            return
        now = self.queue.now()
        in_flight, held = self._in_flight(), len(self.held)
        fact = scaling.load_report(
            POOL, self.last_report, in_flight, held, now, self.pool.target, seq=next(self.ids)
        )
        if fact is not None:
            self.last_report = (in_flight, held, now)
            self._deliver(fact)

    # --- the model server --------------------------------------------------------------

    def _rate(self, vm: _Vm) -> float:
        n = len(vm.seqs)
        return min(self.server.seq_tokens_per_s, self.server.tokens_per_s / n) if n else 0.0

    def _advance(self, vm: _Vm) -> None:
        now = self.queue.now()
        vm.progress += self._rate(vm) * (now - vm.updated)
        vm.updated = now

    def _admit(self, vm: _Vm, index: int) -> None:
        self._advance(vm)
        prefill, total = self.server.work(self.arrivals[index])
        seq = _Seq(index, vm.progress + prefill, vm.progress + total)
        vm.seqs[index] = seq
        if index not in self.first_token:
            heapq.heappush(vm.heap, (seq.first_at, 0, index))
        heapq.heappush(vm.heap, (seq.done_at, 1, index))
        self._reschedule(vm)
        self._vm_load_changed(vm)

    def _reschedule(self, vm: _Vm) -> None:
        vm.version += 1
        while vm.heap and vm.heap[0][2] not in vm.seqs:
            heapq.heappop(vm.heap)
        if not vm.heap:
            return
        rate = self._rate(vm)
        delay = max(0.0, (vm.heap[0][0] - vm.progress) / rate) if rate else 0.0
        self.queue.after(delay, self._milestone, vm.name, vm.boot_id, vm.version)

    def _milestone(self, name: str, boot_id: str, version: int) -> None:
        vm = self.vms.get(name)
        if vm is None or vm.boot_id != boot_id or vm.version != version:
            return
        self._advance(vm)
        finished = False
        while vm.heap and vm.heap[0][0] <= vm.progress + 1e-9:
            _, kind, index = heapq.heappop(vm.heap)
            if index not in vm.seqs:
                continue
            if kind == 0:
                self.first_token.setdefault(index, self.queue.now())
            else:
                del vm.seqs[index]
                self.served.add(index)
                finished = True
        self._reschedule(vm)
        if finished:
            self._vm_load_changed(vm)
            if vm.draining and not vm.seqs:
                self._stop(vm.name)
            self._dispatch()
            self._gateway_report()

    def _vm_load_changed(self, vm: _Vm) -> None:
        """The VM's agent reports at once when its load crosses a half-target step."""
        if self.service is None:
            return
        n = len(vm.seqs)
        key = (n > 0, math.floor(n / max(1.0, self.pool.target / 2)))
        if key != vm.last_key:
            vm.last_key = key
            self._heartbeat(vm)

    # --- the VMs (SimCompute's listener) -----------------------------------------------

    def on_running(self, instance: str, boot_id: str) -> None:
        self.vms[instance] = _Vm(instance, boot_id, updated=self.queue.now())
        self.max_vms = max(self.max_vms, len(self.vms))
        ready = self.params.machine.ready.sample(self.rng)
        self.queue.after(ready, self._ready, instance, boot_id)
        if self.service is not None:
            self.queue.after(15.0, self._periodic, instance, boot_id)

    def _ready(self, instance: str, boot_id: str) -> None:
        vm = self.vms.get(instance)
        if vm is None or vm.boot_id != boot_id:
            return
        vm.ready = True
        if self.service is not None:
            self._heartbeat(vm)
        self._dispatch()
        self._gateway_report()

    def on_stopping(self, instance: str, why: str) -> None:
        vm = self.vms.pop(instance, None)
        if vm is None:
            return
        for index in sorted(vm.seqs, reverse=True):
            self.interrupted += 1
            self.held.appendleft(index)
        self._dispatch()

    def _periodic(self, instance: str, boot_id: str) -> None:
        vm = self.vms.get(instance)
        if vm is None or vm.boot_id != boot_id:
            return
        self._heartbeat(vm)
        self.queue.after(self.params.heartbeat_s, self._periodic, instance, boot_id)

    def _heartbeat(self, vm: _Vm) -> None:
        now = self.queue.now()
        running = len(vm.seqs)
        hb = Heartbeat(
            instance=vm.name,
            boot_id=vm.boot_id,
            sent_at=now,
            received_at=now,
            busy=running > 0,
            running=running,
            waiting=0,
            last_request_at=now if running else None,
            ready=vm.ready,
        )
        self._deliver(HeartbeatReceived(self._mid("hb"), now, POOL, hb))

    # --- KPA's actuator ----------------------------------------------------------------

    def _kpa_start(self) -> None:
        assert self.kpa is not None
        # Warm when the load begins, as Yo-Yo's pool (an operator start): traffic is
        # taken to last until then, so the last pod is not scaled to zero before it.
        self.kpa.last_traffic = 0.0
        self._scale_to(1)
        self.queue.after(2.0, self._kpa_tick)

    def _kpa_tick(self) -> None:
        assert self.kpa is not None
        now = self.queue.now()
        concurrency = self._in_flight() + len(self.held)
        ready = sum(1 for vm in self.vms.values() if vm.ready and not vm.draining)
        desired = self.kpa.tick(now, concurrency, ready)
        self._scale_to(desired)
        self.queue.after(self.kpa.tick_s, self._kpa_tick)

    def _pods(self) -> list[str]:
        """Instances counted as replicas: starting or running, not draining."""
        return [
            n
            for n in self.pool.instances
            if self.compute.status(n) in ("STAGING", "RUNNING")
            and not (n in self.vms and self.vms[n].draining)
        ]

    def _scale_to(self, desired: int) -> None:
        desired = min(desired, len(self.pool.instances))
        pods = self._pods()
        if desired > len(pods):
            free = [n for n in self.pool.instances if self.compute.status(n) == "TERMINATED"]
            for name in free[: desired - len(pods)]:
                self.compute.start("sim", name, self._mid("start"))
        elif desired < len(pods):
            # A ReplicaSet scales down not-ready pods first, then the least loaded;
            # a ready pod drains (no new requests) and stops when its work is done.
            def order(n: str) -> tuple[bool, int]:
                vm = self.vms.get(n)
                return (vm is not None and vm.ready, len(vm.seqs) if vm else 0)

            for name in sorted(pods, key=order)[: len(pods) - desired]:
                vm = self.vms.get(name)
                if vm is None or not vm.seqs:
                    self._stop(name)
                else:
                    vm.draining = True
        if pods or desired:
            self.max_vms = max(self.max_vms, min(desired, len(self.pool.instances)))

    def _stop(self, name: str) -> None:
        if self.compute.status(name) in ("STAGING", "RUNNING"):
            self.compute.stop("sim", name, self._mid("stop"))


@dataclass
class Kpa:
    """Knative's Pod Autoscaler, concurrency mode, with its defaults
    (https://knative.dev/docs/serving/autoscaling/kpa-specific/, /scale-to-zero/):
    desired = ceil(average concurrency / target) over the stable window (60 s); the
    panic window is 10 % of it (6 s); panic mode begins when the panic window's desired
    count is at least 200 % of the ready pods, uses the panic count and never scales
    down, and ends after a stable window without that condition; scale-down rate at most
    halves the ready pods per decision (max-scale-down-rate 2, rounded down, as Knative);
    the last pod goes after a stable window without traffic plus the 30 s
    scale-to-zero grace period. Decides every 2 s (tick-interval), from one concurrency
    sample per tick (the activator's and queue-proxies' report)."""

    target: float
    stable_s: float = 60.0
    panic_pct: float = 10.0
    panic_threshold: float = 2.0
    grace_s: float = 30.0
    tick_s: float = 2.0
    max_down_rate: float = 2.0
    samples: deque[tuple[float, float]] = field(default_factory=deque)
    panic_since: float | None = None
    last_traffic: float | None = None
    desired: int = 1

    def tick(self, now: float, concurrency: float, ready: int) -> int:
        self.samples.append((now, concurrency))
        while self.samples and self.samples[0][0] <= now - self.stable_s:
            self.samples.popleft()
        if concurrency > 0:
            self.last_traffic = now
        panic_s = self.stable_s * self.panic_pct / 100.0
        stable = sum(c for _, c in self.samples) / len(self.samples)
        recent = [c for t, c in self.samples if t > now - panic_s]
        panic = sum(recent) / len(recent)
        want_stable = math.ceil(stable / self.target)
        want_panic = math.ceil(panic / self.target)
        if want_panic >= self.panic_threshold * max(1, ready) and want_panic > 0:
            self.panic_since = now
        elif self.panic_since is not None and now - self.panic_since >= self.stable_s:
            self.panic_since = None
        if self.panic_since is not None:
            want = max(want_panic, self.desired)
        else:
            # Knative: maxScaleDown = floor(max(1, ready pods) / max-scale-down-rate).
            want = max(want_stable, math.floor(max(1, ready) / self.max_down_rate))
        if want == 0:
            idle_for = now - self.last_traffic if self.last_traffic is not None else math.inf
            if idle_for < self.stable_s + self.grace_s:
                want = 1
        self.desired = want
        return want


def simulate(arrivals: list[Arrival], kind: str, params: AutoscaleParams) -> Outcome:
    return AutoscaleSim(arrivals, kind, params).run()


def oracle(arrivals: list[Arrival], params: AutoscaleParams, bin_s: float = 60.0) -> Outcome:
    """The fewest VM-hours with no request waiting for a slot: knowing every arrival, it
    runs in each ``bin_s`` the VMs the bin's peak needs at full speed (each VM serves
    ``full_speed_seqs`` sequences without slowing), each started early enough to be
    ready when its bin begins (its boot billed: ``ready``), none ever interrupted; a VM
    idle for less than a boot plus a stop between two bins it serves is kept (cheaper
    than stopping it). Time to first token: the request's own prefill at full speed.
    Binning makes it a slight over-estimate of the true optimum."""
    server, machine = params.server, params.machine
    per_vm = server.full_speed_seqs
    events: list[tuple[float, int]] = []
    ttft = []
    for a in arrivals:
        prefill, total = server.work(a)
        events += [(a.at, 1), (a.at + total / server.seq_tokens_per_s, -1)]
        ttft.append(prefill / server.seq_tokens_per_s)
    events.sort()
    if not events:
        return Outcome("oracle", 0.0, [], 0, 0, 0, 0, 0)
    first, last = events[0][0], events[-1][0]
    bins = int((last - first) // bin_s) + 1
    peak = [0] * bins
    level = 0
    for t, delta in events:
        level += delta
        b = min(bins - 1, int((t - first) // bin_s))
        peak[b] = max(peak[b], level)
    need = [math.ceil(p / per_vm) for p in peak]
    # Each VM slot j runs in the bins where need > j; gaps shorter than a boot + stop
    # are bridged; every run pays its boot (ready) and its stop.
    overhead = machine.ready.mean_s + machine.stop.mean_s
    billed, boots = 0.0, 0
    for j in range(max(need, default=0)):
        runs = [b for b in range(bins) if need[b] > j]
        if not runs:
            continue
        start = prev = runs[0]
        spans = []
        for b in runs[1:]:
            if (b - prev - 1) * bin_s > overhead:
                spans.append((start, prev))
                start = b
            prev = b
        spans.append((start, prev))
        for s, e in spans:
            billed += (e - s + 1) * bin_s + overhead
            boots += 1
    return Outcome("oracle", billed / 3600.0, ttft, boots, 0, 0, max(need, default=0), 0)


__all__ = ["AutoscaleParams", "AutoscaleSim", "Kpa", "Outcome", "Server", "oracle", "simulate"]
