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

#include "err.h"
#include "kbfs.h"
#include "kbfs_node.h"
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

/* Mounted: release the parent, detach from the terminal. */
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

int main(int argc, char *argv[])
{
	struct kbfs_opts o;
	struct fuse_args args;
	struct fuse_session *se = NULL;
	struct kbfs fs = {0};
	char err[1024] = "", real[PATH_MAX];
	struct stat st;
	kb_Entry root;
	int ret = 1, status_fd = -1, r;
	bool mounted = false;

	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && !strcmp(argv[1], "--status"))
		return kbfs_status_print(argv[2]);
	if (kbfs_opts_parse(argc, argv, &o, &args, err, sizeof(err)) < 0) {
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
	if (!realpath(o.mountpoint, real) || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "keibifs: mountpoint %s: %s\n", o.mountpoint,
			errno ? strerror(errno) : "not a directory");
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
		fprintf(stderr, "keibifs: %s\n", err[0] ? err : kb_strerror(r));
		goto out;
	}
	if (kbfs_nodes_new(&fs.nodes, &root) < 0)
		goto out;
	se = fuse_session_new(&args, &kbfs_ops, sizeof(kbfs_ops), &fs);
	if (!se) {
		fprintf(stderr, "keibifs: bad FUSE options (see --help)\n");
		goto out;
	}
	fs.se = se;
	kbfs_logf(&fs, "connected to %s:%s (%s), %u connections", o.host, o.port,
		  kbfs_peer_fpr(&fs, err, sizeof(err)), o.conns);
	if (kbfs_notify_start(&fs) < 0)
		goto out;
	kb_rpc_set_log(fs.rpc, kbfs_log, &fs);
	kb_rpc_set_session_cb(fs.rpc, kbfs_session_cb, &fs);
	kb_rpc_set_notify(fs.rpc, kbfs_notify, &fs);
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	if (fuse_session_mount(se, real) != 0) {
		fprintf(stderr, "keibifs: cannot mount on %s\n", real);
		goto out;
	}
	mounted = true;
	if (kbfs_dev_hook(se) < 0) {
		fprintf(stderr, "keibifs: cannot take over /dev/fuse I/O\n");
		goto out;
	}
	/* The kernel sends reads of at most the bdi's read_ahead_kb (128 KiB
	 * unless raised; 1 MiB needs root);
	 * raised from the first request after INIT (kbfs_raise_readahead_once). */
	fs.realmnt = real;
	atomic_store(&fs.ra_pending, 1);
	if (status_fd >= 0) {
		kbfs_status_detach(&fs);
		daemon_done(status_fd);
		status_fd = -1;
	}
	ret = serve(se) != 0;
out:
	if (mounted)
		fuse_session_unmount(se);
	if (fs.rpc && fs.status && mounted)
		kbfs_logf(&fs, "unmounted %s", real);
	kbfs_notify_stop(&fs); /* no more ticks or invalidations */
	kb_rpc_bye(fs.rpc, 1000); /* the server frees our session now, not after its grace */
	/* Pending pulls complete (and reply) while the session still exists. */
	kb_rpc_free(fs.rpc);
	fs.rpc = NULL;
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
