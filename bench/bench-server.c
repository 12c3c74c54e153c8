/* bench-server - the server driven by a protocol-level client over loopback.
 *
 *   bench-server [--size MiB] [--dir DIR] [--depth N]
 *
 * Runs keibifsd's core in-process (its own threads, a real TCP socket on
 * 127.0.0.1, the full Noise handshake and encrypted frames), writes a file
 * of --size MiB (default 1024) into a temp share, then measures READ
 * throughput with 1 and 4 connections and 1 MiB reads (--depth requests in
 * flight per connection, default 8) and the GETATTR round trip. One warm-up
 * pass is discarded. Prints a small table.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "noise.h"
#include "rpc.h"
#include "server.h"
#include "util.h"

#define CHUNK (1u << 20)

struct reader {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned inflight;
	uint64_t bytes;
	int errors;
};

static void read_done(void *arg, int status, struct kb_rpc_result *res)
{
	struct reader *rd = arg;

	pthread_mutex_lock(&rd->lock);
	rd->inflight--;
	if (status)
		rd->errors++;
	else
		rd->bytes += res->bulk_len;
	pthread_cond_signal(&rd->cond);
	pthread_mutex_unlock(&rd->lock);
}

/* Read the whole file once; returns GB/s or a negative value. */
static double read_pass(struct kb_rpc *r, uint64_t node, uint64_t size, unsigned conns,
			unsigned depth)
{
	struct reader rd = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
	uint64_t t0 = kb_now_ns(), off = 0;
	unsigned i = 0;

	while (off < size) {
		pthread_mutex_lock(&rd.lock);
		while (rd.inflight >= depth * conns)
			pthread_cond_wait(&rd.cond, &rd.lock);
		rd.inflight++;
		pthread_mutex_unlock(&rd.lock);
		if (kb_rpc_read_async(r, node, 0, off, CHUNK, (int)(i++ % conns), read_done, &rd))
			return -1;
		off += CHUNK;
	}
	pthread_mutex_lock(&rd.lock);
	while (rd.inflight)
		pthread_cond_wait(&rd.cond, &rd.lock);
	pthread_mutex_unlock(&rd.lock);
	if (rd.errors || rd.bytes != size)
		return -1;
	return (double)size / (double)(kb_now_ns() - t0);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int write_file(const char *path, uint64_t size)
{
	static uint8_t buf[CHUNK];
	uint64_t x = 88172645463325252ull;
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	for (size_t i = 0; i < sizeof(buf); i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, 8);
	}
	for (uint64_t done = 0; done < size; done += CHUNK) {
		buf[0]++;
		if (fwrite(buf, 1, CHUNK, f) != CHUNK) {
			fclose(f);
			return -EIO;
		}
	}
	return fclose(f) ? -errno : 0;
}

struct srv_env {
	struct kb_srv *srv;
	pthread_t th;
	struct kb_keyset *auth, *trust;
	uint8_t cpriv[32], cpub[32], spriv[32], spub[32];
	char port[16];
};

static void quiet(void *arg, int prio, const char *line)
{
	(void)arg;
	if (prio <= KB_SRV_LOG_ERR)
		fprintf(stderr, "keibifsd: %s\n", line);
}

static void *srv_main(void *arg)
{
	kb_srv_run(arg, -1);
	return NULL;
}

static int start_server(struct srv_env *e, const char *share)
{
	struct kb_noise_rng *rng = NULL;
	struct kb_srv_cfg cfg = {.share = share, .listen = "127.0.0.1:0", .log = quiet};
	char err[256];
	const char *colon;
	int rc = kb_noise_rng_new(&rng);

	if (!rc)
		rc = kb_x25519_keygen(rng, e->spriv, e->spub);
	if (!rc)
		rc = kb_x25519_keygen(rng, e->cpriv, e->cpub);
	kb_noise_rng_free(rng);
	if (!rc)
		rc = kb_keyset_new(&e->auth);
	if (!rc)
		rc = kb_keyset_add(e->auth, e->cpub, 0);
	if (!rc)
		rc = kb_keyset_new(&e->trust);
	if (!rc)
		rc = kb_keyset_add(e->trust, e->spub, 0);
	if (rc)
		return rc;
	cfg.priv = e->spriv;
	cfg.authorized = e->auth;
	if (kb_srv_new(&e->srv, &cfg, err, sizeof(err)) || kb_srv_start(e->srv, err, sizeof(err))) {
		fprintf(stderr, "bench-server: %s\n", err);
		return -1;
	}
	colon = strrchr(kb_srv_address(e->srv), ':');
	snprintf(e->port, sizeof(e->port), "%s", colon ? colon + 1 : "0");
	return -pthread_create(&e->th, NULL, srv_main, e->srv);
}

static int connect_rpc(struct srv_env *e, unsigned conns, struct kb_rpc **r, kb_Entry *root)
{
	struct kb_rpc_cfg cfg = {
		.host = "127.0.0.1",
		.port = e->port,
		.path = "/",
		.conns = conns,
		.identity = e->cpriv,
		.trust = e->trust,
		.timeout_ms = 30000,
	};
	char err[256];
	bool ro;
	int rc = kb_rpc_new(r, &cfg, root, &ro, err, sizeof(err));

	if (rc)
		fprintf(stderr, "bench-server: connect: %s\n", err);
	return rc;
}

static int bench_reads(struct srv_env *e, uint64_t size, unsigned depth)
{
	static const unsigned conns[] = {1, 4};

	for (size_t i = 0; i < KB_ARRAY_SIZE(conns); i++) {
		struct kb_rpc *r = NULL;
		kb_Entry root, f;
		double gbs = 0, best = 0;

		if (connect_rpc(e, conns[i], &r, &root) || kb_rpc_lookup(r, root.node, "big", &f))
			return -1;
		for (int pass = 0; pass < 3; pass++) { /* pass 0: warm-up */
			gbs = read_pass(r, f.node, size, conns[i], depth);
			if (gbs < 0) {
				fprintf(stderr, "bench-server: read pass failed\n");
				kb_rpc_free(r);
				return -1;
			}
			if (pass && gbs > best)
				best = gbs;
		}
		printf("%-40s %8.2f GB/s\n",
		       conns[i] == 1 ? "READ 1 MiB x 1 conn" : "READ 1 MiB x 4 conns", best);
		kb_rpc_free(r);
	}
	return 0;
}

static int bench_getattr(struct srv_env *e)
{
	enum {
		N = 5000
	};
	static uint64_t lat[N];
	struct kb_rpc *r = NULL;
	kb_Entry root;
	kb_Attr a;
	uint64_t sum = 0;

	if (connect_rpc(e, 1, &r, &root))
		return -1;
	for (int i = 0; i < 200; i++)
		kb_rpc_getattr(r, root.node, &a);
	for (int i = 0; i < N; i++) {
		uint64_t t0 = kb_now_ns();

		if (kb_rpc_getattr(r, root.node, &a)) {
			kb_rpc_free(r);
			return -1;
		}
		lat[i] = kb_now_ns() - t0;
		sum += lat[i];
	}
	kb_rpc_free(r);
	qsort(lat, N, sizeof(lat[0]), cmp_u64);
	printf("%-40s %8.1f us (p50 %.1f, p99 %.1f)\n", "GETATTR round trip (mean)",
	       (double)sum / N / 1000.0, lat[N / 2] / 1000.0, lat[N * 99 / 100] / 1000.0);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"size", 1, NULL, 's'},
		{"dir", 1, NULL, 'd'},
		{"depth", 1, NULL, 'D'},
		{NULL, 0, NULL, 0},
	};
	struct srv_env e = {0};
	uint64_t size = 1024ull << 20;
	unsigned depth = 8;
	const char *base = "/tmp";
	char dir[4096], path[4200];
	int c, ret = 1;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 's')
			size = strtoull(optarg, NULL, 10) << 20;
		else if (c == 'd')
			base = optarg;
		else if (c == 'D')
			depth = (unsigned)atoi(optarg);
		else
			return 2;
	}
	if (!size || !depth)
		return 2;
	snprintf(dir, sizeof(dir), "%s/bench-server.XXXXXX", base);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/big", dir);
	if (write_file(path, size) || start_server(&e, dir))
		goto out;
	printf("bench-server: keibifsd core over loopback, %llu MiB file, depth %u\n",
	       (unsigned long long)(size >> 20), depth);
	if (bench_reads(&e, size, depth) || bench_getattr(&e))
		goto out;
	ret = 0;
out:
	if (e.srv) {
		kb_srv_stop(e.srv);
		pthread_join(e.th, NULL);
		kb_srv_free(e.srv);
	}
	kb_keyset_free(e.auth);
	kb_keyset_free(e.trust);
	unlink(path);
	rmdir(dir);
	return ret;
}
