"""The stream processor: Kafka input events -> UserKNN -> changed top-N lists on Kafka.

``Processor(settings).run(until_end=True)`` returns a :class:`RunSummary`; ``stream-cf run`` is the
same from the command line. Modules: :mod:`settings` (configuration), :mod:`codec` and :mod:`dlq`
(bytes in and out), :mod:`semantics` (events the engine would refuse), :mod:`refresh` (whose lists
may have changed), :mod:`publisher` (acknowledged publishing), :mod:`checkpoint` (atomic state
files), :mod:`topics` (topic creation) and :mod:`loop` (the processor).
"""

from stream_cf.processor.loop import Processor, RunSummary
from stream_cf.processor.settings import ProcessorSettings, load_settings

__all__ = ["Processor", "ProcessorSettings", "RunSummary", "load_settings"]
