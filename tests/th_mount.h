/* th_mount.h - mount build/keibifs for real against a test server.
 *
 * th_mount_start() spawns `keibifs 127.0.0.1:PATH MNT -f -o port=...,
 * identity=...,known_peers=...` (the test server's files) with th_spawn,
 * waits until MNT shows up in /proc/self/mounts, and records the mount for
 * the runner's final cleanup. th_mount_stop() unmounts and stops the client
 * by PID. Safe to call from Check's unchecked fixtures (runner's process).
 */
#ifndef KB_TH_MOUNT_H
#define KB_TH_MOUNT_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

struct kb_rpc_result; /* th_server.h uses it in a prototype */
#include "th_server.h"

struct th_mount {
	char *dir; /* owned temp dir holding mnt/ and client.log */
	char mnt[PATH_MAX];
	char log[PATH_MAX];
	pid_t pid; /* the keibifs process (foreground), 0 if none */
};

/* Mount ts's share (remote_path, e.g. "/") with extra comma-separated -o
 * options (NULL for none). 0, or -1 with the client's log on stderr. */
int th_mount_start(struct th_mount *m, const struct th_server *ts, const char *remote_path,
		   const char *opts);
/* Unmount (if mounted), stop the client by PID, remove the directory. */
void th_mount_stop(struct th_mount *m);
/* Run keibifs in the foreground expecting it to fail before mounting:
 * returns its exit status (-1 if it had to be killed), its output in *out
 * (caller frees), and whether a mount was left behind in *left_mounted. */
int th_mount_expect_fail(const struct th_server *ts, const char *remote_path, const char *opts,
			 char **out, bool *left_mounted);

#endif
