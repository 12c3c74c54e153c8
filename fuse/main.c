/* main.c - keibifs: mount a keibifsd share.
 *
 *   keibifs HOST:/PATH MOUNTPOINT [-f] [-d] [-o OPTIONS]
 *
 * Connects, authenticates and checks PATH before mounting, so every such
 * failure is a one-line error and a non-zero exit with no mount left.
 * Without -f we fork *first* and the parent waits for the child's word:
 * the rpc threads must live in the process that serves the mount, and
 * fuse_daemonize() forks after they exist (threads do not survive fork).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <syslog.h>

#include "err.h"
#include "kbfs.h"
#include "kbfs_wb.h"
#include "kbfs_node.h"
#include "keys.h"
#include "log.h"
#include "rpc.h"
#include "version.h"

/* Fork; the parent exits with the child's verdict (0 once mounted). */
static int daemon_start(int *status_fd)
{
	int p[2], st;
	pid_t pid;
	char c;

	if (pipe(p) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &c, 1) == 1 && c == 0)
			_exit(0);
		if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st))
			_exit(WEXITSTATUS(st));
		_exit(1);
	}
	close(p[0]);
	setsid();
	*status_fd = p[1];
	return 0;
}

/* Mounted: release the parent, detach from the terminal (standard error
 * stays with -o log=stderr). */
static void daemon_done(int status_fd)
{
	int fd = open("/dev/null", O_RDWR);
	char ok = 0;

	if (write(status_fd, &ok, 1) != 1)
		perror("keibifs: daemon");
	close(status_fd);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		if (kb_log_dest() != KB_LOG_STDERR)
			dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (chdir("/") < 0)
		return;
}

static int serve(struct fuse_session *se)
{
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	int ret;

	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	fuse_loop_cfg_set_max_threads(cfg, 32);
	fuse_loop_cfg_set_idle_threads(cfg, 8);
	ret = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return ret;
}

/* A mount that fails: one line on stderr, and in the log when it is not
 * stderr (a fstab or automount mount has no terminal). */
static void mount_failed(const struct kbfs_opts *o, const char *why)
{
	char where[600] = "";

	fprintf(stderr, "keibifs: %s\n", why);
	if (kb_log_dest() == KB_LOG_STDERR)
		return;
	if (o && o->host && o->mountpoint)
		snprintf(where, sizeof(where), " of %s%s%s:%s on %s",
			 strchr(o->host, ':') ? "[" : "", o->host, strchr(o->host, ':') ? "]" : "",
			 o->path, o->mountpoint);
	kb_logf(LOG_ERR, "mount%s failed: %s", where, why);
}

/* "[::1]:/data" or "host:/data". */
static const char *remote_name(const struct kbfs_opts *o, char *buf, size_t cap)
{
	snprintf(buf, cap, strchr(o->host, ':') ? "[%s]:%s" : "%s:%s", o->host, o->path);
	return buf;
}

int main(int argc, char *argv[])
{
	struct kbfs_opts o;
	struct fuse_args args;
	struct fuse_session *se = NULL;
	struct kbfs fs = {0};
	char err[1024] = "", real[PATH_MAX], rname[600];
	struct stat st;
	kb_Entry root;
	int ret = 1, status_fd = -1, r;
	bool mounted = false;

	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && !strcmp(argv[1], "--status"))
		return kbfs_status_print(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "--sync"))
		return kbfs_sync_print(argv[2]);
	if (argc == 2 && !strcmp(argv[1], "--browse"))
		return kbfs_browse_print(NULL);
	if (argc == 4 && !strcmp(argv[1], "--browse") && !strcmp(argv[2], "-o") &&
	    !strncmp(argv[3], "known_peers=", 12))
		return kbfs_browse_print(argv[3] + 12);
	if (kbfs_opts_parse(argc, argv, &o, &args, err, sizeof(err)) < 0) {
		fprintf(stderr, "keibifs: %s\n", err);
		goto out;
	}
	/* the log first: a file we cannot write is a mistake to report now */
	if (!o.show_help && !o.show_version &&
	    kb_log_open(o.log          ? o.log
			: o.foreground ? "stderr"
				       : NULL,
			"keibifs", err, sizeof(err)) < 0) {
		fprintf(stderr, "keibifs: %s\n", err);
		goto out;
	}
	if (o.show_help || o.show_version) {
		if (o.show_help) {
			kbfs_usage(stdout, "keibifs");
			printf("\nFUSE options:\n");
			fflush(stdout);
			fuse_lowlevel_help();
		} else {
			kb_print_version(stdout, "keibifs");
		}
		ret = 0;
		goto out;
	}
	errno = 0;
	if (!realpath(o.mountpoint, real) || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, sizeof(err), "mountpoint %s: %s%s", o.mountpoint,
			 errno ? strerror(errno) : "not a directory",
			 errno == ENOENT ? " (mkdir it first)" : "");
		mount_failed(&o, err);
		goto out;
	}
	if (!o.foreground && daemon_start(&status_fd) < 0) {
		perror("keibifs: fork");
		goto out;
	}
	if (kbfs_init_state(&fs, &o) < 0 || kbfs_status_new(&fs) < 0) {
		fprintf(stderr, "keibifs: out of memory\n");
		goto out;
	}
	if ((r = kbfs_connect(&fs, &o, &root, err, sizeof(err))) < 0) {
		if (!err[0])
			snprintf(err, sizeof(err), "%s", kb_strerror(r));
		mount_failed(&o, err);
		goto out;
	}
	if (kbfs_nodes_new(&fs.nodes, &root) < 0)
		goto out;
	kbfs_nodes_set_lease(fs.nodes, kbfs_lease, &fs);
	if (kbfs_wb_start(&fs) < 0)
		goto out;
	se = fuse_session_new(&args, &kbfs_ops, sizeof(kbfs_ops), &fs);
	if (!se) {
		mount_failed(&o, "bad FUSE options (see --help)");
		goto out;
	}
	fs.se = se;
	if (kbfs_notify_start(&fs) < 0)
		goto out;
	kb_rpc_set_log(fs.rpc, kbfs_log, &fs);
	kb_rpc_set_session_cb(fs.rpc, kbfs_session_cb, &fs);
	kb_rpc_set_notify(fs.rpc, kbfs_notify, &fs);
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	if (fuse_session_mount(se, real) != 0) {
		char why[PATH_MAX + 32];

		snprintf(why, sizeof(why), "cannot mount on %s", real);
		mount_failed(&o, why);
		goto out;
	}
	mounted = true;
	kbfs_status_mounted(&fs);
	{
		char fpr[KB_FPR_LEN + 8];

		kbfs_logf(&fs, "mounted %s on %s (server %s, port %s, %u connections)",
			  remote_name(&o, rname, sizeof(rname)), real,
			  kbfs_peer_fpr(&fs, fpr, sizeof(fpr)), o.port, o.conns);
	}
	if (kbfs_devio_hook(se) < 0) {
		fprintf(stderr, "keibifs: cannot take over /dev/fuse I/O\n");
		goto out;
	}
	/* The kernel sends reads of at most the bdi's read_ahead_kb (128 KiB
	 * unless raised; 1 MiB needs root);
	 * raised from the first request after INIT (kbfs_raise_readahead_once). */
	fs.realmnt = real;
	atomic_store(&fs.ra_pending, 1);
	if (status_fd >= 0) {
		kbfs_log_detach(&fs);
		daemon_done(status_fd);
		status_fd = -1;
	}
	ret = serve(se) != 0;
out:
	if (mounted)
		fuse_session_unmount(se);
	if (fs.rpc && fs.status && mounted)
		kbfs_logf(&fs, "unmounted %s from %s", remote_name(&o, rname, sizeof(rname)), real);
	kbfs_wb_stop(&fs);        /* what is queued reaches the server first */
	kbfs_notify_stop(&fs);    /* no more ticks or invalidations */
	kb_rpc_bye(fs.rpc, 1000); /* the server frees our session now, not after its grace */
	/* Pending pulls complete (and reply) while the session still exists. */
	kb_rpc_free(fs.rpc);
	fs.rpc = NULL;
	kbfs_wb_free(&fs);     /* after the rpc: its callbacks ran */
	kbfs_notify_free(&fs); /* after the rpc: no more pushes */
	kbfs_status_free(&fs);
	if (se) {
		fuse_remove_signal_handlers(se);
		fuse_session_destroy(se);
	}
	if (fs.o)
		kbfs_fini_state(&fs);
	fuse_opt_free_args(&args);
	kbfs_opts_free(&o);
	return ret;
}
