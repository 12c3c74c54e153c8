/* keibifsd - share a directory with keibifs clients.
 *
 *   keibifsd --share DIR --key FILE --authorized FILE [--listen ADDR[:PORT]]
 *            [--read-only] [--foreground] [--pidfile FILE] [--psk FILE]
 *            [--session-grace SECONDS] [--no-notify] [--allow-owners]
 *            [limit options: --max-conns N ... (see usage and keibifsd(8))]
 *
 * Everything that can fail on bad configuration (arguments, keys, share,
 * port) happens before daemonizing, so errors reach the terminal. SIGTERM
 * and SIGINT are blocked in every thread and read from a signalfd by the
 * accept loop: stop accepting, answer what is in flight, exit 0. SIGHUP is
 * blocked too and read from its own signalfd by a reload thread: the
 * authorized keys and the pre-shared key are read again
 * (kb_srv_set_keys); a file that does not load keeps the current ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "mdns.h"
#include "server.h"
#include "util.h"
#include "version.h"

struct opts {
	const char *share, *key, *authorized, *listen, *pidfile, *psk, *log;
	const char *announce_name; /* --announce [NAME] (NULL name: the host's) */
	bool announce;
	bool read_only, foreground, no_notify, allow_owners, no_compress;
	int grace_s;           /* --session-grace; 0: default */
	struct kb_srv_cfg lim; /* only the limit fields */
};

/* Limit options: long name, the kb_srv_cfg field, what --help says. */
enum lim_kind {
	LIM_UINT,
	LIM_SECS,
	LIM_LONG,
	LIM_MIB
};
static const struct lim_opt {
	const char *name;
	size_t off;
	enum lim_kind kind;
	const char *help;
} lim_opts[] = {
#define L(n, f, k, h)                                   \
	{                                               \
		n, offsetof(struct kb_srv_cfg, f), k, h \
	}
	L("max-conns", max_conns, LIM_UINT, "authenticated connections (256)"),
	L("max-conns-per-key", max_conns_per_key, LIM_UINT, "of those, per client key (64)"),
	L("max-sessions", max_sessions, LIM_UINT, "sessions (1024)"),
	L("max-sessions-per-key", max_sessions_per_key, LIM_UINT, "per client key (64)"),
	L("max-handshakes", max_handshakes, LIM_UINT, "connections not yet authenticated (64)"),
	L("max-handshakes-per-addr", max_handshakes_per_addr, LIM_UINT,
	  "of those, per source address (8)"),
	L("handshake-timeout", handshake_timeout_s, LIM_SECS, "seconds to authenticate (5)"),
	L("hello-timeout", hello_timeout_s, LIM_SECS, "seconds from then to HELLO (10)"),
	L("frame-timeout", frame_timeout_s, LIM_SECS,
	  "seconds for a frame begun to arrive or a reply to be taken (30)"),
	L("idle-timeout", idle_timeout_s, LIM_SECS,
	  "seconds a connection may idle (900; 0: no limit)"),
	L("max-queued-mib", max_queued, LIM_MIB, "MiB of requests and replies queued (64)"),
	L("max-fds-per-key", max_fds_per_key, LIM_LONG,
	  "node and handle fds per key (3/4 of the budget from RLIMIT_NOFILE)"),
	L("max-fds-per-session", max_fds_per_session, LIM_LONG, "per session (as per key)"),
#undef L
};
#define NLIM (sizeof(lim_opts) / sizeof(lim_opts[0]))

static int set_limit(struct kb_srv_cfg *cfg, const struct lim_opt *l, const char *arg)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno || end == arg || *end || v < 0 || v > (1ll << 40) ||
	    (l->kind == LIM_UINT && (v < 1 || v > 1000000)) || (l->kind == LIM_SECS && v > 86400) ||
	    (l->kind == LIM_LONG && v < 1) || (l->kind == LIM_MIB && (v < 1 || v > (1 << 20)))) {
		fprintf(stderr, "keibifsd: bad --%s value '%s'\n", l->name, arg);
		return -EINVAL;
	}
	if (l->kind == LIM_UINT)
		*(unsigned *)((char *)cfg + l->off) = (unsigned)v;
	else if (l->kind == LIM_SECS) /* 0 is 'no limit' for the idle timeout only */
		*(int *)((char *)cfg + l->off) = v ? (int)v : -1;
	else if (l->kind == LIM_LONG)
		*(long *)((char *)cfg + l->off) = (long)v;
	else
		*(size_t *)((char *)cfg + l->off) = (size_t)v << 20;
	return 0;
}

static void usage_limits(FILE *f)
{
	fprintf(f, "  limits (see keibifsd(8), LIMITS; default in parentheses):\n");
	for (size_t i = 0; i < NLIM; i++)
		fprintf(f, "  --%-24s %s\n", lim_opts[i].name, lim_opts[i].help);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: keibifsd --share DIR --key FILE --authorized FILE [--listen ADDR[:PORT]]\n"
		"                [--read-only] [--foreground] [--log FILE|stderr|syslog]\n"
		"                [--pidfile FILE] [--psk FILE]\n"
		"                [--session-grace SECONDS] [--no-notify] [--allow-owners]\n"
		"                [--no-compress] [--announce [NAME]]\n"
		"  --share DIR        directory to export (required)\n"
		"  --key FILE         server private key (keibifs-keygen) (required)\n"
		"  --authorized FILE  client public keys, one per line (required); options before\n"
		"                     a key, comma-separated: \"ro\" read-only, \"owners\" may "
		"act\n"
		"                     as its callers (see --allow-owners)\n"
		"  --listen ADDR[:PORT]  default [::]:26431, IPv6 and IPv4 (0.0.0.0 without "
		"IPv6);\n"
		"                     IPv6 as [ADDR]:PORT\n"
		"  --read-only        refuse every change (EROFS) (default: off)\n"
		"  --foreground       do not daemonize; log to stderr (default: daemon, syslog)\n"
		"  --log FILE|stderr|syslog  where log lines go (default: syslog once detached,\n"
		"                     stderr in the foreground)\n"
		"  --pidfile FILE     write the server's pid (default: none)\n"
		"  --psk FILE         32-byte pre-shared key (base64 or hex, mode 0600), both\n"
		"                     sides (default: none)\n"
		"SIGHUP re-reads --authorized and --psk; sessions of removed keys end.\n"
		"  --session-grace S  keep a disconnected client's session S seconds (default 60;\n"
		"                     0: end it with its last connection)\n"
		"  --no-notify        do not push change notifications (default: inotify on)\n"
		"  --allow-owners     every client may send its caller's uid/gid/groups\n"
		"                     (keibifs -o owners=preserve) and is served as that user;\n"
		"                     needs root (default: off; only \"owners\" keys may)\n"
		"  --no-compress      refuse zstd compression of file data (default: clients\n"
		"                     may ask for it: keibifs -o compress=)\n"
		"  --announce [NAME]  publish the share on the LAN by mDNS (avahi-daemon):\n"
		"                     _keibifs._tcp NAME (default: the host name), with the\n"
		"                     port, share name and key fingerprint; keibifs --browse\n"
		"                     lists it, keibifs mdns:NAME:/ MNT mounts it\n");
	usage_limits(f);
	fprintf(f, "  --help, --version\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
	static struct option lo[32] = {
		{"share", 1, NULL, 's'},         {"key", 1, NULL, 'k'},
		{"authorized", 1, NULL, 'a'},    {"listen", 1, NULL, 'l'},
		{"read-only", 0, NULL, 'r'},     {"foreground", 0, NULL, 'f'},
		{"pidfile", 1, NULL, 'p'},       {"psk", 1, NULL, 'P'},
		{"session-grace", 1, NULL, 'g'}, {"no-notify", 0, NULL, 'n'},
		{"allow-owners", 0, NULL, 'O'},  {"log", 1, NULL, 'L'},
		{"no-compress", 0, NULL, 'Z'},   {"announce", 2, NULL, 'A'},
		{"help", 0, NULL, 'h'},          {"version", 0, NULL, 'V'},
	};
	int c, idx, nlo = 0;

	while (lo[nlo].name)
		nlo++;
	for (size_t i = 0; i < NLIM && nlo < 31 && !lo[nlo].name; i++) /* val 1000 + i */
		lo[nlo++] = (struct option){lim_opts[i].name, 1, NULL, 1000 + (int)i};
	while ((c = getopt_long(argc, argv, "", lo, &idx)) != -1) {
		if (c >= 1000 && c < 1000 + (int)NLIM) {
			if (set_limit(&o->lim, &lim_opts[c - 1000], optarg))
				return -EINVAL;
			continue;
		}
		switch (c) {
		case 's': o->share = optarg; break;
		case 'k': o->key = optarg; break;
		case 'a': o->authorized = optarg; break;
		case 'l': o->listen = optarg; break;
		case 'r': o->read_only = true; break;
		case 'f': o->foreground = true; break;
		case 'p': o->pidfile = optarg; break;
		case 'P': o->psk = optarg; break;
		case 'g': o->grace_s = atoi(optarg) > 0 ? atoi(optarg) : -1; break;
		case 'n': o->no_notify = true; break;
		case 'O': o->allow_owners = true; break;
		case 'L': o->log = optarg; break;
		case 'Z': o->no_compress = true; break;
		case 'A':
			o->announce = true;
			o->announce_name = optarg;
			/* "--announce NAME" as well as "--announce=NAME" */
			if (!optarg && optind < argc && argv[optind][0] != '-')
				o->announce_name = argv[optind++];
			break;
		case 'h': usage(stdout); exit(0);
		case 'V': kb_print_version(stdout, "keibifsd"); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "keibifsd: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!o->share || !o->key || !o->authorized) {
		fprintf(stderr, "keibifsd: --share, --key and --authorized are required\n");
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/* The SIGHUP side: re-read keys while kb_srv_run serves. */
struct reloader {
	struct kb_srv *srv;
	const struct opts *o;
	const struct kb_keyset *auth; /* in use; freed by main at the end */
	int hup_fd;                   /* signalfd for SIGHUP */
	int quit[2];                  /* pipe: main says stop */
	pthread_t th;
};

static void reload(struct reloader *r)
{
	struct kb_keyset *ks = NULL;
	uint8_t psk[32];
	char err[512];

	if (kb_keyset_load(&ks, r->o->authorized, err, sizeof(err)) ||
	    (r->o->psk && kb_psk_load(r->o->psk, psk, err, sizeof(err)))) {
		kb_logf(LOG_ERR, "reload: %s; keeping the current keys", err);
		kb_keyset_free(ks);
	} else {
		kb_keyset_free(
			(struct kb_keyset *)kb_srv_set_keys(r->srv, ks, r->o->psk ? psk : NULL));
		r->auth = ks;
	}
	kb_memzero(psk, sizeof(psk));
}

static void *reload_main(void *arg)
{
	struct reloader *r = arg;
	struct pollfd pf[2] = {{.fd = r->hup_fd, .events = POLLIN},
			       {.fd = r->quit[0], .events = POLLIN}};
	struct signalfd_siginfo si;

	for (;;) {
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		if ((pf[0].revents & POLLIN) && read(r->hup_fd, &si, sizeof(si)) == sizeof(si))
			reload(r);
	}
	return NULL;
}

static void log_cb(void *arg, int prio, const char *line)
{
	(void)arg;
	kb_log_line(prio, line);
}

/* A daemon must not keep what its caller had open (a descriptor inside
 * another mount holds that mount busy): close everything above stderr
 * before we open anything. */
static void close_inherited(void)
{
	if (close_range(3, ~0u, 0) == 0)
		return;
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
}

/* Fork into the background; the parent exits 0 once the child says it is
 * running (a byte on the pipe), 1 if the child died first. With --log
 * stderr, standard error stays the caller's (journald, a pipe). */
static int daemonize(int *ready_fd)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		_exit(read(p[0], &c, 1) == 1 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	if (fork() > 0)
		_exit(0);
	if (chdir("/")) {
		/* nothing: paths are absolute or already opened */
	}
	int devnull = open("/dev/null", O_RDWR);

	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		if (kb_log_dest() != KB_LOG_STDERR)
			dup2(devnull, 2);
		if (devnull > 2)
			close(devnull);
	}
	*ready_fd = p[1];
	return 0;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void announce_log(void *arg, const char *line)
{
	(void)arg;
	kb_log_line(LOG_INFO, line);
}

/* --announce: the bound port, the share's last component, our key. */
static struct kb_mdns_announce *announce(const struct opts *o, const struct kb_srv *srv,
					 const char *fpr)
{
	const char *addr = kb_srv_address(srv), *port = strrchr(addr, ':');
	const char *base = strrchr(o->share, '/');
	struct kb_mdns_announce *a = NULL;
	char err[256];

	base = base && base[1] ? base + 1 : o->share;
	err[0] = '\0';
	if (kb_mdns_announce_start(&a, o->announce_name, (uint16_t)atoi(port ? port + 1 : "0"),
				   base, fpr, announce_log, NULL, err, sizeof(err)) &&
	    err[0])
		announce_log(NULL, err);
	return a;
}

static int write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fprintf(f, "%d\n", (int)getpid());
	return fclose(f) ? -errno : 0;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct kb_srv_cfg cfg = {0};
	struct kb_keyset *auth = NULL;
	struct kb_srv *srv = NULL;
	struct reloader rl = {.hup_fd = -1, .quit = {-1, -1}};
	struct kb_mdns_announce *mdns = NULL; /* --announce */
	uint8_t priv[KB_KEY_LEN], pub[KB_KEY_LEN], psk[32];
	char err[512], fpr[KB_FPR_LEN];
	int ret = 1, rc, sfd = -1, ready_fd = -1;
	bool reloading = false;
	sigset_t sigs, hup;

	if (parse(argc, argv, &o))
		return 2;
	if (!o.foreground)
		close_inherited();
	if (kb_log_open(o.log          ? o.log
			: o.foreground ? "stderr"
				       : NULL,
			"keibifsd", err, sizeof(err))) {
		fprintf(stderr, "keibifsd: %s\n", err);
		goto out;
	}
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* every later thread inherits it */
	pthread_sigmask(SIG_BLOCK, &hup, NULL);
	if (kb_key_load_private(o.key, priv, pub, err, sizeof(err))) {
		fprintf(stderr, "keibifsd: %s\n", err);
		goto out;
	}
	if (kb_keyset_load(&auth, o.authorized, err, sizeof(err))) {
		fprintf(stderr, "keibifsd: %s\n", err);
		goto out;
	}
	if (o.psk && kb_psk_load(o.psk, psk, err, sizeof(err))) {
		fprintf(stderr, "keibifsd: %s\n", err);
		goto out;
	}
	cfg.share = o.share;
	cfg.listen = o.listen;
	cfg.priv = priv;
	cfg.authorized = auth;
	cfg.psk = o.psk ? psk : NULL;
	cfg.read_only = o.read_only;
	cfg.session_grace_s = o.grace_s;
	cfg.no_notify = o.no_notify;
	cfg.no_compress = o.no_compress;
	cfg.allow_owners = o.allow_owners;
	cfg.log = log_cb;
	cfg.max_conns = o.lim.max_conns;
	cfg.max_conns_per_key = o.lim.max_conns_per_key;
	cfg.max_sessions = o.lim.max_sessions;
	cfg.max_sessions_per_key = o.lim.max_sessions_per_key;
	cfg.max_handshakes = o.lim.max_handshakes;
	cfg.max_handshakes_per_addr = o.lim.max_handshakes_per_addr;
	cfg.handshake_timeout_s = o.lim.handshake_timeout_s;
	cfg.hello_timeout_s = o.lim.hello_timeout_s;
	cfg.frame_timeout_s = o.lim.frame_timeout_s;
	cfg.idle_timeout_s = o.lim.idle_timeout_s;
	cfg.max_queued = o.lim.max_queued;
	cfg.max_fds_per_key = o.lim.max_fds_per_key;
	cfg.max_fds_per_session = o.lim.max_fds_per_session;
	if (kb_srv_new(&srv, &cfg, err, sizeof(err))) {
		fprintf(stderr, "keibifsd: %s\n", err);
		goto out;
	}
	kb_key_fingerprint(pub, fpr);
	if (!o.foreground) {
		/* The fingerprint clients pin, where the admin sees it. */
		fprintf(stderr,
			"keibifsd: listening on %s, sharing %s, key %s; detaching (log: %s)\n",
			kb_srv_address(srv), o.share, fpr, kb_log_name());
		fflush(stderr);
		if ((rc = daemonize(&ready_fd))) {
			fprintf(stderr, "keibifsd: cannot daemonize: %s\n", strerror(-rc));
			goto out;
		}
	}
	if (o.pidfile && (rc = write_pidfile(o.pidfile))) {
		fprintf(stderr, "keibifsd: cannot write pidfile %s: %s\n", o.pidfile,
			strerror(-rc));
		goto out;
	}
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0 || kb_srv_start(srv, err, sizeof(err))) {
		fprintf(stderr, "keibifsd: %s\n", sfd < 0 ? strerror(errno) : err);
		goto out;
	}
	/* Requests carry the client's umask (the kernel applied it already):
	 * modes of new files are exactly what the client asks for. */
	umask(0);
	kb_logf(LOG_INFO, "ready on %s, sharing %s%s%s (key %s)", kb_srv_address(srv), o.share,
		o.read_only ? " read-only" : "", o.allow_owners ? " with owners" : "", fpr);
	fflush(stderr);
	if (o.announce)
		mdns = announce(&o, srv, fpr);
	if (ready_fd >= 0) {
		if (write(ready_fd, "r", 1) != 1) {
			/* parent gone: keep serving */
		}
		close(ready_fd);
		ready_fd = -1;
	}
	rl.srv = srv;
	rl.o = &o;
	rl.auth = auth;
	rl.hup_fd = signalfd(-1, &hup, SFD_CLOEXEC);
	if (rl.hup_fd < 0 || pipe2(rl.quit, O_CLOEXEC) ||
	    pthread_create(&rl.th, NULL, reload_main, &rl))
		kb_log_line(LOG_ERR, "no reload on SIGHUP: cannot start its thread");
	else
		reloading = true;
	kb_srv_run(srv, sfd);
	kb_mdns_announce_stop(mdns);
	if (reloading) {
		if (write(rl.quit[1], "q", 1) != 1) {
			/* cannot happen on a fresh pipe */
		}
		pthread_join(rl.th, NULL);
		auth = (struct kb_keyset *)rl.auth;
	}
	kb_log_line(LOG_INFO, "stopped");
	ret = 0;
out:
	if (o.pidfile && ret == 0)
		unlink(o.pidfile);
	if (sfd >= 0)
		close(sfd);
	if (rl.hup_fd >= 0)
		close(rl.hup_fd);
	for (int i = 0; i < 2; i++)
		if (rl.quit[i] >= 0)
			close(rl.quit[i]);
	kb_srv_free(srv);
	kb_keyset_free(auth);
	kb_memzero(priv, sizeof(priv));
	kb_memzero(psk, sizeof(psk));
	return ret;
}
