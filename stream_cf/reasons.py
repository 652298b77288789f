"""Why an event is refused: the reason codes, listed once.

Every :class:`~stream_cf.exceptions.InvalidEvent` carries one of these codes, and the processor
puts it in the ``stream_cf.reason`` header of the record's dead letter. What each means (also in
README's dead-letter section):

=======================  =====================================================================
``empty_value``          the record has no value (null) or an empty one (zero bytes)
``not_utf8``             the value is not UTF-8
``too_deep``             the JSON nests arrays/objects deeper than
                         :data:`~stream_cf.event_json.MAX_DEPTH` levels
``invalid_json``         the value is not JSON
``number_too_large``     a JSON number that no double holds (1e400, an integer of 400 digits)
                         or whose digits pass Python's int limit (4,300)
``not_finite``           NaN or Infinity
``not_an_object``        the JSON value is not an object
``missing_field``        a required field is missing (``type``, ``user_id``, ``item_id``, ...)
``invalid_field``        a field has the wrong type or form
``unknown_type``         ``type`` is not one of the event types
``empty_id``             an id is the empty string
``id_too_long``          an id is longer than ``max_id_length`` characters
``not_unicode``          a string holds a lone surrogate (``"\\ud800"``): not Unicode text, and
                         it has no UTF-8 form to be a record key
``ts_out_of_range``      ``ts`` before 1970, after 9999 (in UTC), or further after the record's
                         append time than ``max_future_skew``
``rating_out_of_scale``  a rating outside ``rating_scale``
``value_too_large``      a quantity, or the weight a (user, item) pair would accumulate, above
                         the engine's :data:`~stream_cf.engine.validation.VALUE_LIMIT`
``unknown_rating``       an ``unrate`` of a (user, item) pair that has no rating
``unsupported_event``    a ``purchase`` while the feedback is explicit
=======================  =====================================================================
"""

from __future__ import annotations

from typing import Literal, get_args

Reason = Literal[
    "empty_value",
    "not_utf8",
    "too_deep",
    "invalid_json",
    "number_too_large",
    "not_finite",
    "not_an_object",
    "missing_field",
    "invalid_field",
    "unknown_type",
    "empty_id",
    "id_too_long",
    "not_unicode",
    "ts_out_of_range",
    "rating_out_of_scale",
    "value_too_large",
    "unknown_rating",
    "unsupported_event",
]
REASONS: tuple[Reason, ...] = get_args(Reason)
