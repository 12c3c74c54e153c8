/* th_mount.c - real keibifs mounts for integration tests (th_mount.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "th.h"
#include "th_mount.h"

/* This test process's live mounts: th_mounts_drain waits for their
 * write-behind queues. */
#define LIVE_MAX 16
static char live[LIVE_MAX][PATH_MAX];

static void live_set(const char *mnt, bool on)
{
	for (int i = 0; i < LIVE_MAX; i++) {
		if (on ? !live[i][0] : !strcmp(live[i], mnt)) {
			if (on)
				snprintf(live[i], sizeof(live[i]), "%s", mnt);
			else
				live[i][0] = '\0';
			return;
		}
	}
}

void th_mounts_drain(void)
{
	for (int i = 0; i < LIVE_MAX; i++)
		if (live[i][0])
			(void)getxattr(live[i], "keibifs.drain", NULL, 0);
}

static int build_opts(char *buf, size_t len, const struct th_server *ts, const char *opts)
{
	int n = snprintf(buf, len, "port=%d,identity=%s,known_peers=%s%s%s", ts->port,
			 ts->client_key, ts->known_peers, opts ? "," : "", opts ? opts : "");

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void dump_log(const char *log)
{
	char *out = NULL;

	th_sh_out(&out, "tail -n 20 '%s'", log);
	fprintf(stderr, "th_mount: client log %s:\n%s\n", log, out ? out : "");
	free(out);
}

int th_mount_start(struct th_mount *m, const struct th_server *ts, const char *remote_path,
		   const char *opts)
{
	char remote[PATH_MAX + 32], o[4 * PATH_MAX];
	char *argv[8];
	int st;

	memset(m, 0, sizeof(*m));
	m->dir = th_tmpdir("mount");
	if (!m->dir || build_opts(o, sizeof(o), ts, opts) < 0)
		return -1;
	snprintf(m->mnt, sizeof(m->mnt), "%s/mnt", m->dir);
	snprintf(m->log, sizeof(m->log), "%s/client.log", m->dir);
	snprintf(remote, sizeof(remote), "127.0.0.1:%s", remote_path);
	if (mkdir(m->mnt, 0755) < 0)
		return -1;
	argv[0] = (char *)th_bin("keibifs");
	argv[1] = remote;
	argv[2] = m->mnt;
	argv[3] = "-f";
	argv[4] = "-o";
	argv[5] = o;
	argv[6] = NULL;
	m->pid = th_spawn(argv, m->log);
	if (m->pid < 0) {
		m->pid = 0;
		return -1;
	}
	th_track_mount(m->mnt);
	for (int waited = 0; waited < 15000; waited += 10) {
		if (th_is_mounted(m->mnt)) {
			live_set(m->mnt, true);
			return 0;
		}
		if (waitpid(m->pid, &st, WNOHANG) == m->pid) {
			m->pid = 0;
			break;
		}
		usleep(10000);
	}
	dump_log(m->log);
	th_mount_stop(m);
	return -1;
}

void th_mount_stop(struct th_mount *m)
{
	if (m->mnt[0]) {
		live_set(m->mnt, false);
		th_umount(m->mnt);
	}
	if (m->pid > 0) {
		/* unmounting ends the session loop: give it time to exit itself */
		for (int waited = 0; waited < 5000; waited += 10) {
			if (waitpid(m->pid, NULL, WNOHANG) == m->pid) {
				m->pid = 0;
				break;
			}
			usleep(10000);
		}
		if (m->pid > 0)
			th_stop(m->pid, 2000);
		m->pid = 0;
	}
	if (m->dir && !getenv("KB_KEEP_TMP")) {
		th_sh("rm -rf '%s'", m->dir);
	}
	free(m->dir);
	m->dir = NULL;
}

int th_mount_expect_fail(const struct th_server *ts, const char *remote_path, const char *opts,
			 char **out, bool *left_mounted)
{
	struct th_mount m;
	char remote[PATH_MAX + 32], o[4 * PATH_MAX];
	char *argv[8];
	int st = -1;

	memset(&m, 0, sizeof(m));
	*out = NULL;
	*left_mounted = false;
	m.dir = th_tmpdir("mountfail");
	if (!m.dir || build_opts(o, sizeof(o), ts, opts) < 0)
		return -1;
	snprintf(m.mnt, sizeof(m.mnt), "%s/mnt", m.dir);
	snprintf(m.log, sizeof(m.log), "%s/client.log", m.dir);
	snprintf(remote, sizeof(remote), "127.0.0.1:%s", remote_path);
	mkdir(m.mnt, 0755);
	th_track_mount(m.mnt);
	argv[0] = (char *)th_bin("keibifs");
	argv[1] = remote;
	argv[2] = m.mnt;
	argv[3] = "-f";
	argv[4] = "-o";
	argv[5] = o;
	argv[6] = NULL;
	m.pid = th_spawn(argv, m.log);
	for (int waited = 0; m.pid > 0 && waited < 20000; waited += 10) {
		if (waitpid(m.pid, &st, WNOHANG) == m.pid) {
			m.pid = 0;
			break;
		}
		usleep(10000);
	}
	*left_mounted = th_is_mounted(m.mnt);
	th_sh_out(out, "cat '%s'", m.log);
	if (m.pid > 0)
		st = -1; /* still running: th_mount_stop kills it */
	th_mount_stop(&m);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
