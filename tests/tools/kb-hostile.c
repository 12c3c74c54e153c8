/* kb-hostile - a hostile load on a keibifsd, for scripts/soak-hostile.sh.
 *
 *   kb-hostile --port P --key ATTACKER.key --peer SERVER.pub --seconds S [--halfopen N]
 *              [--slowloris N] [--nonreader N] [--nodehog DIR]
 *
 * All at once, for S seconds, each redone as soon as the server cuts it:
 *   --halfopen N   N TCP connections that send nothing (sources 127.0.1.x,
 *                  a few from 127.0.0.1, the honest clients' address);
 *   --slowloris N  N connections sending the handshake's first message one
 *                  byte every 2 s (sources 127.0.2.x), and N/8 authenticated
 *                  ones that send one byte of a frame every 2 s;
 *   --nonreader N  N sessions that send 4 MiB READs of /big, then 4 MiB
 *                  WRITEs to a file of their own, and never read a byte
 *                  of the replies;
 *   --nodehog DIR  one session that looks up DIR/h<i> (1 .. 1e6) until
 *                  refused, then holds its nodes.
 * Every 10 s: one line of counters. The key must be authorized.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "chan.h"
#include "err.h"
#include "keys.h"
#include "noise.h"
#include "raw_chan.h"
#include "rpc.h"
#include "util.h"
#include "wire.h"

static struct {
	uint16_t port;
	const char *port_str;
	uint8_t priv[KB_KEY_LEN];
	struct kb_keyset *trust; /* the server's key (for the rpc client) */
	atomic_bool stop;
	_Atomic uint64_t opened, cut, loris_cut, auth_loris_cut, nonreader_cut, nodes;
	atomic_int nodehog_err;
} H;

static int tcp_from(const char *src, int rcvbuf)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(H.port)};
	struct sockaddr_in b = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	inet_pton(AF_INET, src, &b.sin_addr);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (bind(fd, (struct sockaddr *)&b, sizeof(b)) ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	atomic_fetch_add(&H.opened, 1);
	return fd;
}

/* fds[i] closed by the server (EOF or error) */
static bool gone(int fd)
{
	char b[512];
	ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);

	return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static void nap_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

/* Silent connections (and slow handshakes with `loris`): a poll loop. */
struct pool {
	int n;
	bool loris;
};

static void *pool_main(void *arg)
{
	struct pool *p = arg;
	int *fds = calloc((size_t)p->n, sizeof(int));
	char src[32];
	uint64_t last_byte = 0;

	for (int i = 0; fds && i < p->n; i++)
		fds[i] = -1;
	while (fds && !atomic_load(&H.stop)) {
		uint64_t now = kb_now_ns();
		bool drip = p->loris && now - last_byte > 2000000000ull;

		for (int i = 0; i < p->n; i++) {
			if (fds[i] >= 0 && gone(fds[i])) {
				close(fds[i]);
				fds[i] = -1;
				atomic_fetch_add(p->loris ? &H.loris_cut : &H.cut, 1);
			}
			if (fds[i] < 0) {
				if (p->loris)
					snprintf(src, sizeof(src), "127.0.2.%d", 2 + i % 32);
				else if (i % 40 == 0)
					snprintf(src, sizeof(src), "127.0.0.1");
				else
					snprintf(src, sizeof(src), "127.0.1.%d", 2 + i % 64);
				fds[i] = tcp_from(src, 0);
			} else if (drip) { /* Noise message 1 is 2 + 32 bytes: never done */
				if (send(fds[i], "\0", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
					close(fds[i]);
					fds[i] = -1;
				}
			}
		}
		if (drip)
			last_byte = now;
		nap_ms(100);
	}
	for (int i = 0; fds && i < p->n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	return NULL;
}

static int raw_conn(int rcvbuf, struct kb_chan **out)
{
	struct timeval tv = {.tv_sec = 30};
	int fd = tcp_from("127.0.3.1", rcvbuf);

	if (fd < 0)
		return -ECONNREFUSED;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return kb_rawchan_handshake(fd, H.priv, 10000, out, NULL);
}

static int raw_call(struct kb_chan *c, const kb_Request *q, kb_Response *resp)
{
	static __thread uint8_t buf[KB_FRAME_HEAD + 65536 + KB_FRAME_TAG];
	const uint8_t *bulk;
	size_t plen, blen;
	int ret = kb_rawchan_send_req(c, q);

	if (!ret)
		ret = kb_chan_recv(c, buf, sizeof(buf), &plen);
	if (!ret)
		ret = kb_wire_decode_resp(buf, plen, resp, &bulk, &blen);
	return ret ? ret : resp->err ? -EIO : 0;
}

/* HELLO, then LOOKUP of name under the root (0 = just HELLO): its node. */
static int hello_lookup(struct kb_chan *c, const char *dir, const char *name, uint64_t *node)
{
	static __thread kb_Response resp;
	kb_Request q = {.id = 1, .op = kb_Op_HELLO, .version = 1};
	int ret;

	snprintf(q.path, sizeof(q.path), "%s", dir);
	ret = raw_call(c, &q, &resp);
	*node = resp.entry.node;
	if (ret || !name)
		return ret;
	q = (kb_Request){.id = 2, .op = kb_Op_LOOKUP, .node = *node};
	snprintf(q.name, sizeof(q.name), "%s", name);
	ret = raw_call(c, &q, &resp);
	*node = resp.entry.node;
	return ret;
}

/* Wait until the server closes c, we stop, or 40 s pass (a server that
 * cut us while its data fills our window cannot send its FIN). */
static void until_cut(struct kb_chan *c)
{
	struct pollfd pf = {.fd = kb_chan_fd(c), .events = POLLRDHUP};

	for (int i = 0; i < 200 && !atomic_load(&H.stop); i++) /* never reads a byte */
		if (poll(&pf, 1, 200) == 1 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR)))
			return;
}

/* A file of our own to write to: its node and handle. */
static int open_own(struct kb_chan *c, uint64_t root, unsigned idx, uint64_t *node, uint64_t *fh)
{
	static __thread kb_Response resp;
	kb_Request q = {
		.id = 3, .op = kb_Op_CREATE, .node = root, .flags = O_RDWR | O_CREAT, .mode = 0644};
	int ret;

	snprintf(q.name, sizeof(q.name), "nonreader%u", idx);
	ret = raw_call(c, &q, &resp);
	*node = resp.entry.node;
	*fh = resp.fh;
	return ret;
}

/* WRITE of 4 MiB (the data is whatever the buffer holds). */
static int send_write(struct kb_chan *c, uint64_t id, uint64_t node, uint64_t fh)
{
	static __thread uint8_t *f;
	kb_Request q = {.id = id, .op = kb_Op_WRITE, .node = node, .fh = fh};
	size_t len = 0;
	int ret;

	if (!f && !(f = calloc(1, KB_FRAME_HEAD + KB_FRAME_MAX_DEFAULT + KB_FRAME_TAG)))
		return -ENOMEM;
	ret = kb_wire_encode_req(f + KB_FRAME_HEAD, 4096, &q, &len);
	return ret ? ret : kb_chan_send(c, f, len + (4u << 20));
}

static void *nonreader_main(void *arg)
{
	unsigned idx = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&H.stop)) {
		struct kb_chan *c = NULL;
		struct timeval tv = {.tv_sec = 2};
		static __thread kb_Response resp;
		kb_Request q = {.id = 2, .op = kb_Op_LOOKUP};
		uint64_t root = 0, node, wnode, wfh;

		snprintf(q.name, sizeof(q.name), "big");
		if (raw_conn(4096, &c) || hello_lookup(c, "/", NULL, &root) ||
		    (q.node = root, raw_call(c, &q, &resp)) ||
		    open_own(c, root, idx, &wnode, &wfh)) {
			kb_chan_free(c);
			nap_ms(500);
			continue;
		}
		node = resp.entry.node;
		/* our sends give up when the server stops reading */
		setsockopt(kb_chan_fd(c), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		for (int i = 0; i < 16; i++) {
			kb_Request rd = {.id = 10 + (uint64_t)i,
					 .op = kb_Op_READ,
					 .node = node,
					 .offset = (uint64_t)(i % 4) << 22,
					 .length = 4u << 20};

			if (kb_rawchan_send_req(c, &rd))
				break;
		}
		for (int i = 0; i < 32; i++)
			if (send_write(c, 100 + (uint64_t)i, wnode, wfh))
				break;
		until_cut(c);
		if (!atomic_load(&H.stop))
			atomic_fetch_add(&H.nonreader_cut, 1); /* rounds; the server counts cuts */
		kb_chan_free(c);
	}
	return NULL;
}

/* Authenticated slow loris: one byte of a frame every 2 s. */
static void *authloris_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&H.stop)) {
		struct kb_chan *c = NULL;
		uint64_t node;
		bool cut = false;

		if (raw_conn(0, &c) || hello_lookup(c, "/", NULL, &node)) {
			kb_chan_free(c);
			nap_ms(500);
			continue;
		}
		for (int i = 0; i < 64 && !cut && !atomic_load(&H.stop); i++) {
			if (send(kb_chan_fd(c), "\0", 1, MSG_NOSIGNAL) != 1)
				cut = true;
			for (int t = 0; t < 10 && !cut && !atomic_load(&H.stop); t++) {
				nap_ms(200);
				cut = gone(kb_chan_fd(c));
			}
		}
		if (cut)
			atomic_fetch_add(&H.auth_loris_cut, 1);
		kb_chan_free(c);
	}
	return NULL;
}

static void *nodehog_main(void *arg)
{
	const char *dir = arg;
	struct kb_rpc_cfg cfg = {.host = "127.0.0.1",
				 .port = H.port_str,
				 .path = dir,
				 .conns = 1,
				 .identity = H.priv,
				 .timeout_ms = 15000,
				 .trust = H.trust};
	struct kb_rpc *r = NULL;
	kb_Entry root, e;
	char err[256], name[32];
	bool ro;
	int ret;

	ret = kb_rpc_new(&r, &cfg, &root, &ro, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "kb-hostile: nodehog: %s\n", err);
		return NULL;
	}
	for (unsigned i = 1; i <= 1000000 && !atomic_load(&H.stop); i++) {
		snprintf(name, sizeof(name), "h%u", i);
		ret = kb_rpc_lookup(r, root.node, name, &e);
		if (ret) {
			atomic_store(&H.nodehog_err, -ret);
			break;
		}
		atomic_fetch_add(&H.nodes, 1);
	}
	while (!atomic_load(&H.stop)) /* hold them */
		nap_ms(200);
	kb_rpc_free(r);
	return NULL;
}

static void report(unsigned t)
{
	int e = atomic_load(&H.nodehog_err);

	printf("t=%u hostile: tcp_opened=%llu silent_cut=%llu loris_cut=%llu "
	       "auth_loris_cut=%llu nonreader_rounds=%llu nodehog_nodes=%llu nodehog_refused=%s\n",
	       t, (unsigned long long)atomic_load(&H.opened),
	       (unsigned long long)atomic_load(&H.cut),
	       (unsigned long long)atomic_load(&H.loris_cut),
	       (unsigned long long)atomic_load(&H.auth_loris_cut),
	       (unsigned long long)atomic_load(&H.nonreader_cut),
	       (unsigned long long)atomic_load(&H.nodes), e ? strerror(e) : "no");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"port", 1, NULL, 'p'},      {"key", 1, NULL, 'k'},
		{"seconds", 1, NULL, 's'},   {"peer", 1, NULL, 'P'},
		{"halfopen", 1, NULL, 'h'},  {"slowloris", 1, NULL, 'l'},
		{"nonreader", 1, NULL, 'n'}, {"nodehog", 1, NULL, 'd'},
		{NULL, 0, NULL, 0},
	};
	const char *key = NULL, *hogdir = NULL, *peer = NULL;
	unsigned secs = 60, nonreaders = 0;
	struct pool half = {0}, loris = {.loris = true};
	pthread_t th[64];
	int nth = 0, c;
	uint8_t pub[KB_KEY_LEN];
	char err[256];

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			H.port_str = optarg;
			H.port = (uint16_t)atoi(optarg);
			break;
		case 'k': key = optarg; break;
		case 'P': peer = optarg; break;
		case 's': secs = (unsigned)atoi(optarg); break;
		case 'h': half.n = atoi(optarg); break;
		case 'l': loris.n = atoi(optarg); break;
		case 'n': nonreaders = (unsigned)atoi(optarg); break;
		case 'd': hogdir = optarg; break;
		default: return 2;
		}
	}
	if (!H.port || !key || !peer || nonreaders > 16) {
		fprintf(stderr,
			"usage: kb-hostile --port P --key FILE --peer FILE.pub --seconds S "
			"[--halfopen N] [--slowloris N] [--nonreader N<=16] [--nodehog DIR]\n");
		return 2;
	}
	if (kb_key_load_private(key, H.priv, pub, err, sizeof(err)) ||
	    kb_keyset_load(&H.trust, peer, err, sizeof(err))) {
		fprintf(stderr, "kb-hostile: %s\n", err);
		return 2;
	}
	if (half.n > 0)
		pthread_create(&th[nth++], NULL, pool_main, &half);
	if (loris.n > 0) {
		pthread_create(&th[nth++], NULL, pool_main, &loris);
		for (int i = 0; i < loris.n / 8 && nth < 40; i++)
			pthread_create(&th[nth++], NULL, authloris_main, NULL);
	}
	for (unsigned i = 0; i < nonreaders; i++)
		pthread_create(&th[nth++], NULL, nonreader_main, (void *)(uintptr_t)i);
	if (hogdir)
		pthread_create(&th[nth++], NULL, nodehog_main, (void *)hogdir);
	for (unsigned t = 1; t <= secs; t++) {
		sleep(1);
		if (t % 10 == 0 || t == secs)
			report(t);
	}
	atomic_store(&H.stop, true);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	kb_keyset_free(H.trust);
	kb_memzero(H.priv, sizeof(H.priv));
	return 0;
}
