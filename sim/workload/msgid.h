/* msgid.h — message ids: "p<publisher>-<sequence>", and the ledger index they stand for. */
#ifndef DUPSIM_MSGID_H
#define DUPSIM_MSGID_H

#include <stddef.h>
#include <stdint.h>

/* How ids map onto ledger indices: index = publisher * per_publisher + sequence. */
struct msgid_space {
	unsigned publishers;
	uint64_t per_publisher; /* the last publisher may have fewer */
	size_t messages;
};

/* Writes publisher's sequence-th id into buf (48 bytes are always enough); returns buf. */
const char *msgid_format(char *buf, size_t len, unsigned publisher, uint64_t sequence);

/* The ledger index of id (len bytes, not NUL-terminated); 0, or -1 when id is
 * not one of this run's ids. */
int msgid_parse(const struct msgid_space *sp, const char *id, size_t len, size_t *index);

#endif
