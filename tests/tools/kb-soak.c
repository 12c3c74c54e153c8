/* kb-soak - load a keibifsd with many clients doing mixed work (rpc level).
 *
 *   kb-soak --port P --key CLIENT.key --peer SERVER.pub --seconds S
 *           [--clients 16] [--conns 4]
 *
 * Each client is one kb_rpc session of --conns connections with one worker
 * thread, which loops over: write a 256 KiB file in 64 KiB WRITEs (CREATE,
 * OPEN), read it back and compare, GETATTR, RENAME, UNLINK, MKDIR,
 * RMDIR; each client in its own directory c<N>/. Every second it prints
 * "t=S ops=N MiB=M errors=E"; at the end a total line with the latency of
 * the single requests (p50, p99, max). Exit 1 on errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "keys.h"
#include "rpc.h"
#include "util.h"

#define FILE_BYTES (256u << 10)
#define PIECE (64u << 10)
/* Latency histogram: bucket i holds [LAT_BASE_US * 1.1^i, ...). */
#define LAT_BUCKETS 160
#define LAT_BASE_US 10.0
static _Atomic uint64_t lat_hist[LAT_BUCKETS];
static _Atomic uint64_t lat_max_us;

static void lat_add(uint64_t us)
{
	double edge = LAT_BASE_US;
	unsigned i = 0;
	uint64_t m = atomic_load(&lat_max_us);

	while (i < LAT_BUCKETS - 1 && (double)us >= edge * 1.1) {
		edge *= 1.1;
		i++;
	}
	atomic_fetch_add(&lat_hist[i], 1);
	while (us > m && !atomic_compare_exchange_weak(&lat_max_us, &m, us))
		;
}

/* The upper edge of the bucket holding quantile q, in ms. */
static double lat_quantile(double q)
{
	uint64_t total = 0, seen = 0;
	double edge = LAT_BASE_US;

	for (unsigned i = 0; i < LAT_BUCKETS; i++)
		total += atomic_load(&lat_hist[i]);
	for (unsigned i = 0; i < LAT_BUCKETS; i++, edge *= 1.1) {
		seen += atomic_load(&lat_hist[i]);
		if (total && (double)seen >= q * (double)total)
			return edge * 1.1 / 1000.0;
	}
	return 0;
}

struct soak {
	const char *port;
	uint8_t priv[KB_KEY_LEN];
	struct kb_keyset *trust;
	unsigned conns;
	atomic_bool stop;
	_Atomic uint64_t ops, bytes, errors;
};

struct client {
	struct soak *sk;
	unsigned idx;
	pthread_t th;
};

static int call(struct kb_rpc *r, kb_Request *q, const void *bulk, size_t n, kb_Response *out)
{
	struct kb_rpc_result *res = kb_rpc_result_new();
	uint64_t t0 = kb_now_ns();
	int rc = res ? kb_rpc_call(r, q, bulk, n, res) : -ENOMEM;

	lat_add((kb_now_ns() - t0) / 1000);

	if (!rc && out)
		*out = res->resp;
	kb_rpc_result_free(res);
	return rc;
}

/* One round of mixed work in directory node d; 0 or the first error. */
static int round_once(struct soak *sk, struct kb_rpc *r, uint64_t d, unsigned n, uint8_t *buf,
		      uint8_t *back, kb_Response *resp)
{
	kb_Request q = kb_Request_init_zero;
	uint64_t node, fh;
	size_t got;
	int rc;

	for (size_t i = 0; i < FILE_BYTES; i++)
		buf[i] = (uint8_t)(i * 7 + n);
	q.op = kb_Op_CREATE;
	q.node = d;
	snprintf(q.name, sizeof(q.name), "f%u", n % 8);
	q.flags = O_CREAT | O_TRUNC | O_RDWR;
	q.mode = 0644;
	if ((rc = call(r, &q, NULL, 0, resp)))
		return rc;
	node = resp->entry.node;
	fh = resp->fh;
	for (size_t off = 0; off < FILE_BYTES; off += PIECE) {
		q = (kb_Request)kb_Request_init_zero;
		q.op = kb_Op_WRITE;
		q.node = node;
		q.fh = fh;
		q.offset = off;
		if ((rc = call(r, &q, buf + off, PIECE, NULL)))
			return rc;
	}
	rc = kb_rpc_release(r, node, fh, false);
	if (!rc)
		rc = kb_rpc_pread(r, node, 0, back, FILE_BYTES, 0, &got);
	if (!rc && (got != FILE_BYTES || memcmp(buf, back, FILE_BYTES)))
		rc = -EILSEQ;
	if (!rc) {
		kb_Attr a;

		rc = kb_rpc_getattr(r, node, &a);
	}
	atomic_fetch_add(&sk->bytes, 2 * FILE_BYTES);
	q = (kb_Request)kb_Request_init_zero;
	q.op = kb_Op_MKDIR;
	q.node = d;
	q.mode = 0755;
	snprintf(q.name, sizeof(q.name), "d%u", n);
	if (!rc)
		rc = call(r, &q, NULL, 0, resp);
	if (!rc) /* MKDIR counted a lookup of the new directory */
		kb_rpc_forget(r, resp->entry.node, 1);
	q.op = kb_Op_RMDIR;
	if (!rc)
		rc = call(r, &q, NULL, 0, NULL);
	q = (kb_Request)kb_Request_init_zero;
	q.op = kb_Op_RENAME;
	q.node = q.node2 = d;
	snprintf(q.name, sizeof(q.name), "f%u", n % 8);
	snprintf(q.name2, sizeof(q.name2), "g%u", n % 8);
	if (!rc)
		rc = call(r, &q, NULL, 0, NULL);
	q.op = kb_Op_UNLINK;
	snprintf(q.name, sizeof(q.name), "g%u", n % 8);
	if (!rc)
		rc = call(r, &q, NULL, 0, NULL);
	kb_rpc_forget(r, node, 1);
	return rc;
}

static void *client_main(void *arg)
{
	struct client *cl = arg;
	struct soak *sk = cl->sk;
	struct kb_rpc_cfg cfg = {.host = "127.0.0.1",
				 .port = sk->port,
				 .path = "/",
				 .conns = sk->conns,
				 .identity = sk->priv,
				 .trust = sk->trust,
				 .timeout_ms = 15000};
	uint8_t *buf = malloc(FILE_BYTES), *back = malloc(FILE_BYTES);
	kb_Response *resp = calloc(1, sizeof(*resp));
	kb_Request q = kb_Request_init_zero;
	struct kb_rpc *r = NULL;
	kb_Entry root;
	uint64_t dir;
	char err[512];
	bool ro;
	int rc = buf && back && resp ? kb_rpc_new(&r, &cfg, &root, &ro, err, sizeof(err)) : -ENOMEM;

	if (rc) {
		fprintf(stderr, "kb-soak: client %u: %s\n", cl->idx, err);
		atomic_fetch_add(&sk->errors, 1);
		goto out;
	}
	q.op = kb_Op_MKDIR;
	q.node = root.node;
	q.mode = 0755;
	snprintf(q.name, sizeof(q.name), "c%u", cl->idx);
	rc = call(r, &q, NULL, 0, resp);
	if (rc == -EEXIST)
		rc = kb_rpc_lookup(r, root.node, q.name, &resp->entry);
	dir = resp->entry.node; /* resp is reused by every round */
	for (unsigned n = 0; !rc && !atomic_load(&sk->stop); n++) {
		rc = round_once(sk, r, dir, n, buf, back, resp);
		atomic_fetch_add(&sk->ops, 14);
		if (rc) {
			fprintf(stderr, "kb-soak: client %u: %s\n", cl->idx, kb_strerror(rc));
			atomic_fetch_add(&sk->errors, 1);
			rc = 0; /* keep going: count errors */
		}
	}
out:
	kb_rpc_free(r);
	free(buf);
	free(back);
	free(resp);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"port", 1, NULL, 'p'},    {"key", 1, NULL, 'k'},     {"peer", 1, NULL, 'P'},
		{"seconds", 1, NULL, 's'}, {"clients", 1, NULL, 'c'}, {"conns", 1, NULL, 'n'},
		{NULL, 0, NULL, 0},
	};
	struct soak sk = {.conns = 4};
	const char *key = NULL, *peer = NULL;
	unsigned clients = 16, secs = 60;
	struct client *cl;
	uint8_t pub[KB_KEY_LEN];
	char err[512];
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p': sk.port = optarg; break;
		case 'k': key = optarg; break;
		case 'P': peer = optarg; break;
		case 's': secs = (unsigned)atoi(optarg); break;
		case 'c': clients = (unsigned)atoi(optarg); break;
		case 'n': sk.conns = (unsigned)atoi(optarg); break;
		default: return 2;
		}
	}
	if (!sk.port || !key || !peer || !clients || clients > 256) {
		fprintf(stderr, "usage: kb-soak --port P --key FILE --peer FILE.pub --seconds S "
				"[--clients N] [--conns N]\n");
		return 2;
	}
	if (kb_key_load_private(key, sk.priv, pub, err, sizeof(err)) ||
	    kb_keyset_load(&sk.trust, peer, err, sizeof(err))) {
		fprintf(stderr, "kb-soak: %s\n", err);
		return 2;
	}
	cl = calloc(clients, sizeof(*cl));
	for (unsigned i = 0; cl && i < clients; i++) {
		cl[i] = (struct client){.sk = &sk, .idx = i};
		pthread_create(&cl[i].th, NULL, client_main, &cl[i]);
	}
	for (unsigned t = 1; cl && t <= secs; t++) {
		sleep(1);
		printf("t=%u ops=%llu MiB=%llu errors=%llu\n", t,
		       (unsigned long long)atomic_load(&sk.ops),
		       (unsigned long long)(atomic_load(&sk.bytes) >> 20),
		       (unsigned long long)atomic_load(&sk.errors));
		fflush(stdout);
	}
	atomic_store(&sk.stop, true);
	for (unsigned i = 0; cl && i < clients; i++)
		pthread_join(cl[i].th, NULL);
	printf("total: clients=%u conns=%u seconds=%u ops=%llu MiB=%llu (%.1f MiB/s) errors=%llu "
	       "latency_ms p50<=%.2f p99<=%.2f max=%.2f\n",
	       clients, sk.conns, secs, (unsigned long long)atomic_load(&sk.ops),
	       (unsigned long long)(atomic_load(&sk.bytes) >> 20),
	       secs ? (double)(atomic_load(&sk.bytes) >> 20) / secs : 0.0,
	       (unsigned long long)atomic_load(&sk.errors), lat_quantile(0.5), lat_quantile(0.99),
	       (double)atomic_load(&lat_max_us) / 1000.0);
	free(cl);
	kb_keyset_free(sk.trust);
	kb_memzero(sk.priv, sizeof(sk.priv));
	return atomic_load(&sk.errors) ? 1 : 0;
}
