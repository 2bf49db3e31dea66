/* dlq.h — delivery limits and the dead-letter queue: the queue's arguments, an operator's replay, the count at the end. */
#ifndef DUPSIM_DLQ_H
#define DUPSIM_DLQ_H

#include <amqp.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/scenario.h"
#include "truth/events.h"
#include "truth/ledger.h"
#include "workload/mq.h"
#include "workload/msgid.h"

#define DLQ_ARGS_MAX 4

struct dlq {
	const struct scenario *sc;
	const struct mq_target *target; /* the broker, directly (not through the proxy) */
	struct ledger *ledger;
	struct events *events;
	struct msgid_space ids;
	char name[SCENARIO_STR_MAX + 8]; /* <queue>.dlq; "" when broker.dead_letter is false */
	uint64_t replay_at_ns;		 /* when the operator replays it; 0 never */
	bool replayed;			 /* the replay happened */
	uint64_t moved;			 /* messages it moved back into the queue */
	uint64_t left;			 /* messages found in it at the end */
};

/* Before the queue is declared: what the scenario asks for. */
void dlq_init(struct dlq *d, const struct scenario *sc, const struct mq_target *target);
/* Once the ledger and the events are up and the run's clock starts at start_ns. */
void dlq_start(struct dlq *d, struct ledger *ledger, struct events *events, struct msgid_space ids,
	       uint64_t start_ns);

/*
 * The queue's arguments besides its type (x-delivery-limit, the
 * dead-lettering to <queue>.dlq through the default exchange) appended to
 * args->entries (room for DLQ_ARGS_MAX more); declares and purges the DLQ
 * on c first. 0, or -1 with err.
 */
int dlq_setup(struct dlq *d, amqp_connection_state_t c, amqp_table_t *args, char *err, size_t errlen);

/*
 * faults.dlq_replay_after: true when the replay is due at now, or when the
 * run would otherwise end (quiet: the drain is done) before it came.
 */
bool dlq_replay_due(const struct dlq *d, uint64_t now, bool quiet);
/*
 * The operator's replay: every message in the DLQ is published back into the
 * queue as it is (message id, headers) and taken out of the DLQ; the
 * copies are charged to one fault event, dlq_replay. Blocking (a direct
 * connection). Returns the messages moved, -1 on an error (logged).
 */
int64_t dlq_replay(struct dlq *d);
/* At the end: what is left in the DLQ is read, noted in the ledger (ledger_note_dead_lettered) and, unless
 * broker.keep_queue, taken out. */
void dlq_count_left(struct dlq *d);

#endif
