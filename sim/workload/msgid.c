/* msgid.c — message ids: "p<publisher>-<sequence>", and the ledger index they stand for. */
#include "workload/msgid.h"

#include <inttypes.h>
#include <stdio.h>

const char *msgid_format(char *buf, size_t len, unsigned publisher, uint64_t sequence)
{
	snprintf(buf, len, "p%u-%" PRIu64, publisher, sequence);
	return buf;
}

/* Reads decimal digits at id[*i..len); false when there are none or too many. */
static int msgid_digits(const char *id, size_t len, size_t *i, uint64_t *out)
{
	size_t start = *i;
	uint64_t v = 0;

	for (; *i < len && id[*i] >= '0' && id[*i] <= '9'; (*i)++) {
		if (*i - start >= 19)
			return -1; /* would overflow; no run has that many */
		v = v * 10 + (uint64_t)(id[*i] - '0');
	}
	if (*i == start)
		return -1;
	*out = v;
	return 0;
}

int msgid_parse(const struct msgid_space *sp, const char *id, size_t len, size_t *index)
{
	uint64_t pub, seq;
	size_t i = 1;

	if (len < 4 || id[0] != 'p' || msgid_digits(id, len, &i, &pub) < 0)
		return -1;
	if (i >= len || id[i] != '-')
		return -1;
	i++;
	if (msgid_digits(id, len, &i, &seq) < 0 || i != len)
		return -1;
	if (pub >= sp->publishers || seq >= sp->per_publisher || pub * sp->per_publisher + seq >= sp->messages)
		return -1;
	*index = (size_t)(pub * sp->per_publisher + seq);
	return 0;
}
