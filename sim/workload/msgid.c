/* msgid.c — message ids: the ledger index as a decimal string (DESIGN.md: what users' apps see), and back. */
#include "workload/msgid.h"

#include <inttypes.h>
#include <stdio.h>

const char *msgid_format(char *buf, size_t len, uint64_t index)
{
	snprintf(buf, len, "%" PRIu64, index);
	return buf;
}

int msgid_parse(const struct msgid_space *sp, const char *id, size_t len, size_t *index)
{
	uint64_t v = 0;

	/* one spelling per id: no sign, no blanks, no leading zero */
	if (len == 0 || len > 19 || (len > 1 && id[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (id[i] < '0' || id[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(id[i] - '0');
	}
	if (v >= sp->messages)
		return -1;
	*index = (size_t)v;
	return 0;
}
