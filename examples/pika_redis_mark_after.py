#!/usr/bin/python3
"""pika_redis_mark_after: a pika worker that dedups with Redis, marking AFTER the work.

  seen?  -> ack, skip
  else   -> do the work (the side effect), SET dedup:<id> NX EX ttl, ack

Nothing is ever lost, but a crash (or a lost connection) between the side
effect and the SET lets the redelivered copy through: it is processed twice.
Two instances that get the same message at once can both miss the key too.
"""

import os
import sys

from dupsim_example import App, redis_from_env, redis_errors

TTL_S = int(os.environ.get("EXAMPLE_TTL_S", "3600"))  # how long an id is remembered

app = App("mark-after")
r = redis_from_env()


def handle(ch, method, props, body):
    key = f"dedup:{props.message_id}"
    if r.exists(key):
        app.skip(props.message_id)  # seen before: its effect already happened
    else:
        app.side_effect(props.message_id, method)
        # <- a kill -9 here: effect done, no mark, no ack -> processed again
        r.set(key, 1, nx=True, ex=TTL_S)
    ch.basic_ack(method.delivery_tag)


sys.exit(app.run(handle, retry_on=redis_errors()))
