/* server.c - keibifsd: listening, accepting, stopping.
 *
 * THREADS. One accept thread (the caller of kb_srv_run) polls the listening
 * sockets and the stop fds. Each accepted connection gets its own receiver
 * thread, which runs the Noise handshake (so a slow or hostile peer never
 * holds up accept) and then reads frames, plus its own small set of worker
 * threads (cfg.workers, default 4) that serve that connection's requests and
 * send the replies. We chose per-connection workers over one shared pool:
 * N connections use N cores without a global queue lock, replies leave in
 * completion order (a slow FSYNC or a 4 MiB READ never holds up a GETATTR
 * behind it), and a client that stops reading can block only its own
 * workers, never another client's. Threads are cheap next to the frame
 * buffers they own. The receiver serves the cheapest operations itself
 * (PING, GETATTR, FORGET, RELEASE: no data, no path walk), saving one
 * thread handoff on the metadata round trip (GETATTR p50 ~95 -> ~40 us).
 *
 * BUFFERS (no malloc per request in steady state). Received frames land in
 * kb_buf buffers from two server-wide pools (small <= 64 KiB, large = max
 * frame), decrypted in place; WRITE data is pwritten straight from there.
 * Each worker owns one transmit buffer of max-frame size, allocated once:
 * READ preads straight into it after KB_WIRE_HEADROOM bytes, the reply
 * header is placed immediately before the data, and kb_chan_send encrypts
 * the frame in place (srv_sess.c). File data is never memcpy'd.
 *
 * LIMITS per connection: KB_SRV_MAX_INFLIGHT requests and
 * KB_SRV_INFLIGHT_BYTES bytes queued (beyond that we stop reading: TCP
 * backpressure); per session KB_SRV_MAX_HANDLES handles and
 * KB_SRV_MAX_NODES nodes; per server cfg.max_conns connections. Against
 * peers that hold resources (srv_conn.c): a separate handshake budget with
 * a per-address share, per-key connections, deadlines, a queued-bytes
 * budget; fd budgets per session and key (srv_node.c). The janitor thread
 * applies the deadlines and frees expired sessions, so nothing slow (a
 * session's teardown, a lock a sender holds) ever runs on the accept thread.
 *
 * LOCKS (order srv.lock -> conn.lock; node/handle table locks are leaves):
 * srv.lock guards the session and connection lists; conn.lock guards the
 * connection's job queue and counters; see srv_impl.h for each field.
 *
 * STOP. kb_srv_stop() / the stop fd end the accept loop; every connection's
 * receiver stops reading at the next frame boundary (it polls the socket
 * and the stop pipe), its workers answer what was already received and
 * exit; after a grace period, sends stuck on a peer that does not read are
 * broken too. kb_srv_run returns when the last connection is gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "err.h"
#include "net.h"
#include "noise.h"
#include "srv_impl.h"
#include "util.h"

#define STOP_GRACE_MS 10000
#define SEND_TIMEOUT_MS 120000

/* Split "ADDR[:PORT]", "[V6]:PORT", "V6" or ":PORT" into host and port.
 * No ADDR: "::" (both IPv6 and IPv4, see bind_one). */
static int split_listen(const char *spec, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon;

	snprintf(port, pcap, "%s", KB_SRV_DEFAULT_PORT);
	if (!spec || !*spec) {
		snprintf(host, hcap, "::");
		return 0;
	}
	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');

		if (!end || (end[1] && end[1] != ':') || (size_t)(end - spec - 1) >= hcap)
			return -EINVAL;
		snprintf(host, hcap, "%.*s", (int)(end - spec - 1), spec + 1);
		if (end[1] == ':')
			snprintf(port, pcap, "%s", end + 2);
		return *port ? 0 : -EINVAL;
	}
	colon = strchr(spec, ':');
	if (colon && strchr(colon + 1, ':')) { /* bare IPv6 literal */
		snprintf(host, hcap, "%s", spec);
		return 0;
	}
	if (colon) {
		if ((size_t)(colon - spec) >= hcap || !colon[1])
			return -EINVAL;
		snprintf(host, hcap, "%.*s", (int)(colon - spec), spec);
		snprintf(port, pcap, "%s", colon + 1);
		if (!*host)
			snprintf(host, hcap, "::");
		return 0;
	}
	snprintf(host, hcap, "%s", spec);
	return 0;
}

/* "ADDR:PORT" into out, and "ADDR" into host (when not NULL). */
static void format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t cap, char *host,
			size_t hcap)
{
	char p[NI_MAXSERV];

	kb_net_format_sockaddr(out, cap, sa, len);
	if (host && getnameinfo(sa, len, host, (socklen_t)hcap, p, sizeof(p),
				NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(host, hcap, "?");
}

static int bind_one(struct kb_srv *s, const struct addrinfo *ai)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int one = 1, fd, ret;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6) {
		int zero = 0; /* [::] takes IPv4 too (mapped), as sshd's default */

		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	}
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 128) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	if (!s->nlfd)
		format_addr((struct sockaddr *)&ss, len, s->addr, sizeof(s->addr), NULL, 0);
	s->lfd[s->nlfd++] = fd;
	return 0;
}

static int do_listen(struct kb_srv *s, const char *spec, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL, *ai;
	char host[256], port[32];
	int ret;

	if (split_listen(spec, host, sizeof(host), port, sizeof(port))) {
		snprintf(err, errlen, "bad --listen address '%s' (want ADDR[:PORT] or [V6]:PORT)",
			 spec);
		return -EINVAL;
	}
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret && !strcmp(host, "::")) { /* no IPv6 here: IPv4 only */
		snprintf(host, sizeof(host), "0.0.0.0");
		ret = getaddrinfo(host, port, &hints, &res);
	}
	if (ret) {
		snprintf(err, errlen, "cannot resolve listen address %s port %s: %s", host, port,
			 gai_strerror(ret));
		return -EINVAL;
	}
	ret = -EADDRNOTAVAIL;
	for (ai = res; ai && s->nlfd < KB_SRV_MAX_LISTEN; ai = ai->ai_next) {
		ret = bind_one(s, ai);
		if (ret)
			break;
	}
	freeaddrinfo(res);
	if (ret && ret != -EADDRINUSE && !s->nlfd && !strcmp(host, "::") &&
	    !getaddrinfo("0.0.0.0", port, &hints, &res)) {
		/* IPv6 disabled (EAFNOSUPPORT, EADDRNOTAVAIL): IPv4 only */
		snprintf(host, sizeof(host), "0.0.0.0");
		ret = bind_one(s, res);
		freeaddrinfo(res);
	}
	if (ret) {
		snprintf(err, errlen, "cannot listen on %s port %s: %s%s", host, port,
			 strerror(-ret), ret == -EADDRINUSE ? " (port busy?)" : "");
		return ret;
	}
	return 0;
}

static int open_share(struct kb_srv *s, const char *share, char *err, size_t errlen)
{
	struct stat st;

	s->rootfd = open(share, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->rootfd < 0 || fstat(s->rootfd, &st)) {
		int e = errno;

		snprintf(err, errlen, "cannot use share %s: %s", share, strerror(e));
		return -e;
	}
	if (faccessat(s->rootfd, "", R_OK | X_OK, AT_EMPTY_PATH)) {
		int e = errno;

		snprintf(err, errlen, "cannot use share %s: %s", share, strerror(e));
		return -e;
	}
	s->root_dev = st.st_dev;
	s->root_ino = st.st_ino;
	s->share = strdup(share);
	return s->share ? 0 : -ENOMEM;
}

/* owners=preserve needs root (to take any caller's ids) and the server's
 * own ids to come back to; --allow-owners without them is an error, an
 * `owners` key without them is served as the server user. */
static int owners_init(struct kb_srv *s, char *err, size_t errlen)
{
	int ret = kb_srv_ids_init(&s->ids);

	s->can_owners = !ret && s->ids.uid == 0;
	if (s->allow_owners && !s->can_owners) {
		snprintf(err, errlen, "--allow-owners: %s",
			 ret ? "more than 64 supplementary groups" : "the server must run as root");
		return -EPERM;
	}
	return 0;
}

static uint64_t secs_ns(int v, int def)
{
	return (uint64_t)(v > 0 ? v : def) * 1000000000ull;
}

static void limits_init(struct kb_srv *s, const struct kb_srv_cfg *cfg)
{
	s->max_hs = cfg->max_handshakes ? cfg->max_handshakes : KB_SRV_MAX_HANDSHAKES;
	s->max_hs_addr = cfg->max_handshakes_per_addr ? cfg->max_handshakes_per_addr
						      : KB_SRV_MAX_HANDSHAKES_ADDR;
	s->hs_timeout_ms = (cfg->handshake_timeout_s > 0 ? cfg->handshake_timeout_s
							 : KB_SRV_HANDSHAKE_S) *
			   1000;
	s->max_conns_key = cfg->max_conns_per_key ? cfg->max_conns_per_key : KB_SRV_MAX_CONNS_KEY;
	s->hello_ns = secs_ns(cfg->hello_timeout_s, KB_SRV_HELLO_S);
	s->frame_ns = secs_ns(cfg->frame_timeout_s, KB_SRV_FRAME_S);
	s->idle_ns = cfg->idle_timeout_s < 0 ? 0 : secs_ns(cfg->idle_timeout_s, KB_SRV_IDLE_S);
	s->max_queued = cfg->max_queued ? cfg->max_queued : KB_SRV_MAX_QUEUED;
	kb_srv_fd_budget(s, cfg->max_fds_per_key, cfg->max_fds_per_session);
}

int kb_srv_new(struct kb_srv **out, const struct kb_srv_cfg *cfg, char *err, size_t errlen)
{
	struct kb_srv *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	s->rootfd = s->stop_pipe[0] = s->stop_pipe[1] = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->auth_lock, NULL);
	pthread_mutex_init(&s->lim_lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (kb_srv_dleases_init(&s->dleases)) {
		kb_srv_free(s);
		return -ENOMEM;
	}
	memcpy(s->priv, cfg->priv, KB_KEY_LEN);
	if (cfg->psk) {
		memcpy(s->psk, cfg->psk, sizeof(s->psk));
		s->have_psk = true;
	}
	s->read_only = cfg->read_only;
	s->authorized = cfg->authorized;
	s->backend = cfg->backend;
	s->nworkers = cfg->workers ? cfg->workers : 4;
	s->max_conns = cfg->max_conns ? cfg->max_conns : 256;
	s->log = cfg->log;
	s->log_arg = cfg->log_arg;
	s->grace_ns = cfg->session_grace_s < 0
			      ? 0
			      : (uint64_t)(cfg->session_grace_s ? cfg->session_grace_s
								: KB_SRV_DEFAULT_GRACE_S) *
					1000000000ull;
	s->max_sess = cfg->max_sessions ? cfg->max_sessions : 1024;
	s->max_sess_key = cfg->max_sessions_per_key ? cfg->max_sessions_per_key : 64;
	s->no_notify = cfg->no_notify;
	s->no_compress = cfg->no_compress;
	s->allow_owners = cfg->allow_owners;
	limits_init(s, cfg);
	ret = kb_x25519_pub(s->priv, s->pub);
	if (ret)
		snprintf(err, errlen, "bad server key");
	if (!ret)
		ret = owners_init(s, err, errlen);
	if (!ret)
		ret = open_share(s, cfg->share, err, errlen);
	if (!ret && pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK))
		ret = -errno;
	if (!ret && !cfg->no_listen)
		ret = do_listen(s, cfg->listen, err, errlen);
	if (ret) {
		kb_srv_free(s);
		return ret;
	}
	*out = s;
	return 0;
}

void kb_srv_set_log(struct kb_srv *s, void (*log)(void *arg, int prio, const char *line), void *arg)
{
	s->log = log;
	s->log_arg = arg;
}

const char *kb_srv_address(const struct kb_srv *s)
{
	return s->addr;
}

/* Once a second: free sessions past their grace period, apply the
 * connections' deadlines. Slow work (a session's teardown closes all its
 * fds) stays off the accept thread. */
static void *janitor_main(void *arg)
{
	struct kb_srv *s = arg;
	struct timespec dl;

	pthread_mutex_lock(&s->lock);
	clock_gettime(CLOCK_REALTIME, &dl);
	while (!s->janitor_stop) {
		struct timespec now;

		dl.tv_sec += 1;
		do { /* s->cond also says a connection went: sleep the second out */
			pthread_cond_timedwait(&s->cond, &s->lock, &dl);
			clock_gettime(CLOCK_REALTIME, &now);
		} while (!s->janitor_stop &&
			 (now.tv_sec < dl.tv_sec ||
			  (now.tv_sec == dl.tv_sec && now.tv_nsec < dl.tv_nsec)));
		if (s->janitor_stop)
			break;
		kb_srv_conns_deadlines(s, kb_now_ns());
		pthread_mutex_unlock(&s->lock);
		kb_srv_sess_expire(s, false);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void janitor_stop(struct kb_srv *s)
{
	pthread_mutex_lock(&s->lock);
	s->janitor_stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->janitor_on)
		pthread_join(s->janitor, NULL);
	s->janitor_on = false;
}

int kb_srv_start(struct kb_srv *s, char *err, size_t errlen)
{
	int ret = kb_noise_rng_new(&s->rng);

	if (!ret)
		ret = kb_bufpool_new(&s->small, KB_SRV_SMALL_FRAME + KB_FRAME_TAG, 256, 0);
	if (!ret)
		ret = kb_bufpool_new(&s->large, KB_FRAME_MAX_DEFAULT + KB_FRAME_TAG, 16, 0);
	if (!ret && !s->no_notify && kb_srv_notify_start(s, &s->notifier))
		kb_srv_logf(s, KB_SRV_LOG_ERR, "inotify unavailable: no change notifications");
	if (!ret)
		ret = -pthread_create(&s->janitor, NULL, janitor_main, s);
	if (!ret) {
		pthread_setname_np(s->janitor, "kbsrv-janitor");
		s->janitor_on = true;
		kb_srv_logf(s, KB_SRV_LOG_INFO,
			    "limits: %ld fds for nodes and handles "
			    "(RLIMIT_NOFILE %ld), %ld per key, %ld per session",
			    s->fd_all_max, s->nofile, s->fd_key_max, s->fd_sess_max);
	}
	if (ret)
		snprintf(err, errlen, "cannot start: %s", kb_strerror(ret));
	return ret;
}

static void accept_one(struct kb_srv *s, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct kb_net_opts o = {0};
	char peer[96], host[NI_MAXHOST];
	int fd;

	/* Handshakes cut to make room leave within moments; while too many are
	 * still leaving, new connections wait in the listen backlog. */
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < 10 && s->nevicted >= s->max_hs; i++) {
		struct timespec dl;

		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_nsec += 10000000;
		if (dl.tv_nsec >= 1000000000) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->cond, &s->lock, &dl);
	}
	fd = s->nevicted >= s->max_hs; /* still: leave it queued, look again */
	pthread_mutex_unlock(&s->lock);
	if (fd) {
		kb_srv_limit_log(s, KB_SRV_LIM_HS_FULL,
				 "handshake limit: %u handshakes still "
				 "being cut: accepting waits (--max-handshakes)",
				 s->max_hs);
		return;
	}
	fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
			usleep(100000); /* let connections go away */
		return;
	}
	kb_net_tune(fd, &o);
	/* A peer that takes no data for this long is gone (or hostile): its
	 * blocked send fails and the connection closes, freeing its workers. */
	kb_net_send_timeout(fd, SEND_TIMEOUT_MS);
	format_addr((struct sockaddr *)&ss, len, peer, sizeof(peer), host, sizeof(host));
	if (kb_srv_conn_spawn(s, fd, peer, host))
		kb_srv_logf(s, KB_SRV_LOG_ERR, "refused %s: cannot start a connection", peer);
}

/* Wait until every connection is gone; after the grace period, break the
 * sends of peers that do not read. */
static void drain(struct kb_srv *s)
{
	struct timespec dl;
	bool forced = false;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += STOP_GRACE_MS / 1000;
	kb_srv_stop(s); /* receivers watch the stop pipe */
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	kb_srv_conns_shutdown(s, false);
	while (s->nlisted > 0) {
		if (forced) {
			pthread_cond_wait(&s->cond, &s->lock);
		} else if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) == ETIMEDOUT) {
			kb_srv_conns_shutdown(s, true);
			forced = true;
		}
	}
	pthread_mutex_unlock(&s->lock);
	kb_srv_reap(s);
	kb_srv_sess_expire(s, true);
}

int kb_srv_run(struct kb_srv *s, int stop_fd)
{
	struct pollfd pf[KB_SRV_MAX_LISTEN + 2];
	int n = 0;

	for (int i = 0; i < s->nlfd; i++)
		pf[n++] = (struct pollfd){.fd = s->lfd[i], .events = POLLIN};
	pf[n++] = (struct pollfd){.fd = s->stop_pipe[0], .events = POLLIN};
	pf[n++] = (struct pollfd){.fd = stop_fd, .events = POLLIN};
	for (;;) {
		int rc = poll(pf, (nfds_t)n, 1000);

		if (rc < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[n - 1].revents || pf[n - 2].revents)
			break;
		for (int i = 0; i < s->nlfd; i++)
			if (pf[i].revents & POLLIN)
				accept_one(s, s->lfd[i]);
		kb_srv_reap(s);
	}
	for (int i = 0; i < s->nlfd; i++)
		close(s->lfd[i]);
	s->nlfd = 0;
	janitor_stop(s);
	drain(s);
	kb_srv_limit_totals(s);
	if (s->dleases.recalls)
		kb_srv_logf(s, KB_SRV_LOG_INFO,
			    "directory leases: %llu recalled, %llu not given back in time",
			    (unsigned long long)s->dleases.recalls,
			    (unsigned long long)s->dleases.revoked);
	return 0;
}

void kb_srv_stop(struct kb_srv *s)
{
	ssize_t r = write(s->stop_pipe[1], "x", 1);

	(void)r;
}

void kb_srv_free(struct kb_srv *s)
{
	if (!s)
		return;
	janitor_stop(s);
	kb_srv_reap(s);
	kb_srv_sess_expire(s, true); /* idle sessions (all connections are gone) */
	kb_srv_notify_stop(s->notifier);
	for (int i = 0; i < s->nlfd; i++)
		close(s->lfd[i]);
	if (s->rootfd >= 0)
		close(s->rootfd);
	for (int i = 0; i < 2; i++)
		if (s->stop_pipe[i] >= 0)
			close(s->stop_pipe[i]);
	kb_noise_rng_free(s->rng);
	kb_bufpool_free(s->small);
	kb_bufpool_free(s->large);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->auth_lock);
	pthread_mutex_destroy(&s->lim_lock);
	kb_srv_dleases_destroy(&s->dleases);
	while (s->keys) { /* none left referenced: sessions are gone */
		struct kb_srv_keyuse *ku = s->keys;

		s->keys = ku->next;
		free(ku);
	}
	free(s->share);
	kb_memzero(s->priv, sizeof(s->priv));
	kb_memzero(s->psk, sizeof(s->psk));
	free(s);
}
