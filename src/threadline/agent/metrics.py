"""The worker's counters."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WorkerMetrics"]


@dataclass(slots=True)
class WorkerMetrics:
    """Counters of one :class:`~threadline.agent.Worker`, since it started.

    Plain integers, updated in the worker's event loop: read them from the
    same loop, or copy them (``dataclasses.asdict``) for an exporter.
    """

    sessions: int = 0
    """Sessions served now."""

    runs: int = 0
    """Runs started: customer messages this worker claimed (``run.start``)."""

    runs_completed: int = 0
    """Runs whose reply completed."""

    claims_lost: int = 0
    """Claims refused because the session moved first (``412``): another
    replica, or a newer event; the worker looked again."""

    deltas: int = 0
    """Deltas streamed (text or parts)."""

    deltas_customer_absent: int = 0
    """Deltas streamed while no device of the customer was connected."""

    cancels: int = 0
    """Runs stopped by a ``run.cancel``."""

    interrupts: int = 0
    """Runs stopped by a newer customer message (double texting ``interrupt``)."""

    floor_lost: int = 0
    """Runs stopped because the floor passed to someone else."""

    pauses: int = 0
    """Runs paused because the customer was away (``when_customer_absent="pause"``)."""

    absent_stops: int = 0
    """Runs cancelled because the customer was away (``cancel``, or a pause
    that lasted too long)."""

    errors: int = 0
    """Runs that ended ``error``: ``respond`` raised, or publishing failed."""

    stale_ended: int = 0
    """Messages and runs an earlier incarnation left open, ended at start."""

    stop_latency_max: float = 0.0
    """Seconds, at most, from the event that stopped a run (cancel, floor,
    interrupt) reaching the worker to the ``respond`` iterator being closed."""
