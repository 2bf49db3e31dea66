/* postgres.h — the PostgreSQL kind of node: a private postgres with its own initdb'd cluster, for the transactional inbox. */
#ifndef DUPSIM_NODES_POSTGRES_H
#define DUPSIM_NODES_POSTGRES_H

#include "nodes/node.h"

/*
 * node_new(&n, &postgres_ops, ...): initdb into the node's folder (superuser
 * dupsim, trust auth, nothing but 127.0.0.1 and a socket in the folder), then
 * postgres on a free port; ready once database dupsim exists (the readiness
 * check creates it). node_url is postgresql://dupsim@127.0.0.1:PORT/dupsim.
 * fsync stays on: a COMMIT that returned survives a kill -9.
 *
 * As root (initdb and postgres refuse to run as root) the cluster belongs to
 * user nobody: the folder becomes 0711 so that nobody can reach its data
 * subfolder, and both programs run under `setpriv --reuid nobody` with
 * --pdeathsig KILL (a change of uid clears the death signal proc_spawn set).
 * As a normal user they run as that user. Stopped with SIGINT (fast
 * shutdown: open transactions roll back), not SIGTERM (smart shutdown
 * waits for every client).
 *
 * The binaries: the newest /usr/lib/postgresql/<version>/bin (Debian),
 * or the folder named by DUPSIM_PG_BIN.
 */
extern const struct node_ops postgres_ops;

/* The database and its owner that node_url names. */
#define POSTGRES_DB "dupsim"
#define POSTGRES_USER "dupsim"

#endif
