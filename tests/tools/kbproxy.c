/* kbproxy.c - fault-injecting TCP proxy for tests and benchmarks.
 *
 *   kbproxy --listen PORT --to HOST:PORT [--delay-ms D] [--rate-mbps R]
 *           [--link-mbps L] [--drop-first N] [--pidfile F]
 *
 * Each accepted connection is forwarded to the target by two pump threads
 * (one per direction). A reader thread per direction queues chunks stamped
 * with their arrival time; the writer sends each chunk D ms after arrival
 * (one-way delay: the round trip grows by 2*D) and paces to R megabits/s.
 * --link-mbps models one shared link instead: L megabits/s per direction
 * for all connections together, and at most L*D + 256 KiB queued per
 * direction (what is on the wire plus a router's buffer; the sockets'
 * receive buffers are kept at 256 KiB), so that senders meet the link's
 * pace through TCP flow control, as over a real slow link, instead of
 * filling the proxy's memory at loopback speed.
 * --drop-first N closes the first N connections it accepts at once, as a
 * server cutting handshakes under a flood would.
 * Runtime faults, by signal (tests send them by PID):
 *   SIGUSR1  cut every open connection now (mid-frame, both sides see RST/EOF)
 *   SIGUSR2  toggle stall: stop forwarding (connections stay open) / resume
 *   SIGHUP   flip one bit in the next chunk forwarded server -> client
 * It prints "kbproxy: ready" when listening. SIGTERM exits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define QUEUE_MAX 1024 /* chunks queued per direction (64 MiB) */
#define MAX_CONNS 256

struct chunk {
	uint64_t due_ns;
	size_t len;
	char data[CHUNK];
};

struct pipe_dir {
	int from, to;
	bool to_client; /* server -> client direction */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct chunk *q[QUEUE_MAX]; /* ring of owned chunks (lock) */
	unsigned head, count;       /* (lock) */
	bool eof;                   /* reader finished (lock) */
};

struct conn {
	int cfd, sfd;
	struct pipe_dir up, down;
	atomic_int live_threads;
};

static struct {
	long delay_ns;
	double rate_bps;   /* bytes per second; 0 = unlimited */
	double link_bps;   /* --link-mbps in bytes per second; 0 = no shared link */
	size_t link_queue; /* bytes queued per direction at most (link) */
	pthread_mutex_t link_lock;
	pthread_cond_t link_cond;
	uint64_t link_free_ns[2]; /* per direction: when the link is free (link_lock) */
	size_t link_queued[2];    /* per direction: bytes queued (link_lock) */
	atomic_bool stall, flip;
	pthread_mutex_t lock;
	struct conn *conns[MAX_CONNS]; /* (lock) */
} g;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	uint64_t n = now_ns();

	if (t > n) {
		struct timespec ts = {(time_t)((t - n) / 1000000000ull),
				      (long)((t - n) % 1000000000ull)};

		nanosleep(&ts, NULL);
	}
}

/* Shared link: wait for room in the direction's queue, take it. */
static void link_enqueue(bool dir, size_t n)
{
	pthread_mutex_lock(&g.link_lock);
	while (g.link_queued[dir] && g.link_queued[dir] + n > g.link_queue)
		pthread_cond_wait(&g.link_cond, &g.link_lock);
	g.link_queued[dir] += n;
	pthread_mutex_unlock(&g.link_lock);
}

static void link_dequeue(bool dir, size_t n)
{
	pthread_mutex_lock(&g.link_lock);
	g.link_queued[dir] -= n;
	pthread_cond_broadcast(&g.link_cond);
	pthread_mutex_unlock(&g.link_lock);
}

/* Shared link: the time slot for n bytes; returns when it ends. */
static void link_pace(bool dir, size_t n)
{
	uint64_t now = now_ns(), end;

	pthread_mutex_lock(&g.link_lock);
	if (g.link_free_ns[dir] < now)
		g.link_free_ns[dir] = now;
	g.link_free_ns[dir] += (uint64_t)((double)n / g.link_bps * 1e9);
	end = g.link_free_ns[dir];
	pthread_mutex_unlock(&g.link_lock);
	sleep_until(end);
}

static void *reader(void *arg)
{
	struct pipe_dir *d = arg;

	for (;;) {
		struct chunk *c = malloc(sizeof(*c));
		ssize_t n;

		if (!c)
			break;
		n = read(d->from, c->data, CHUNK);
		if (n <= 0) {
			free(c);
			break;
		}
		c->len = (size_t)n;
		if (g.link_bps > 0)
			link_enqueue(d->to_client, c->len);
		c->due_ns = now_ns() + (uint64_t)g.delay_ns;
		pthread_mutex_lock(&d->lock);
		while (d->count == QUEUE_MAX)
			pthread_cond_wait(&d->cond, &d->lock);
		d->q[(d->head + d->count++) % QUEUE_MAX] = c;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
	pthread_mutex_lock(&d->lock);
	d->eof = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

static int send_chunk(struct pipe_dir *d, struct chunk *c)
{
	size_t off = 0;

	while (atomic_load(&g.stall))
		usleep(10000);
	if (d->to_client && atomic_exchange(&g.flip, false))
		c->data[c->len / 2] ^= 0x04;
	while (off < c->len) {
		size_t n = c->len - off;
		ssize_t w;

		if ((g.rate_bps > 0 || g.link_bps > 0) && n > 16384)
			n = 16384;
		if (g.link_bps > 0)
			link_pace(d->to_client, n);
		w = send(d->to, c->data + off, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		off += (size_t)w;
		if (g.rate_bps > 0)
			sleep_until(now_ns() + (uint64_t)((double)w / g.rate_bps * 1e9));
	}
	if (g.link_bps > 0)
		link_dequeue(d->to_client, c->len);
	return 0;
}

static void *writer(void *arg)
{
	struct pipe_dir *d = arg;

	for (;;) {
		struct chunk *c;

		pthread_mutex_lock(&d->lock);
		while (d->count == 0 && !d->eof)
			pthread_cond_wait(&d->cond, &d->lock);
		if (d->count == 0) {
			pthread_mutex_unlock(&d->lock);
			break;
		}
		c = d->q[d->head];
		d->head = (d->head + 1) % QUEUE_MAX;
		d->count--;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		sleep_until(c->due_ns);
		if (send_chunk(d, c) < 0) {
			free(c);
			shutdown(d->from, SHUT_RDWR);
			break;
		}
		free(c);
	}
	shutdown(d->to, SHUT_WR);
	return NULL;
}

static void dir_init(struct pipe_dir *d, int from, int to, bool to_client)
{
	memset(d, 0, sizeof(*d));
	d->from = from;
	d->to = to;
	d->to_client = to_client;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	pthread_t t[4];

	pthread_create(&t[0], NULL, reader, &c->up);
	pthread_create(&t[1], NULL, writer, &c->up);
	pthread_create(&t[2], NULL, reader, &c->down);
	pthread_create(&t[3], NULL, writer, &c->down);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	pthread_mutex_lock(&g.lock);
	for (int i = 0; i < MAX_CONNS; i++)
		if (g.conns[i] == c)
			g.conns[i] = NULL;
	pthread_mutex_unlock(&g.lock);
	close(c->cfd);
	close(c->sfd);
	while (c->up.count)
		free(c->up.q[(c->up.head + --c->up.count) % QUEUE_MAX]);
	while (c->down.count)
		free(c->down.q[(c->down.head + --c->down.count) % QUEUE_MAX]);
	free(c);
	return NULL;
}

static void cut_all(void)
{
	pthread_mutex_lock(&g.lock);
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *c = g.conns[i];

		if (!c)
			continue;
		/* RST both sides: linger 0 then shutdown */
		struct linger l = {1, 0};

		setsockopt(c->cfd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		setsockopt(c->sfd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		shutdown(c->cfd, SHUT_RDWR);
		shutdown(c->sfd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&g.lock);
}

static int connect_to(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	int fd = -1;

	if (getaddrinfo(host, port, &hints, &res))
		return -1;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM, 0);
		if (fd >= 0 && !connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;

	for (;;) {
		int sig;

		if (sigwait(set, &sig))
			continue;
		if (sig == SIGUSR1) {
			fprintf(stderr, "kbproxy: cutting all connections\n");
			cut_all();
		} else if (sig == SIGUSR2) {
			bool s = !atomic_load(&g.stall);

			atomic_store(&g.stall, s);
			fprintf(stderr, "kbproxy: %s\n", s ? "stalled" : "resumed");
		} else if (sig == SIGHUP) {
			atomic_store(&g.flip, true);
			fprintf(stderr, "kbproxy: flipping a bit in the next reply chunk\n");
		} else {
			exit(0);
		}
	}
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: kbproxy --listen PORT --to HOST:PORT [--delay-ms D] "
			"[--rate-mbps R] [--link-mbps L] [--pidfile F]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", 1, 0, 'l'},     {"to", 1, 0, 't'},      {"delay-ms", 1, 0, 'd'},
		{"rate-mbps", 1, 0, 'r'},  {"pidfile", 1, 0, 'p'}, {"link-mbps", 1, 0, 'L'},
		{"drop-first", 1, 0, 'D'}, {0, 0, 0, 0},
	};
	char *to = NULL, *host, *port, *colon;
	int lport = 0, lfd, one = 1, c, drop = 0;
	struct sockaddr_in a = {.sin_family = AF_INET};
	static sigset_t set;
	pthread_t st;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': lport = atoi(optarg); break;
		case 't': to = optarg; break;
		case 'd': g.delay_ns = atol(optarg) * 1000000L; break;
		case 'r': g.rate_bps = atof(optarg) * 1e6 / 8; break;
		case 'L': g.link_bps = atof(optarg) * 1e6 / 8; break;
		case 'D': drop = atoi(optarg); break;
		case 'p': {
			FILE *f = fopen(optarg, "w");

			if (f) {
				fprintf(f, "%d\n", (int)getpid());
				fclose(f);
			}
			break;
		}
		default: usage();
		}
	}
	if (!to || !lport || !(colon = strrchr(to, ':')))
		usage();
	*colon = '\0';
	host = to;
	port = colon + 1;
	pthread_mutex_init(&g.lock, NULL);
	pthread_mutex_init(&g.link_lock, NULL);
	pthread_cond_init(&g.link_cond, NULL);
	g.link_queue = (size_t)(g.link_bps * (double)g.delay_ns / 1e9) + (256u << 10);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_create(&st, NULL, signal_thread, &set);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)lport);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 64)) {
		perror("kbproxy: listen");
		return 1;
	}
	fprintf(stderr, "kbproxy: ready on 127.0.0.1:%d -> %s:%s\n", lport, host, port);
	for (;;) {
		int cfd = accept(lfd, NULL, NULL), sfd;
		struct conn *cn;
		pthread_t t;

		if (cfd < 0)
			continue;
		if (drop > 0) {
			drop--;
			fprintf(stderr, "kbproxy: dropped a new connection\n");
			close(cfd);
			continue;
		}
		sfd = connect_to(host, port);
		if (sfd < 0) {
			close(cfd);
			continue;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (g.link_bps > 0) {
			int rb = 256 << 10;

			setsockopt(cfd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
			setsockopt(sfd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
		}
		cn = calloc(1, sizeof(*cn));
		if (!cn) {
			close(cfd);
			close(sfd);
			continue;
		}
		cn->cfd = cfd;
		cn->sfd = sfd;
		dir_init(&cn->up, cfd, sfd, false);
		dir_init(&cn->down, sfd, cfd, true);
		pthread_mutex_lock(&g.lock);
		for (int i = 0; i < MAX_CONNS; i++)
			if (!g.conns[i]) {
				g.conns[i] = cn;
				break;
			}
		pthread_mutex_unlock(&g.lock);
		pthread_create(&t, NULL, conn_main, cn);
		pthread_detach(t);
	}
}
