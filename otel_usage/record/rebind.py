"""The process's global MeterProvider: set once, re-bound by each start to the live provider.

OTel's API lets a process set its global MeterProvider once, and binds every instrument made
from ``metrics.get_meter(...)`` (before or after) to it for good. Printernizer makes its
instruments at import and may run its app's lifespan more than once in one process (each
``with TestClient(app)`` test does): a second ``UsageTelemetry`` could not become the global
provider, and the app's counters would keep counting into the first one, already shut down.

So with ``set_global=True`` the global provider is :data:`GLOBAL`, a forwarding provider set once
per process. Each start binds it to that ``UsageTelemetry``'s SDK provider; every instrument
made through it (and so every one made from ``metrics.get_meter``) is re-created on the new
provider; a shutdown unbinds it, and measurements go nowhere until the next start. A bound
instrument's ``add`` is one attribute read and one call, as in OTel's own proxy instruments.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.metrics import (
    CallbackT,
    Counter,
    Histogram,
    Meter,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
    _Gauge,
)
from opentelemetry.util.types import Attributes

__all__ = ["GLOBAL", "ForwardingMeterProvider", "bind_global", "unbind_global"]


class _Forward:
    """An instrument that forwards to its counterpart on the bound provider (none: dropped)."""

    def __init__(self, meter: _ForwardingMeter, create: Callable[[Meter], Any]) -> None:
        self.meter = meter
        self._create = create
        self._real: Any = None

    def rebind(self, meter: Meter | None) -> None:
        self._real = None if meter is None else self._create(meter)


_F = TypeVar("_F", bound=_Forward)


class _Counter(_Forward, Counter):
    def add(self, amount: int | float, attributes: Attributes = None,
            context: Context | None = None) -> None:
        real = self._real
        if real is not None:
            real.add(amount, attributes, context)


class _UpDownCounter(_Forward, UpDownCounter):
    def add(self, amount: int | float, attributes: Attributes = None,
            context: Context | None = None) -> None:
        real = self._real
        if real is not None:
            real.add(amount, attributes, context)


class _Histogram(_Forward, Histogram):
    def record(self, amount: int | float, attributes: Attributes = None,
               context: Context | None = None) -> None:
        real = self._real
        if real is not None:
            real.record(amount, attributes, context)


class _GaugeForward(_Forward, _Gauge):
    def set(self, amount: int | float, attributes: Attributes = None,
            context: Context | None = None) -> None:
        real = self._real
        if real is not None:
            real.set(amount, attributes, context)


class _Observable(_Forward, ObservableCounter, ObservableUpDownCounter, ObservableGauge):
    """Observable instruments hold their callbacks; re-creating them re-registers those."""


class _ForwardingMeter(Meter):
    """Makes forwarding instruments and binds each to the provider's current meter."""

    def __init__(self, owner: ForwardingMeterProvider, name: str, version: str | None,
                 schema_url: str | None) -> None:
        super().__init__(name, version=version, schema_url=schema_url)
        self._owner = owner

    def _make(self, instrument: _F) -> _F:
        self._owner.register(instrument)
        return instrument

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Counter:
        return self._make(_Counter(self, lambda m: m.create_counter(name, unit, description)))

    def create_up_down_counter(self, name: str, unit: str = "",
                               description: str = "") -> UpDownCounter:
        return self._make(_UpDownCounter(
            self, lambda m: m.create_up_down_counter(name, unit, description)))

    def create_histogram(self, name: str, unit: str = "", description: str = "", *,
                         explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
                         ) -> Histogram:
        return self._make(_Histogram(self, lambda m: m.create_histogram(
            name, unit, description,
            explicit_bucket_boundaries_advisory=explicit_bucket_boundaries_advisory)))

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> _Gauge:
        return self._make(_GaugeForward(self, lambda m: m.create_gauge(name, unit, description)))

    def create_observable_counter(self, name: str, callbacks: Sequence[CallbackT] | None = None,
                                  unit: str = "", description: str = "") -> ObservableCounter:
        return self._make(_Observable(
            self, lambda m: m.create_observable_counter(name, callbacks, unit, description)))

    def create_observable_up_down_counter(
        self, name: str, callbacks: Sequence[CallbackT] | None = None, unit: str = "",
        description: str = "",
    ) -> ObservableUpDownCounter:
        return self._make(_Observable(self, lambda m: m.create_observable_up_down_counter(
            name, callbacks, unit, description)))

    def create_observable_gauge(self, name: str, callbacks: Sequence[CallbackT] | None = None,
                                unit: str = "", description: str = "") -> ObservableGauge:
        return self._make(_Observable(
            self, lambda m: m.create_observable_gauge(name, callbacks, unit, description)))


class ForwardingMeterProvider(MeterProvider):
    """A MeterProvider whose instruments forward to the provider bound last (or nowhere)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: MeterProvider | None = None
        self._meters: dict[tuple[str, str | None, str | None], _ForwardingMeter] = {}
        # Synchronous instruments weakly (one the host drops cannot count any more), observable
        # ones for good (the host often keeps no reference: their callbacks keep observing).
        self._instruments: weakref.WeakSet[_Forward] = weakref.WeakSet()
        self._observables: list[_Forward] = []

    def get_meter(self, name: str, version: str | None = None, schema_url: str | None = None,
                  attributes: Attributes = None) -> Meter:
        key = (name, version, schema_url)
        with self._lock:
            meter = self._meters.get(key)
            if meter is None:
                meter = self._meters[key] = _ForwardingMeter(self, name, version, schema_url)
            return meter

    def register(self, instrument: _Forward) -> None:
        with self._lock:
            if isinstance(instrument, _Observable):
                self._observables.append(instrument)
            else:
                self._instruments.add(instrument)
            instrument.rebind(self._real_meter(instrument.meter))

    def bind(self, target: MeterProvider | None) -> None:
        """Forward every instrument, made and yet to be made, to `target` (None: nowhere)."""
        with self._lock:
            self._target = target
            for instrument in [*self._instruments, *self._observables]:
                instrument.rebind(self._real_meter(instrument.meter))

    @property
    def target(self) -> MeterProvider | None:
        return self._target

    def __len__(self) -> int:
        """How many instruments it forwards (the host's dropped ones are forgotten)."""
        with self._lock:
            return len(self._instruments) + len(self._observables)

    def _real_meter(self, meter: _ForwardingMeter) -> Meter | None:
        if self._target is None:
            return None
        return self._target.get_meter(meter.name, meter.version, meter.schema_url)


GLOBAL = ForwardingMeterProvider()


def bind_global(provider: MeterProvider) -> bool:
    """Make :data:`GLOBAL` the process's global provider (once) and bind it to `provider`;
    False when another global provider was set first (then nothing is bound)."""
    if metrics.get_meter_provider() is not GLOBAL:
        metrics.set_meter_provider(GLOBAL)  # once per process; refused if another came first
    if metrics.get_meter_provider() is not GLOBAL:
        return False
    GLOBAL.bind(provider)
    return True


def unbind_global(provider: MeterProvider) -> None:
    """Stop forwarding to `provider`, if it is the one bound (a later start may have re-bound)."""
    if GLOBAL.target is provider:
        GLOBAL.bind(None)
