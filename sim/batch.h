/* batch.h — many runs of one scenario: `dupsim sweep` over a grid of keys, `dupsim validate` until a verdict. */
#ifndef DUPSIM_BATCH_H
#define DUPSIM_BATCH_H

/* `dupsim sweep FILE --vary section.key=v1,v2,... [--vary ...] [--repeat R] [--set ...] [--out DIR] [--quiet]` */
int batch_sweep_cli(int argc, char **argv);
/* `dupsim validate FILE --target P [--confidence C] [--max-time T] [--set ...] [--out DIR] [--quiet]`;
 * exit 0 PASS, 1 FAIL, 2 INCONCLUSIVE (or a usage error, with a message). */
int batch_validate_cli(int argc, char **argv);

#endif
