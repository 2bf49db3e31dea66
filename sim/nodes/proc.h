/* proc.h — child processes: spawn with a log, exit checks, kill -9 of everything a child left, and a registry that a signal handler can clean up. */
#ifndef DUPSIM_NODES_PROC_H
#define DUPSIM_NODES_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * A marker is one environment entry ("DUPSIM_NODE=<name>") that every
 * process of a child inherits, including the ones that leave its process
 * group (setsid): it finds them all in /proc. A marker's family is the
 * marker itself and every "<marker>-<suffix>" (a node's helpers, its epmd).
 */
#define PROC_MARKER_MAX 96

/*
 * Forks and execs argv with exactly envp in its own session, cwd as its
 * folder, stdin from /dev/null, stdout and stderr appended to log. Unless
 * persistent, the child gets SIGKILL when the *thread* that spawned it
 * exits (PR_SET_PDEATHSIG). 0 with the pid in *out, or -1 with err.
 */
int proc_spawn(char *const *argv, char *const *envp, const char *cwd, const char *log, bool persistent,
	       pid_t *out, char *err, size_t errlen);
/* True once pid exited (not reaped: *code gets its status, 128 + signal when killed); a pid that is not our child counts as exited. */
bool proc_exited(pid_t pid, int *code);
/* SIGKILL of pid's process group and of every process carrying marker (exactly), then reaps pid. pid 0: only the marked ones. */
void proc_kill(pid_t pid, const char *marker);
/* SIGKILL of every process carrying marker (or its family) until none is left, or about 5 s. Async-signal-safe. */
void proc_kill_marked(const char *marker, bool family);
/* Live processes carrying marker (or its family); zombies don't count. -1 when /proc can't be read. */
int proc_count(const char *marker, bool family);
/* True when pid is alive and carries marker exactly. */
bool proc_has_marker(pid_t pid, const char *marker);
/* Start time of pid in clock ticks since boot; 0 when it is gone or a zombie. With the pid, it names a process for good. */
unsigned long long proc_start_time(pid_t pid);
/*
 * The process that holds the TCP socket 127.0.0.1:port -> 127.0.0.1:peer on
 * this host (from /proc/net/tcp, then every /proc/PID/fd): how a connection
 * that reached the proxy (listening on peer) is tied to the app instance
 * that made it. Both ends count: one local port serves connections to
 * different peers (the proxy's own upstream sockets among them). Only this
 * process and the members of the ngroups process groups in groups are
 * looked at (the lookup runs on the proxy's thread: no walk through every
 * process of the host). 0 when none is found (gone already, or not ours).
 */
pid_t proc_socket_owner(uint16_t port, uint16_t peer, const pid_t *groups, size_t ngroups);
/* True while pid runs (not a zombie, not gone): any process, not only our children. */
bool proc_alive(pid_t pid);
/* The last `lines` non-blank lines of a log as "a | b | c", control characters blanked; "" when unreadable. */
void proc_log_tail(const char *path, int lines, char *out, size_t len);

/*
 * The registry: what proc_cleanup_signal kills. A slot holds up to
 * PROC_SLOT_PIDS group leaders, a marker whose family covers every process
 * of them, and a folder to remove. Slots are owned by the pid that claimed
 * them: a fork()ed child inherits the table but never kills its parent's.
 * The first claim registers an atexit handler that cleans up the same way.
 */
#define PROC_SLOT_PIDS 2
struct proc_slot;
/* A free slot for marker's family and dir (removed by the cleanup when rm_dir); NULL when all 64 are taken. */
struct proc_slot *proc_slot_claim(const char *marker, const char *dir, bool rm_dir);
/* Leader i (0 ≤ i < PROC_SLOT_PIDS) is now pid; 0: none. */
void proc_slot_set_pid(struct proc_slot *s, int i, pid_t pid);
/* The cleanup leaves the folder alone from now on. */
void proc_slot_keep_dir(struct proc_slot *s);
/* Gives the slot back: the cleanup forgets it. NULL ok. */
void proc_slot_release(struct proc_slot *s);

/*
 * Kills every process of every slot this process claimed and removes their
 * folders. Async-signal-safe (kill, waitpid, nanosleep, raw /proc and folder
 * syscalls): call it from a SIGINT/SIGTERM handler, then die of the signal.
 */
void proc_cleanup_signal(void);

#endif
