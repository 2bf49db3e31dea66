/* sweep.c — owner files in temporary node folders, and the sweep that removes the orphans. */
#include "nodes/sweep.h"

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"
#include "nodes/proc.h"

#define OWNER_FILE "dupsim.owner"

int sweep_own(const char *dir, const char *marker)
{
	char path[PATH_MAX], text[PROC_MARKER_MAX + 64];

	snprintf(text, sizeof(text), "%d %llu %s\n", (int)getpid(), proc_start_time(getpid()), marker);
	if (snprintf(path, sizeof(path), "%s/" OWNER_FILE, dir) >= (int)sizeof(path))
		return -1;
	return files_write_atomic(path, text, strlen(text));
}

/* True when the folder's owner file names an owner that is gone and a node of which no process is left. */
static bool orphaned(const char *owner_path)
{
	char *text = files_read(owner_path, NULL), marker[PROC_MARKER_MAX];
	unsigned long long start;
	bool gone = false;
	int pid;

	if (!text)
		return false;
	if (sscanf(text, "%d %llu %95s", &pid, &start, marker) == 3 && pid > 0)
		gone = proc_start_time(pid) != start && proc_count(marker, true) == 0;
	free(text);
	return gone;
}

static void sweep_dir(const char *base, bool quiet)
{
	DIR *d = opendir(base);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;

		if (strncmp(e->d_name, "dupsim-", 7) != 0 || strlen(e->d_name) != 13)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s/" OWNER_FILE, base, e->d_name) >= (int)sizeof(path))
			continue;
		if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || !orphaned(path))
			continue;
		path[strlen(path) - sizeof(OWNER_FILE)] = '\0';
		if (files_rm_rf(path) == 0 && !quiet)
			log_line("removed %s, left behind by a dupsim that was killed", path);
	}
	closedir(d);
}

static pthread_mutex_t sweep_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t sweep_pid;
static char sweep_base[PATH_MAX];

void sweep_once(const char *base, bool quiet)
{
	bool todo;

	pthread_mutex_lock(&sweep_lock);
	todo = sweep_pid != getpid() || strcmp(sweep_base, base) != 0;
	if (todo) {
		sweep_pid = getpid();
		snprintf(sweep_base, sizeof(sweep_base), "%s", base);
	}
	pthread_mutex_unlock(&sweep_lock);
	if (todo)
		sweep_dir(base, quiet);
}
