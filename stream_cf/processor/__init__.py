"""The stream processor: Kafka input events -> UserKNN -> changed top-N lists on Kafka.

``Processor(settings).run(until_end=True)`` returns a :class:`RunSummary`; ``stream-cf run`` is the
same from the command line. Modules: :mod:`settings` (configuration), :mod:`consumer` (the input
side: positions, polling, commits), :mod:`codec` and :mod:`dlq` (bytes in and out), :mod:`intake`
(a batch's records sorted into events and dead letters), :mod:`batch` (one batch:
intake, engine, lists, outgoing records), :mod:`semantics`
(events the engine would refuse), :mod:`tracker` (the refresh policies: whose lists may have
changed, what was published), :mod:`output_tail` (what is on the output topic after a checkpoint),
:mod:`publisher` (acknowledged publishing), :mod:`delivery` (the
publisher's lifecycle, at least once or exactly once), :mod:`checkpoint` (atomic state files),
:mod:`checkpointing` (when a checkpoint is due, what it holds, writing it), :mod:`topics`
(topic creation), :mod:`topic_watch` (the topics' ids, the output offsets, a lost output
topic), :mod:`summary` (what a run did), :mod:`metrics` (``/metrics`` and ``/healthz``)
and :mod:`loop` (the processor).
"""

from stream_cf.processor.loop import Processor
from stream_cf.processor.settings import ProcessorSettings, load_settings
from stream_cf.processor.summary import RunSummary

__all__ = ["Processor", "ProcessorSettings", "RunSummary", "load_settings"]
