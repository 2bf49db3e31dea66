/* msgid.h — message ids: the ledger index as a decimal string (DESIGN.md: what users' apps see), and back. */
#ifndef DUPSIM_MSGID_H
#define DUPSIM_MSGID_H

#include <stddef.h>
#include <stdint.h>

/*
 * A run's ids are its ledger indices, 0 .. messages - 1, in decimal: the
 * message_id property DESIGN.md promises users' apps. Publisher p sends the
 * indices p * per_publisher onwards.
 */
struct msgid_space {
	size_t messages;
};

/* Writes the id of ledger index `index` into buf (24 bytes are always enough); returns buf. */
const char *msgid_format(char *buf, size_t len, uint64_t index);

/* The ledger index of id (len bytes, not NUL-terminated); 0, or -1 when id is
 * not one of this run's ids. */
int msgid_parse(const struct msgid_space *sp, const char *id, size_t len, size_t *index);

#endif
