/* rng.h — splitmix64: the seeded, reproducible generator behind every random decision. */
#ifndef DUPSIM_CORE_RNG_H
#define DUPSIM_CORE_RNG_H

#include <stdint.h>

/* splitmix64 state; seed it with rng_seed. */
struct rng {
	uint64_t state;
};
void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, 1). */
double rng_unit(struct rng *r);

#endif
