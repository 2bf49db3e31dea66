/* batch.h — many runs of one scenario: `dupsim sweep` over a grid of keys, `dupsim validate` until a verdict. */
#ifndef DUPSIM_BATCH_H
#define DUPSIM_BATCH_H

/* `dupsim sweep FILE --vary section.key=v1,v2,... [--vary ...] [--repeat R] [--set ...] [--out DIR] [--quiet]` */
int batch_sweep_cli(int argc, char **argv);
/* `dupsim validate FILE --target P [--confidence C] [--max-runs N] [--max-time T] [--set ...] [--out DIR] [--quiet]`;
 * exit 0 PASS, 1 FAIL, 2 usage error, 3 INCONCLUSIVE, 4 could not run, 130 interrupted. */
int batch_validate_cli(int argc, char **argv);

/* `dupsim coverage FILE [--runs N] [--min-covered K] [--set ...] [--out DIR] [--quiet]`: does the
 * interval cover the pooled estimate in repeated runs? exit 0 met, 1 not, 2 usage, 4 could not run. */
int batch_coverage_cli(int argc, char **argv);

#endif
