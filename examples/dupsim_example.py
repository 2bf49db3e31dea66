"""dupsim_example: what the example consumers share (env, effects, tally, reconnect loop).

An app that dupsim runs under `[app] consumer = ...` reads its settings from
the environment (see README.md), appends one line per executed side effect
to $DUPSIM_EFFECTS (dupsim's count) and, for its own count that dupsim never
reads, one line per delivery to tally-<instance>.txt beside it. Both are
written and flushed BEFORE the ack: a kill -9 after the flush loses nothing
already written (the kernel has it), and a kill before it means the broker
redelivers.
"""

import os
import signal
import sys
import time


class _Stop:
    requested = False


def _on_stop(signum, frame):
    # Only a flag: the consume loop sees it within half a second, after
    # the message in hand is finished and acked.
    _Stop.requested = True


# Before importing pika (a tenth of a second): a SIGTERM that comes while
# the app is still starting must not kill it.
signal.signal(signal.SIGTERM, _on_stop)
signal.signal(signal.SIGINT, _on_stop)

import pika  # noqa: E402


def env(name, default=None):
    """One environment variable; a missing required one stops the app with the fix."""
    value = os.environ.get(name, default)
    if value is None:
        sys.exit(f"{sys.argv[0]}: {name} is not set (dupsim sets it for [app] consumers; "
                 "see examples/README.md)")
    return value


class App:
    """One instance: its settings, its two output files and its shutdown flag."""

    def __init__(self, name):
        self.name = name
        self.url = env("DUPSIM_AMQP_URL")
        self.queue = env("DUPSIM_QUEUE")
        self.instance = int(env("DUPSIM_INSTANCE", "0"))
        self.work_s = int(env("EXAMPLE_WORK_MS", "0")) / 1000.0
        self.prefetch = int(env("EXAMPLE_PREFETCH", "50"))
        effects = env("DUPSIM_EFFECTS")
        tally = os.path.join(os.path.dirname(os.path.abspath(effects)),
                             f"tally-{self.instance}.txt")
        # Append: a restarted instance goes on writing after the one it replaced.
        self.effects = open(effects, "a", encoding="ascii")
        self.tally = open(tally, "a", encoding="ascii")
        self.counts = {"processed": 0, "skipped": 0}

    @property
    def stopping(self):
        return _Stop.requested

    def log(self, text):
        print(f"{self.name}[{self.instance}]: {text}", file=sys.stderr, flush=True)

    def _write(self, f, line):
        f.write(line + "\n")
        f.flush()

    def side_effect(self, msg_id, method):
        """The work: half of EXAMPLE_WORK_MS, the side effect, the other half.

        The effect lands in the middle of the work so that a kill -9 can hit
        either side of it: before it (nothing happened yet) or after it (it
        happened, but the mark and the ack may not have)."""
        time.sleep(self.work_s / 2)
        self._write(self.effects, f"{msg_id} instance={self.instance} "
                    f"redelivered={int(method.redelivered)}")
        self._write(self.tally, f"{msg_id} processed")
        self.counts["processed"] += 1
        time.sleep(self.work_s / 2)

    def skip(self, msg_id):
        """A duplicate the dedup caught: no side effect, one tally line."""
        self._write(self.tally, f"{msg_id} skipped")
        self.counts["skipped"] += 1

    def _sleep(self, seconds):
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(0.05)

    def _consume_once(self, handle):
        """One connection: consume until it dies or SIGTERM."""
        params = pika.URLParameters(self.url)
        params.connection_attempts = 1  # run() retries, with its own backoff
        params.socket_timeout = 5
        params.client_properties = {"connection_name": f"{self.name}-{self.instance}"}
        conn = pika.BlockingConnection(params)
        try:
            ch = conn.channel()
            ch.basic_qos(prefetch_count=self.prefetch)
            # No queue_declare: dupsim declared it durable; redeclaring with
            # other arguments would close the channel (406).
            for method, props, body in ch.consume(self.queue, inactivity_timeout=0.5):
                if not self.connected:  # basic.consume went through
                    self.connected = True
                    self.log(f"consuming {self.queue} (prefetch {self.prefetch})")
                if self.stopping:
                    break
                if method is None:  # idle for 0.5 s: look at the flag again
                    continue
                if props.message_id is None:
                    self.log("a message without message_id: acked, not processed")
                    ch.basic_ack(method.delivery_tag)
                    continue
                handle(ch, method, props, body)
                self.backoff = 0.2  # it works again: the next loss retries quickly
            ch.cancel()  # messages prefetched but not handled go back to the queue
        finally:
            if conn.is_open:
                conn.close()

    def run(self, handle, retry_on=()):
        """Consume with handle(ch, method, props, body) until SIGTERM; returns 0.

        A lost connection (the fault proxy cuts it after dropping an ack; the
        broker may be down) or an error in retry_on (the dedup store's) drops
        the connection, so every unacked message is redelivered, and connects
        again after a short backoff: 0.2 s, doubling to 2 s while it fails."""
        errors = (pika.exceptions.AMQPConnectionError,
                  pika.exceptions.AMQPChannelError, OSError) + tuple(retry_on)
        self.backoff = 0.2
        while not self.stopping:
            self.connected = False
            try:
                self._consume_once(handle)
            except errors as e:
                what = "connection lost" if self.connected else "cannot connect"
                self.log(f"{what} ({e!r}); again in {self.backoff:.1f}s")
                self._sleep(self.backoff)
                self.backoff = min(self.backoff * 2, 2.0)
        self.log(f"stopping: processed {self.counts['processed']}, "
                 f"skipped {self.counts['skipped']}")
        self.effects.close()
        self.tally.close()
        return 0


def redis_from_env():
    """The dedup store: the redis dupsim started ([dedup] store = redis)."""
    import redis  # python3-redis; only the redis examples need it
    return redis.Redis.from_url(env("DUPSIM_REDIS_URL"),
                                socket_timeout=2, socket_connect_timeout=2)


def redis_errors():
    """The redis errors that mean "the store is unreachable, try again"."""
    import redis
    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
