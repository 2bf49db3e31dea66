#!/usr/bin/python3
"""pika_no_dedup: a pika worker without deduplication: every delivery is processed.

The baseline: every duplicate the broker delivers (a redelivery after a lost
ack or a crash, an extra copy a publisher republished) runs its side effect
again.
"""

import sys

from dupsim_example import App

app = App("no-dedup")


def handle(ch, method, props, body):
    app.side_effect(props.message_id, method)
    ch.basic_ack(method.delivery_tag)  # after the work: a crash before it redelivers


sys.exit(app.run(handle))
