/* model.c — the analytic duplicate model (this is the one place it is described). */
#include "analysis/model.h"

#include <amqp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The model.
 *
 * Publisher side. tx mode: a batch commits; the proxy drops its CommitOk with
 * probability p (the broker has committed: that is where the proxy sits), the
 * publisher republishes the whole batch (at once with then=close, after its
 * timeout with hang), and that commit can lose its CommitOk again. Commits
 * per batch are geometric: E[excess copies per message] = p / (1 − p).
 * Confirm mode: a dropped confirm frame cuts the connection (or leaves it
 * hanging until the timeout), and the publisher republishes its whole window
 * of `batch` unconfirmed messages, all of which the broker had enqueued when
 * the pipe is full. The broker confirms several messages per frame, so a
 * frame is lost per message with r = p · c, c the confirm frames per publish
 * (measured), and each loss adds `batch` copies: excess = r·batch / (1 − r·batch).
 *
 * Consumer side. A consumer acks every k deliveries (ack_every) with one
 * frame. When the proxy drops that frame and cuts the connection, the broker
 * requeues everything unacked on it: the k messages the frame covered (all
 * executed), and the deliveries it had already handed to the client beyond
 * them, which the client still has in its buffers and executes before it sees
 * the cut: `ahead`, whose mean a the proxy measures at every ack during
 * normal operation. What the broker had not yet sent is not executed, so its
 * redelivery is no duplicate. So a dropped ack frame (probability qd) makes
 * k + a duplicate deliveries, a cut after a forwarded ack (qc) makes a (the
 * acked k are not redelivered), and a dropped ack on a hanging connection
 * makes none while the connection lives (the broker redelivers only when a
 * connection ends).
 *
 * The a deliveries executed after a cut send their acks into a dead
 * connection: they make no ack frame that could be lost. So of D deliveries,
 * D − (qd + qc)·F·a are acked through the proxy in F = D / (k + (qd + qc)·a)
 * frames, and the redeliveries are F·(qd·(k + a) + qc·a). Every enqueued copy
 * is delivered once, and so, solving D = copies + redeliveries,
 *     D = copies · (k + (qd + qc)·a) / (k·(1 − qd)).
 * The first copy of each message is its first execution and every other
 * delivery reaching the decision is a duplicate:
 *     duplicate_rate = (1 + excess) · (1 + (qd + qc)·a / k) / (1 − qd) − 1.
 *
 * The spread. A run draws its faults, so its rate scatters around the
 * prediction; the band the model claims for one run of N committed messages
 * is the prediction ± 1.96 sd, from the variances of the two sums. Publisher
 * side: the losses of one batch are geometric with ratio x (x = p in tx mode,
 * r·batch in confirm mode), so the excess copies E = e·N have variance
 * batch·E / (1 − x); each copy is then delivered (1 + r) / (1 − qd) times. Consumer side:
 * F = N·(1 + e) / (k·(1 − qd)) ack frames, each dropped with qd (an event of
 * k + a_i duplicates) or cut after with qc (a_i): a compound binomial, of
 * variance F·(qd·E[(k + a)²] − qd²·(k + a)²) + F·(qc·E[a²] − qc²·a²). E[a²]
 * is the proxy's too (ahead_sq): a is skewed (most acks find little ahead,
 * a few, at start and after a reconnect, a whole prefetch window), so the
 * mean of a run's hundred-odd lost acks is mostly below a and sometimes far
 * above: a band from the sizes a run happened to draw is too narrow exactly
 * when its rate is low, which is why the band is the model's own.
 * Frame losses are independent of each other and of everything else; no
 * consumer or broker crashes (those are not modelled); with no consumers
 * nothing is delivered (rate 0). A loss probability of 1 predicts no end: +inf.
 * Not covered (no prediction, and the reason): consumer and broker crashes,
 * the application's nacks with requeue, the broker's memory alarm, DLQ
 * replays (issue 13: the caller says so),
 * rules on other methods, after=N, and ack loss on a quorum queue, whose
 * settles are applied through its log, so that acks in flight at a cut are
 * redelivered too (the caller says so).
 */
const char model_assumptions[] =
	"independent frame losses; a lost CommitOk or confirm means the broker had committed, and the publisher "
	"republishes the batch (confirm mode: its whole window); a dropped consumer ack cuts the connection and "
	"the broker redelivers the messages that ack covered plus those it had already handed to the client, "
	"which the client executes from its buffers (ahead, measured by the proxy at every ack) and whose acks "
	"go nowhere; a hanging connection redelivers nothing while it lives; no consumer or broker crashes";

static double combine(double have, double p)
{
	return 1 - (1 - have) * (1 - (p > 1 ? 1 : p < 0 ? 0 : p));
}

static void unmodelled(struct model_in *in, const char *what)
{
	if (!in->unmodelled[0])
		snprintf(in->unmodelled, sizeof(in->unmodelled), "%s", what);
}

void model_in_from_rules(struct model_in *in, const struct rule *rules, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		const struct rule *r = &rules[i];
		bool from_client = r->from == RULE_FROM_CLIENT, from_broker = r->from == RULE_FROM_BROKER;
		bool any = r->from == RULE_FROM_ANY;

		if (r->after > 1 || r->until_ns) {
			/* after=N: the first N-1 frames are spared; a window: the frames outside it; both by timing */
			unmodelled(in, r->text);
			continue;
		}
		if (r->method == AMQP_TX_COMMIT_OK_METHOD && !from_client) {
			if (r->action == RULE_DROP)
				in->commit_ok_lost = combine(in->commit_ok_lost, r->p);
			/* cut after a forwarded CommitOk: the publisher has it, nothing is republished */
		} else if (r->method == AMQP_BASIC_NACK_METHOD && !from_client) {
			/* RabbitMQ nacks a publish only on an internal error: frames this rare lose nothing countable */
		} else if (r->method == AMQP_BASIC_ACK_METHOD && from_broker) {
			if (r->action == RULE_DROP)
				in->confirm_lost = combine(in->confirm_lost, r->p);
			else
				unmodelled(in, r->text);
		} else if (r->method == AMQP_BASIC_ACK_METHOD && (from_client || any)) {
			if (any && (in->confirm_mode || r->action != RULE_CUT))
				unmodelled(in, r->text); /* either direction: confirms are hit too */
			else if (r->action == RULE_CUT)
				in->ack_cut = combine(in->ack_cut, r->p);
			else if (r->then == RULE_THEN_HANG)
				in->ack_hung = combine(in->ack_hung, r->p);
			else
				in->ack_dropped = combine(in->ack_dropped, r->p);
		} else if (r->method == AMQP_BASIC_NACK_METHOD && from_client) {
			/* dupsim's consumers never nack: the rule never matches */
		} else {
			unmodelled(in, r->text);
		}
	}
}

int model_in_realized(struct model_in *out, const struct model_in *nominal, const struct rule *rules, size_t count,
		      const uint64_t *matched, const uint64_t *fired)
{
	struct rule *r = malloc((count ? count : 1) * sizeof(*r));

	*out = *nominal;
	if (!r)
		return -1;
	for (size_t i = 0; i < count; i++) {
		r[i] = rules[i];
		if (matched && fired && matched[i])
			r[i].p = (double)fired[i] / (double)matched[i];
	}
	out->commit_ok_lost = out->confirm_lost = out->ack_dropped = out->ack_hung = out->ack_cut = 0;
	model_in_from_rules(out, r, count);
	free(r);
	return 0;
}

/* The sd of one run's duplicate rate (see "The spread" above); NAN when an input is missing. */
static double model_sd(const struct model_in *in, double e, double r, bool needs_ahead)
{
	double n = in->committed, k = in->ack_every ? in->ack_every : 1, batch = in->batch ? in->batch : 1;
	double qd = in->ack_dropped, qc = in->ack_cut, x, a = needs_ahead ? in->ahead : 0;
	double a2 = needs_ahead ? in->ahead_sq : 0, frames, var, each;

	if (!(n > 0) || !isfinite(a2))
		return NAN;
	x = in->confirm_mode ? in->confirm_lost * in->confirms_per_msg * batch : in->commit_ok_lost;
	each = (1 + r) / (1 - qd);
	var = e > 0 ? batch * e * n / (1 - x) * each * each : 0;
	frames = n * (1 + e) / (k * (1 - qd));
	var += frames * (qd * (k * k + 2 * k * a + a2) - qd * qd * (k + a) * (k + a));
	var += frames * (qc * a2 - qc * qc * a * a);
	return var > 0 ? sqrt(var) / n : 0;
}

void model_predict(const struct model_in *in, struct model_out *out)
{
	double k = in->ack_every ? in->ack_every : 1, r, e;
	bool needs_ahead = in->consumers > 0 && (in->ack_dropped > 0 || in->ack_cut > 0);

	memset(out, 0, sizeof(*out));
	out->excess_copies_per_msg = out->duplicate_rate = out->dups_per_lost_ack = out->duplicate_rate_sd = NAN;
	if (in->unmodelled[0]) {
		snprintf(out->why, sizeof(out->why), "the model does not cover %.200s", in->unmodelled);
		return;
	}
	if (needs_ahead && !isfinite(in->ahead)) {
		snprintf(out->why, sizeof(out->why), "no ack was seen, so the deliveries ahead of an ack are unknown");
		return;
	}
	if (in->confirm_mode && in->confirm_lost > 0 && !isfinite(in->confirms_per_msg)) {
		snprintf(out->why, sizeof(out->why), "no confirm was seen, so the confirms per publish are unknown");
		return;
	}
	if (in->confirm_mode) {
		double rl = in->confirm_lost * in->confirms_per_msg * (in->batch ? in->batch : 1);

		e = in->confirm_lost > 0 ? (rl >= 1 ? INFINITY : rl / (1 - rl)) : 0;
	} else {
		e = in->commit_ok_lost >= 1 ? INFINITY : in->commit_ok_lost / (1 - in->commit_ok_lost);
	}
	out->predicted = true;
	out->excess_copies_per_msg = e;
	out->dups_per_lost_ack = needs_ahead ? k + in->ahead : k;
	if (in->consumers == 0) {
		out->duplicate_rate = out->duplicate_rate_sd = 0;
		return;
	}
	if (in->ack_dropped >= 1 || isinf(e)) {
		out->duplicate_rate = INFINITY;
		return;
	}
	r = needs_ahead ? (in->ack_dropped + in->ack_cut) * in->ahead / k : 0;
	/* (1 + e)(1 + r) / (1 − qd) − 1, in a form that keeps small rates from cancelling */
	out->duplicate_rate = (e + r + e * r + in->ack_dropped) / (1 - in->ack_dropped);
	out->duplicate_rate_sd = model_sd(in, e, r, needs_ahead);
}
