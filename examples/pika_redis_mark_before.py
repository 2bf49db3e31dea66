#!/usr/bin/python3
"""pika_redis_mark_before: a pika worker that dedups with Redis, marking BEFORE the work.

  SET dedup:<id> NX EX ttl  -> nil (the key was there): ack, skip
                            -> OK: do the work (the side effect), ack

No message is processed twice (SET NX is atomic, so even two instances
racing on the same id cannot both win), but a crash between the SET and the
side effect loses the message: its redelivered copy finds the mark and is
skipped, though its effect never happened.
"""

import os
import sys

from dupsim_example import App, redis_from_env, redis_errors

TTL_S = int(os.environ.get("EXAMPLE_TTL_S", "3600"))  # how long an id is remembered

app = App("mark-before")
r = redis_from_env()


def handle(ch, method, props, body):
    if r.set(f"dedup:{props.message_id}", 1, nx=True, ex=TTL_S):
        # <- a kill -9 here: marked, no effect, no ack -> the copy is skipped: lost
        app.side_effect(props.message_id, method)
    else:
        app.skip(props.message_id)  # marked before (maybe by a crashed worker)
    ch.basic_ack(method.delivery_tag)


sys.exit(app.run(handle, retry_on=redis_errors()))
