#!/usr/bin/python3
"""selftest: run example consumers against a real broker the way dupsim's [app] would.

For each EXAMPLE: a fresh durable queue, a private redis-server (for the
redis examples), INSTANCES workers started with the DUPSIM_* environment,
optionally behind `dupsim proxy` dropping the workers' acks (which cuts
their connections), MESSAGES published with message_id 1..MESSAGES plus
COPIES deliberate duplicates (x-republish-count 1) at the end; a worker
is killed with SIGKILL mid-run (once, or --kills times, spread over the
run) and restarted half a second later; then every worker gets
SIGTERM and must exit 0. The effects and tally files are checked:

  * every message processed at least once (mark-before: except at most one
    per kill, which must then be tallied as skipped: lost by design),
  * effects lines == tally "processed" lines (at most one apart per kill),
  * duplicates processed: no-dedup >= COPIES; mark-before 0; mark-after
    at most one per kill and per connection cut,
  * the queue is empty at the end.

  examples/selftest.py --amqp amqp://guest:guest@127.0.0.1:5672/ examples/pika_*.py
  examples/selftest.py --amqp URL --dupsim build/dupsim --ack-loss 2% examples/pika_no_dedup.py

Exits 0 when every check passed, 1 otherwise.
"""

import argparse
import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

import pika


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"selftest: {what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"selftest: {what} did not listen on 127.0.0.1:{port} in {timeout}s")


def start_redis(tmp):
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--daemonize", "no",
                             "--dir", tmp],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, "redis-server")
    return proc, f"redis://127.0.0.1:{port}/0"


def start_proxy(dupsim, amqp_url, ack_loss, tmp):
    """dupsim's fault proxy in front of the broker for the workers only."""
    u = urllib.parse.urlparse(amqp_url)
    port = free_port()
    log = open(os.path.join(tmp, "proxy.log"), "w")
    proc = subprocess.Popen([dupsim, "proxy", "--listen", f"127.0.0.1:{port}",
                             "--upstream", f"{u.hostname}:{u.port or 5672}",
                             "--rule", f"drop basic.ack from=client p={ack_loss}", "--quiet"],
                            stdout=log, stderr=log)
    wait_port(port, proc, "dupsim proxy")
    netloc = f"{u.username or 'guest'}:{u.password or 'guest'}@127.0.0.1:{port}"
    return proc, urllib.parse.urlunparse(u._replace(netloc=netloc))


def stop(proc, sig=signal.SIGTERM, timeout=10):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode


class Run:
    """One example: its queue, its workers, its files."""

    def __init__(self, args, example, tmp, redis_url, worker_url):
        self.args, self.example, self.redis_url = args, example, redis_url
        self.worker_url = worker_url
        self.dir = os.path.join(tmp, os.path.basename(example).removesuffix(".py"))
        os.makedirs(self.dir)
        self.queue = f"selftest-{os.path.basename(self.dir)}-{os.getpid()}"
        self.workers = {}
        self.kills = 0

    def env(self, i):
        e = dict(os.environ, DUPSIM_AMQP_URL=self.worker_url, DUPSIM_QUEUE=self.queue,
                 DUPSIM_EFFECTS=os.path.join(self.dir, f"effects-{i}.txt"),
                 DUPSIM_INSTANCE=str(i), DUPSIM_SEED="1",
                 EXAMPLE_WORK_MS=str(self.args.work_ms))
        if self.redis_url:
            e["DUPSIM_REDIS_URL"] = self.redis_url
        return e

    def start_worker(self, i):
        log = open(os.path.join(self.dir, f"app-{i}.log"), "a")
        # its own process group, as dupsim starts them
        self.workers[i] = subprocess.Popen([sys.executable, self.example], env=self.env(i),
                                           stdout=log, stderr=log, start_new_session=True)

    def lines(self, prefix):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.startswith(prefix):
                with open(os.path.join(self.dir, name)) as f:
                    out += [line.split() for line in f if line.strip()]
        return out

    def publish(self, ch):
        props = lambda i, n: pika.BasicProperties(message_id=str(i), delivery_mode=2,
                                                  headers={"x-republish-count": n})
        for i in range(1, self.args.messages + 1):
            ch.basic_publish("", self.queue, b"body %d" % i, props(i, 0))
        for i in range(1, self.args.copies + 1):  # deliberate duplicates, at the end
            ch.basic_publish("", self.queue, b"body %d" % i, props(i, 1))

    def drive(self, ch):
        """Start the workers, publish, kill one mid-run, wait until all is handled."""
        for i in range(self.args.instances):
            self.start_worker(i)
        self.publish(ch)
        total = self.args.messages + self.args.copies
        end = time.monotonic() + self.args.timeout
        last, still_since = -1, time.monotonic()
        while time.monotonic() < end:
            tally = self.lines("tally-")
            if self.kills < self.args.kills and \
               len(tally) >= total * (self.kills + 1) // (self.args.kills + 1):
                victim = self.kills % self.args.instances
                os.killpg(self.workers[victim].pid, signal.SIGKILL)  # dupsim's kill -9
                self.workers[victim].wait()
                self.kills += 1
                time.sleep(0.5)  # dupsim's restart_delay
                self.start_worker(victim)
                still_since = time.monotonic()  # give it a second before SIGTERM
            ready = ch.queue_declare(self.queue, passive=True).method.message_count
            if len(tally) != last:
                last, still_since = len(tally), time.monotonic()
            # done: every delivery tallied, nothing ready, nothing new for 1 s
            if len(tally) >= total and ready == 0 and time.monotonic() - still_since > 1:
                return True
            time.sleep(0.1)
        return False

    def finish(self, ch):
        codes = {i: stop(w) for i, w in self.workers.items()}
        left = ch.queue_declare(self.queue, passive=True).method.message_count
        ch.queue_delete(self.queue)
        return codes, left


def check(run, drained, codes, left):
    a, kind = run.args, os.path.basename(run.example)
    effects = collections.Counter(int(f[0]) for f in run.lines("effects-"))
    tally = run.lines("tally-")
    t_proc = sum(1 for f in tally if f[1] == "processed")
    t_skip = sum(1 for f in tally if f[1] == "skipped")
    skipped_ids = {int(f[0]) for f in tally if f[1] == "skipped"}
    missing = [i for i in range(1, a.messages + 1) if i not in effects]
    dups = sum(n - 1 for n in effects.values() if n > 1)
    cuts = sum(1 for f in run.lines("app-") if "connection" in f and "lost" in f)
    print(f"{kind}: {a.messages} messages + {a.copies} copies, {a.instances} instances, "
          f"work {a.work_ms} ms, kills {run.kills}, connection losses seen {cuts}")
    print(f"  effects lines {sum(effects.values())}, distinct ids {len(effects)}, "
          f"duplicates processed {dups}, missing {len(missing)} {missing[:10]}")
    print(f"  tally: processed {t_proc}, skipped {t_skip}; exit codes on SIGTERM {codes}; "
          f"left in queue {left}")
    fails = []
    if not drained:
        fails.append(f"not all handled within {a.timeout}s")
    if any(c != 0 for c in codes.values()):
        fails.append(f"a worker did not exit 0 on SIGTERM: {codes}")
    if left:
        fails.append(f"{left} messages left in the queue")
    if abs(sum(effects.values()) - t_proc) > run.kills:
        fails.append("effects and tally disagree on the processed count")
    if "mark_before" in kind:
        if len(missing) > run.kills or not set(missing) <= skipped_ids:
            fails.append(f"missing {missing}: more than one per kill, or not tallied skipped")
        if dups:
            fails.append(f"mark-before processed {dups} duplicates")
    elif missing:
        fails.append(f"messages never processed: {missing[:10]}")
    if "no_dedup" in kind and dups < a.copies:
        fails.append(f"no-dedup processed {dups} duplicates < the {a.copies} copies published")
    if "mark_after" in kind and dups > run.kills + cuts:
        fails.append(f"mark-after processed {dups} duplicates > kills + connection losses")
    if "redis" in kind and t_skip < a.copies:
        fails.append(f"only {t_skip} skipped < the {a.copies} copies published")
    for f in fails:
        print(f"  FAIL: {f}")
    print("  ok" if not fails else f"  see {run.dir}")
    return not fails


def one(args, example, tmp, redis, worker_url):
    redis_url = None
    if "redis" in os.path.basename(example):
        import redis as redis_py
        redis_url = redis[1]
        redis_py.Redis.from_url(redis_url).flushall()
    run = Run(args, example, tmp, redis_url, worker_url)
    conn = pika.BlockingConnection(pika.URLParameters(args.amqp))
    ch = conn.channel()
    ch.queue_declare(run.queue, durable=True)
    ch.confirm_delivery()
    try:
        drained = run.drive(ch)
    finally:
        codes, left = run.finish(ch)
    conn.close()
    return check(run, drained, codes, left)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("examples", nargs="+")
    p.add_argument("--amqp", default=os.environ.get("DUPSIM_AMQP_URL"),
                   help="the broker (e.g. what `dupsim broker start` printed)")
    p.add_argument("--messages", type=int, default=500)
    p.add_argument("--copies", type=int, default=20, help="deliberate duplicates")
    p.add_argument("--instances", type=int, default=2)
    p.add_argument("--work-ms", type=int, default=10)
    p.add_argument("--kills", type=int, default=1, help="SIGKILLs of a worker, spread over the run")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--dupsim", help="dupsim binary, for --ack-loss")
    p.add_argument("--ack-loss", default="0",
                   help="put `dupsim proxy` in front of the workers, dropping this share of acks")
    p.add_argument("--keep", action="store_true", help="keep the files")
    args = p.parse_args()
    if not args.amqp:
        sys.exit("selftest: --amqp URL (or DUPSIM_AMQP_URL) is needed; "
                 "`dupsim broker start` prints one")
    tmp = tempfile.mkdtemp(prefix="dupsim-selftest-")
    redis, proxy, worker_url, ok = None, None, args.amqp, False
    try:
        if any("redis" in os.path.basename(e) for e in args.examples):
            redis = start_redis(tmp)
        if args.ack_loss not in ("0", "0%"):
            if not args.dupsim:
                sys.exit("selftest: --ack-loss needs --dupsim BIN")
            proxy, worker_url = start_proxy(args.dupsim, args.amqp, args.ack_loss, tmp)
        ok = all([one(args, e, tmp, redis, worker_url) for e in args.examples])
    finally:
        for server in (proxy, redis and redis[0]):
            if server:
                stop(server, signal.SIGINT)
        if ok and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"files in {tmp}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
