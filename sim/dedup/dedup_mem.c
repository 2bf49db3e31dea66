/* dedup_mem.c — the memory dedup store: linear probing, one intrusive order list for ttl and LRU, one lock. */
#include "dedup/dedup.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

/*
 * Layout. One array of 24-byte slots, a power of two of them plus one spare
 * at index `cells` that holds key 0 (0 marks an empty slot in the table
 * proper). Linear probing; deletion by backward shift, so there are no
 * tombstones and a probe stops at the first empty slot.
 *
 * Order list. When keys can leave (ttl or capacity), every held key sits on
 * one doubly linked list threaded through the slots by 32-bit indices:
 *   - capacity > 0: recency order; a put, a lookup hit or a check_and_put hit
 *     moves the key to the tail, the head is evicted first (LRU);
 *   - ttl only: insertion order (a put re-inserts, so it moves to the tail);
 *     with a constant ttl that is expiry order.
 * Every operation first purges expired keys from the head (O(1) amortised:
 * each key is purged once) and treats an expired key met by a probe as
 * absent (erasing it). With both ttl and capacity the list is in recency
 * order, so the purge stops at the first live key: an expired key that was
 * used recently is reclaimed when a probe meets it or when it reaches the head.
 * Moving a slot (backward shift, growth) rewrites its neighbours' links.
 *
 * Sizing. The table starts at the `expected` hint, at most the capacity (with
 * no hint: the capacity, up to SIZE_ONCE_MAX keys, so that a huge bound on a
 * small run does not map gigabytes), and doubles when 70 % full. A table sized
 * for its capacity never grows: eviction keeps it at most that full.
 */

#define NIL UINT32_MAX
#define MIN_CELLS 16u
#define MAX_CELLS (1u << 31) /* indices are 32-bit; the spare slot is index `cells` */
#define SIZE_ONCE_MAX (1u << 24)

struct slot {
	uint64_t key;	     /* 0: empty (key 0 itself lives in the spare slot) */
	uint64_t t;	     /* insertion time, for the ttl */
	uint32_t prev, next; /* order list, NIL at the ends */
};

struct mem_store {
	struct dedup_store base;
	pthread_mutex_t lock;
	struct slot *slots; /* cells + 1 */
	uint32_t cells;	    /* power of two */
	uint32_t used;	    /* keys in the table proper */
	uint32_t grow_at;   /* grow before `used` exceeds this */
	bool zero_held;	    /* key 0 is in the spare slot */
	bool ordered;	    /* the order list is kept (ttl or capacity) */
	uint32_t head, tail;
	uint64_t ttl_ns, capacity;
};

_Static_assert(sizeof(struct slot) == 24, "a slot is 24 bytes: about 40 bytes per key at 10M keys");

/* Tables from this size on get their own mapping with transparent huge pages:
 * a probe into a 400 MB table is a TLB miss otherwise (~30 % of its cost). */
#define HUGE_BYTES (4u << 20)

/* cells + 1 zeroed slots (the spare included); NULL when out of memory. */
static struct slot *mem_slots_alloc(uint32_t cells)
{
	size_t bytes = ((size_t)cells + 1) * sizeof(struct slot);
	void *p;

	if (bytes < HUGE_BYTES)
		return calloc((size_t)cells + 1, sizeof(struct slot));
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without it the table still works */
	/* fault the table in now, once, rather than on the inserts of the run */
	for (size_t off = 0; off < bytes; off += 4096)
		((volatile char *)p)[off] = 0;
	return p;
}

static void mem_slots_free(struct slot *p, uint32_t cells)
{
	size_t bytes = ((size_t)cells + 1) * sizeof(struct slot);

	if (!p)
		return;
	if (bytes < HUGE_BYTES)
		free(p);
	else
		munmap(p, bytes);
}

static uint64_t mem_mix(uint64_t k)
{
	/* murmur3's finaliser: message ids are sequential, the table needs them scattered */
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return k;
}

static uint32_t mem_home(const struct mem_store *s, uint64_t key)
{
	return (uint32_t)(mem_mix(key) & (s->cells - 1));
}

static uint32_t mem_spare(const struct mem_store *s)
{
	return s->cells;
}

static size_t mem_held(const struct mem_store *s)
{
	return (size_t)s->used + s->zero_held;
}

static void mem_lru_unlink(struct mem_store *s, uint32_t i)
{
	struct slot *e = &s->slots[i];

	if (e->prev != NIL)
		s->slots[e->prev].next = e->next;
	else
		s->head = e->next;
	if (e->next != NIL)
		s->slots[e->next].prev = e->prev;
	else
		s->tail = e->prev;
}

static void mem_lru_append(struct mem_store *s, uint32_t i)
{
	struct slot *e = &s->slots[i];

	e->prev = s->tail;
	e->next = NIL;
	if (s->tail != NIL)
		s->slots[s->tail].next = i;
	else
		s->head = i;
	s->tail = i;
}

static void mem_lru_touch(struct mem_store *s, uint32_t i)
{
	if (s->tail == i)
		return;
	mem_lru_unlink(s, i);
	mem_lru_append(s, i);
}

/* Moves the entry in slot from into the empty slot to, keeping the list pointing at it. */
static void mem_move_slot(struct mem_store *s, uint32_t from, uint32_t to)
{
	struct slot *e = &s->slots[to];

	*e = s->slots[from];
	if (!s->ordered)
		return;
	if (e->prev != NIL)
		s->slots[e->prev].next = to;
	else
		s->head = to;
	if (e->next != NIL)
		s->slots[e->next].prev = to;
	else
		s->tail = to;
}

static uint32_t mem_find(const struct mem_store *s, uint64_t key)
{
	uint32_t mask = s->cells - 1;

	if (!key)
		return s->zero_held ? mem_spare(s) : NIL;
	for (uint32_t i = mem_home(s, key);; i = (i + 1) & mask) {
		if (s->slots[i].key == key)
			return i;
		if (!s->slots[i].key)
			return NIL;
	}
}

static void mem_erase(struct mem_store *s, uint32_t i)
{
	uint32_t mask = s->cells - 1;

	if (s->ordered)
		mem_lru_unlink(s, i);
	if (i == mem_spare(s)) {
		s->zero_held = false;
		return;
	}
	s->used--;
	/* Backward shift: pull later members of the cluster into the hole while
	 * the hole lies within [their home, their slot). */
	for (uint32_t j = i;;) {
		j = (j + 1) & mask;
		if (!s->slots[j].key)
			break;
		if (((j - mem_home(s, s->slots[j].key)) & mask) >= ((j - i) & mask)) {
			mem_move_slot(s, j, i);
			i = j;
		}
	}
	s->slots[i].key = 0;
}

static bool mem_expired(const struct mem_store *s, uint32_t i, uint64_t now_ns)
{
	uint64_t t = s->slots[i].t;

	return s->ttl_ns && now_ns > t && now_ns - t > s->ttl_ns;
}

static void mem_purge(struct mem_store *s, uint64_t now_ns)
{
	if (!s->ttl_ns)
		return;
	while (s->head != NIL && mem_expired(s, s->head, now_ns))
		mem_erase(s, s->head);
}

static uint32_t mem_cells_for(uint64_t keys)
{
	uint64_t c = MIN_CELLS;

	while (c < MAX_CELLS && c * 7 / 10 < keys)
		c <<= 1;
	return (uint32_t)c;
}

/* Places key into slot i (the spare or an empty table slot). */
static void mem_place(struct mem_store *s, uint32_t i, uint64_t key, uint64_t t)
{
	s->slots[i].key = key;
	s->slots[i].t = t;
	if (i == mem_spare(s))
		s->zero_held = true;
	else
		s->used++;
	if (s->ordered)
		mem_lru_append(s, i);
}

static uint32_t mem_free_slot(const struct mem_store *s, uint64_t key)
{
	uint32_t mask = s->cells - 1;
	uint32_t i;

	if (!key)
		return mem_spare(s);
	for (i = mem_home(s, key); s->slots[i].key; i = (i + 1) & mask)
		;
	return i;
}

/* Rebuilds into a table twice the size, in list order so that the order survives. -1: out of memory. */
static int mem_grow(struct mem_store *s)
{
	struct mem_store old = *s;
	struct slot *ns;
	uint32_t i;

	if (s->cells >= MAX_CELLS)
		return -1;
	ns = mem_slots_alloc(s->cells * 2);
	if (!ns)
		return -1;
	s->slots = ns;
	s->cells *= 2;
	s->grow_at = (uint32_t)((uint64_t)s->cells * 7 / 10);
	s->used = 0;
	s->zero_held = false;
	s->head = s->tail = NIL;
	if (old.ordered) {
		for (i = old.head; i != NIL; i = old.slots[i].next)
			mem_place(s, mem_free_slot(s, old.slots[i].key), old.slots[i].key, old.slots[i].t);
	} else {
		for (i = 0; i < old.cells; i++)
			if (old.slots[i].key)
				mem_place(s, mem_free_slot(s, old.slots[i].key), old.slots[i].key, old.slots[i].t);
		if (old.zero_held)
			mem_place(s, mem_spare(s), 0, old.slots[mem_spare(&old)].t);
	}
	mem_slots_free(old.slots, old.cells);
	return 0;
}

/* Adds an absent key: evicts the least recently used at capacity, grows when full. 0 or -1. */
static int mem_insert(struct mem_store *s, uint64_t key, uint64_t now_ns)
{
	if (s->capacity && mem_held(s) >= s->capacity)
		mem_erase(s, s->head);
	if (key && s->used + 1 > s->grow_at && mem_grow(s) < 0)
		return -1;
	mem_place(s, mem_free_slot(s, key), key, now_ns);
	return 0;
}

/* The slot of a live key, or NIL; an expired one met here is erased. */
static uint32_t mem_find_live(struct mem_store *s, uint64_t key, uint64_t now_ns)
{
	uint32_t i;

	mem_purge(s, now_ns);
	i = mem_find(s, key);
	if (i != NIL && mem_expired(s, i, now_ns)) {
		mem_erase(s, i);
		i = NIL;
	}
	return i;
}

static struct mem_store *mem_of(struct dedup_store *base)
{
	return (struct mem_store *)base;
}

static int mem_check_and_put(struct dedup_store *base, uint64_t key, uint64_t now_ns)
{
	struct mem_store *s = mem_of(base);
	uint32_t i;
	int r;

	pthread_mutex_lock(&s->lock);
	i = mem_find_live(s, key, now_ns);
	if (i != NIL) {
		if (s->capacity)
			mem_lru_touch(s, i);
		r = 1;
	} else {
		r = mem_insert(s, key, now_ns);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static int mem_lookup(struct dedup_store *base, uint64_t key, uint64_t now_ns)
{
	struct mem_store *s = mem_of(base);
	uint32_t i;

	pthread_mutex_lock(&s->lock);
	i = mem_find_live(s, key, now_ns);
	if (i != NIL && s->capacity)
		mem_lru_touch(s, i);
	pthread_mutex_unlock(&s->lock);
	return i != NIL;
}

static int mem_put(struct dedup_store *base, uint64_t key, uint64_t now_ns)
{
	struct mem_store *s = mem_of(base);
	uint32_t i;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	i = mem_find_live(s, key, now_ns);
	if (i != NIL) {
		/* a refresh: a new insertion time, so the key goes to the tail in either order */
		s->slots[i].t = now_ns;
		if (s->ordered)
			mem_lru_touch(s, i);
	} else {
		r = mem_insert(s, key, now_ns);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static size_t mem_size(struct dedup_store *base)
{
	struct mem_store *s = mem_of(base);
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = mem_held(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void mem_free(struct dedup_store *base)
{
	struct mem_store *s = mem_of(base);

	pthread_mutex_destroy(&s->lock);
	mem_slots_free(s->slots, s->cells);
	free(s);
}

static const struct dedup_store_ops mem_ops = {
	.name = "memory",
	.check_and_put = mem_check_and_put,
	.lookup = mem_lookup,
	.put = mem_put,
	.size = mem_size,
	.free = mem_free,
};

struct dedup_store *dedup_mem_new(uint64_t ttl_ns, uint64_t capacity, size_t expected)
{
	struct mem_store *s = calloc(1, sizeof(*s));
	uint64_t want = expected;

	if (!s)
		return NULL;
	if (capacity && (!want || want > capacity))
		want = capacity;
	if (!expected && want > SIZE_ONCE_MAX)
		want = SIZE_ONCE_MAX;
	s->base.ops = &mem_ops;
	s->ttl_ns = ttl_ns;
	s->capacity = capacity;
	s->ordered = ttl_ns || capacity;
	s->head = s->tail = NIL;
	s->cells = mem_cells_for(want);
	s->grow_at = (uint32_t)((uint64_t)s->cells * 7 / 10);
	s->slots = mem_slots_alloc(s->cells);
	if (!s->slots || pthread_mutex_init(&s->lock, NULL) != 0) {
		mem_slots_free(s->slots, s->cells);
		free(s);
		return NULL;
	}
	return &s->base;
}
