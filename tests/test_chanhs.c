/* test_chanhs.c - kb_chan_handshake over socketpairs: XX and XXpsk3, key
 * refusal on either side, version negotiation, garbage, truncation and
 * timeouts. The responder runs in a thread. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "err.h"
#include "noise.h"
#include "util.h"

struct id {
	uint8_t priv[32], pub[32];
};

struct peer {
	int fd;
	struct kb_chan_cfg cfg;
	struct kb_chan_info info;
	struct kb_chan *c;
	int rc;
	const uint8_t *trust; /* the one key verify accepts; NULL = any */
	int verified;         /* how often verify ran */
	pthread_t t;
};

static struct kb_noise_rng *rng;
static struct id cli_id, srv_id;

static void setup(void)
{
	ck_assert_int_eq(kb_noise_rng_new(&rng), 0);
	ck_assert_int_eq(kb_x25519_keygen(rng, cli_id.priv, cli_id.pub), 0);
	ck_assert_int_eq(kb_x25519_keygen(rng, srv_id.priv, srv_id.pub), 0);
}

static void teardown(void)
{
	kb_noise_rng_free(rng);
}

static int verify(void *arg, const uint8_t rs[static 32], unsigned *flags)
{
	struct peer *p = arg;

	p->verified++;
	if (p->trust && memcmp(p->trust, rs, 32))
		return -KB_EUNTRUSTED;
	*flags = 7;
	return 0;
}

static void peer_init(struct peer *p, int fd, bool initiator, const struct id *me,
		      const uint8_t *trust)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->trust = trust;
	p->cfg = (struct kb_chan_cfg){
		.initiator = initiator,
		.s = me->priv,
		.rng = rng,
		.timeout_ms = 5000,
		.verify = verify,
		.verify_arg = p,
		.caps = initiator ? 0x0f : 0x3c,
	};
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;

	p->rc = kb_chan_handshake(&p->c, p->fd, &p->cfg, &p->info);
	return NULL;
}

/* A client and a server on a socketpair; the server in a thread. */
static void pair_init(struct peer *cl, struct peer *sv, const uint8_t *cl_trust,
		      const uint8_t *sv_trust)
{
	int fds[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	peer_init(cl, fds[0], true, &cli_id, cl_trust);
	peer_init(sv, fds[1], false, &srv_id, sv_trust);
}

static void pair_run(struct peer *cl, struct peer *sv)
{
	ck_assert_int_eq(pthread_create(&sv->t, NULL, peer_main, sv), 0);
	peer_main(cl);
	pthread_join(sv->t, NULL);
}

static void pair_free(struct peer *cl, struct peer *sv)
{
	kb_chan_free(cl->c);
	kb_chan_free(sv->c);
}

/* Frames both ways over an established pair. */
static void exchange(struct peer *cl, struct peer *sv)
{
	uint8_t f[KB_FRAME_HEAD + 5 + KB_FRAME_TAG], buf[64];
	size_t plen;

	memcpy(f + KB_FRAME_HEAD, "hello", 5);
	ck_assert_int_eq(kb_chan_send(cl->c, f, 5), 0);
	ck_assert_int_eq(kb_chan_recv(sv->c, buf, sizeof(buf), &plen), 0);
	ck_assert_uint_eq(plen, 5);
	ck_assert_mem_eq(buf, "hello", 5);
	memcpy(f + KB_FRAME_HEAD, "world", 5);
	ck_assert_int_eq(kb_chan_send(sv->c, f, 5), 0);
	ck_assert_int_eq(kb_chan_recv(cl->c, buf, sizeof(buf), &plen), 0);
	ck_assert_mem_eq(buf, "world", 5);
}

static void check_ok(struct peer *cl, struct peer *sv)
{
	ck_assert_int_eq(cl->rc, 0);
	ck_assert_int_eq(sv->rc, 0);
	ck_assert(cl->info.have_remote_static && sv->info.have_remote_static);
	ck_assert_mem_eq(cl->info.remote_static, srv_id.pub, 32);
	ck_assert_mem_eq(sv->info.remote_static, cli_id.pub, 32);
	ck_assert_mem_eq(cl->info.hash, sv->info.hash, 32);
	ck_assert_uint_eq(cl->info.version, KB_PROTO_VERSION);
	ck_assert_uint_eq(sv->info.version, KB_PROTO_VERSION);
	ck_assert_uint_eq(cl->info.caps, 0x0c);
	ck_assert_uint_eq(sv->info.caps, 0x0c);
	ck_assert_uint_eq(cl->info.flags, 7);
	ck_assert_int_eq(cl->verified, 1);
	ck_assert_int_eq(sv->verified, 1);
	exchange(cl, sv);
}

START_TEST(test_xx_ok)
{
	struct peer cl, sv;

	pair_init(&cl, &sv, srv_id.pub, cli_id.pub);
	sv.cfg.max_frame = 1 << 20;
	cl.cfg.backend = KB_AEAD_MBEDTLS; /* the backends interoperate */
	pair_run(&cl, &sv);
	check_ok(&cl, &sv);
	ck_assert_uint_eq(cl.info.max_frame, 1 << 20);
	ck_assert_uint_eq(sv.info.max_frame, KB_FRAME_MAX_DEFAULT);
	pair_free(&cl, &sv);
}
END_TEST

START_TEST(test_xxpsk3_ok)
{
	uint8_t psk[32];
	struct peer cl, sv;

	memset(psk, 0x5c, sizeof(psk));
	pair_init(&cl, &sv, srv_id.pub, cli_id.pub);
	cl.cfg.psk = psk;
	sv.cfg.psk = psk;
	pair_run(&cl, &sv);
	check_ok(&cl, &sv);
	pair_free(&cl, &sv);
}
END_TEST

START_TEST(test_psk_mismatch)
{
	uint8_t psk1[32], psk2[32];
	struct peer cl, sv;

	memset(psk1, 0x5c, sizeof(psk1));
	memset(psk2, 0x5d, sizeof(psk2));
	pair_init(&cl, &sv, NULL, NULL);
	cl.cfg.psk = psk1;
	sv.cfg.psk = psk2;
	pair_run(&cl, &sv);
	/* psk3 is mixed in at message 3: the server cannot open it and closes */
	ck_assert_int_eq(sv.rc, -KB_EHANDSHAKE);
	ck_assert_int_eq(cl.rc, -KB_EREFUSED);
	ck_assert_ptr_null(cl.c);
	ck_assert_ptr_null(sv.c);

	/* one side with a psk, the other without: different protocols */
	pair_init(&cl, &sv, NULL, NULL);
	cl.cfg.psk = psk1;
	pair_run(&cl, &sv);
	ck_assert_int_eq(cl.rc, -KB_EHANDSHAKE);
	ck_assert_int_lt(sv.rc, 0);
}
END_TEST

/* The client refuses an unknown server before revealing its own key. */
START_TEST(test_client_refuses_server)
{
	uint8_t other[32];
	struct peer cl, sv;

	memset(other, 1, sizeof(other));
	pair_init(&cl, &sv, other, NULL);
	pair_run(&cl, &sv);
	ck_assert_int_eq(cl.rc, -KB_EUNTRUSTED);
	ck_assert(cl.info.have_remote_static);
	ck_assert_mem_eq(cl.info.remote_static, srv_id.pub, 32); /* the fingerprint */
	ck_assert_int_eq(sv.rc, -KB_ECLOSED);
	ck_assert(!sv.info.have_remote_static); /* never saw the client's key */
	ck_assert_int_eq(sv.verified, 0);
	ck_assert_ptr_null(cl.c);
}
END_TEST

START_TEST(test_server_refuses_client)
{
	uint8_t other[32];
	struct peer cl, sv;

	memset(other, 2, sizeof(other));
	pair_init(&cl, &sv, srv_id.pub, other);
	pair_run(&cl, &sv);
	ck_assert_int_eq(cl.rc, -KB_EREFUSED);
	ck_assert_int_eq(sv.rc, -KB_EUNTRUSTED);
	ck_assert_mem_eq(sv.info.remote_static, cli_id.pub, 32);
	ck_assert_ptr_null(cl.c);
	ck_assert_ptr_null(sv.c);
}
END_TEST

/* A hand-made responder (noise.h directly) that sends `hello` as its
 * payload in message 2, then waits for the client to close. */
static int fake_responder(int fd, const uint8_t *hello, size_t hlen)
{
	struct kb_noise_hs_cfg nc = {
		.protocol = "Noise_XX_25519_AESGCM_SHA256",
		.prologue = (const uint8_t *)KB_CHAN_PROLOGUE,
		.prologue_len = strlen(KB_CHAN_PROLOGUE),
		.s = srv_id.priv,
		.rng = rng,
	};
	struct kb_noise_hs *hs;
	uint8_t msg[2 + 512], pl[512];
	size_t len, plen;
	int rc;

	ck_assert_int_eq(kb_noise_hs_new(&hs, &nc), 0);
	ck_assert_int_eq(kb_read_full(fd, msg, 2), 0);
	len = (size_t)msg[0] << 8 | msg[1];
	ck_assert_int_eq(kb_read_full(fd, msg, len), 0);
	ck_assert_int_eq(kb_noise_hs_read(hs, msg, len, pl, sizeof(pl), &plen), 0);
	ck_assert_int_eq(kb_noise_hs_write(hs, hello, hlen, msg + 2, 510, &len), 0);
	msg[0] = (uint8_t)(len >> 8);
	msg[1] = (uint8_t)len;
	ck_assert_int_eq(kb_write_full(fd, msg, len + 2), 0);
	rc = kb_read_full(fd, msg, 2);
	kb_noise_hs_free(hs);
	return rc;
}

struct fake {
	int fd;
	const uint8_t *hello;
	size_t hlen;
	int rc;
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	f->rc = fake_responder(f->fd, f->hello, f->hlen);
	close(f->fd);
	return NULL;
}

/* Run a client against the fake responder; return the client's result. */
static int against_fake(const uint8_t *hello, size_t hlen, struct peer *cl)
{
	struct fake f = {.hello = hello, .hlen = hlen};
	pthread_t t;
	int fds[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	f.fd = fds[1];
	peer_init(cl, fds[0], true, &cli_id, NULL);
	ck_assert_int_eq(pthread_create(&t, NULL, fake_main, &f), 0);
	peer_main(cl);
	pthread_join(t, NULL);
	ck_assert_int_eq(f.rc, -KB_ECLOSED); /* the client went away without msg 3 */
	return cl->rc;
}

START_TEST(test_version)
{
	uint8_t h[24] = {'K', 'B', 'H', '1', 0, 3, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0};
	struct peer cl;

	/* the server speaks only versions 2..3 */
	ck_assert_int_eq(against_fake(h, 20, &cl), -KB_EVERSION);
	ck_assert_int_eq(cl.verified, 1);
	/* malformed hellos: short, bad magic, min > max, min 0 */
	ck_assert_int_eq(against_fake(h, 19, &cl), -KB_EHANDSHAKE);
	h[7] = 4;
	ck_assert_int_eq(against_fake(h, 20, &cl), -KB_EHANDSHAKE);
	h[7] = 0;
	ck_assert_int_eq(against_fake(h, 20, &cl), -KB_EHANDSHAKE);
	h[7] = 1;
	h[0] = 'X';
	ck_assert_int_eq(against_fake(h, 20, &cl), -KB_EHANDSHAKE);
	ck_assert_int_eq(cl.verified, 0);
}
END_TEST

/* A newer server (versions 1..5, longer hello) still agrees on 1. The fake
 * stops after message 3, so the client ends with EREFUSED, info filled. */
START_TEST(test_version_newer_peer)
{
	uint8_t h[24] = {'K', 'B', 'H', '1', 0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 1, 0, 0};
	struct fake f = {.hello = h, .hlen = sizeof(h)};
	struct peer cl;
	pthread_t t;
	int fds[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	f.fd = fds[1];
	peer_init(&cl, fds[0], true, &cli_id, NULL);
	ck_assert_int_eq(pthread_create(&t, NULL, fake_main, &f), 0);
	peer_main(&cl);
	pthread_join(t, NULL);
	ck_assert_int_eq(f.rc, 0);
	ck_assert_int_eq(cl.rc, -KB_EREFUSED);
	ck_assert_uint_eq(cl.info.version, 1);
	ck_assert_uint_eq(cl.info.caps, 0x0f);
	ck_assert_uint_eq(cl.info.max_frame, 1 << 16);
}
END_TEST

/* Run one side against raw bytes written by the test; `close_after`
 * shuts the raw end once they are written. Returns the side's result. */
static int against_bytes(bool initiator, const uint8_t *b, size_t n, bool close_after,
			 int timeout_ms)
{
	struct peer p;
	uint8_t sink[4096];
	int fds[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	peer_init(&p, fds[0], initiator, initiator ? &cli_id : &srv_id, NULL);
	p.cfg.timeout_ms = timeout_ms;
	ck_assert_int_eq(kb_write_full(fds[1], b, n), 0);
	if (close_after)
		shutdown(fds[1], SHUT_WR);
	peer_main(&p);
	ck_assert_ptr_null(p.c);
	/* the handshake closed its fd: our end sees EOF after its messages */
	while (read(fds[1], sink, sizeof(sink)) > 0)
		;
	close(fds[1]);
	return p.rc;
}

START_TEST(test_garbage)
{
	uint8_t b[2 + 200];

	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(i * 131 + 7);
	/* message 2 of 96 garbage bytes: cannot be authenticated */
	b[0] = 0;
	b[1] = 96;
	ck_assert_int_eq(against_bytes(true, b, 2 + 96, true, 2000), -KB_EHANDSHAKE);
	/* too short to hold e, s and the tags */
	b[1] = 20;
	ck_assert_int_eq(against_bytes(true, b, 2 + 20, true, 2000), -KB_EHANDSHAKE);
	b[1] = 0;
	ck_assert_int_eq(against_bytes(true, b, 2, true, 2000), -KB_EHANDSHAKE);
	/* responder: any 32 bytes are an `e`; the garbage message 3 is not */
	b[1] = 32;
	b[34] = 0;
	b[35] = 64;
	ck_assert_int_eq(against_bytes(false, b, 2 + 32 + 2 + 64, true, 2000), -KB_EHANDSHAKE);
	b[1] = 31;
	ck_assert_int_eq(against_bytes(false, b, 2 + 31, true, 2000), -KB_EHANDSHAKE);
}
END_TEST

START_TEST(test_truncated)
{
	uint8_t b[2 + 200] = {0, 200};

	/* the length promises 200 bytes, 50 come, then EOF */
	ck_assert_int_eq(against_bytes(true, b, 2 + 50, true, 2000), -KB_ETRUNC);
	ck_assert_int_eq(against_bytes(false, b, 2 + 50, true, 2000), -KB_ETRUNC);
	/* EOF inside the length itself, and before anything */
	ck_assert_int_eq(against_bytes(false, b, 1, true, 2000), -KB_ETRUNC);
	ck_assert_int_eq(against_bytes(true, b, 0, true, 2000), -KB_ECLOSED);
}
END_TEST

/* A peer that never answers (or stalls mid-message) runs into the bound. */
START_TEST(test_timeout)
{
	uint8_t b[2 + 200] = {0, 200};

	ck_assert_int_eq(against_bytes(true, b, 0, false, 100), -KB_ETIMEOUT);
	ck_assert_int_eq(against_bytes(false, b, 0, false, 100), -KB_ETIMEOUT);
	ck_assert_int_eq(against_bytes(false, b, 2 + 10, false, 100), -KB_ETIMEOUT);
}
END_TEST

/* No verify callback: refused up front (fail closed), fd closed. */
START_TEST(test_bad_config)
{
	struct peer p;
	int fds[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	peer_init(&p, fds[0], true, &cli_id, NULL);
	p.cfg.verify = NULL;
	peer_main(&p);
	ck_assert_int_eq(p.rc, -EINVAL);
	/* the fd is closed on failure */
	ck_assert_int_eq(send(fds[1], "x", 1, MSG_NOSIGNAL), -1);
	close(fds[1]);
}
END_TEST

Suite *suite_chanhs(void);
Suite *suite_chanhs(void)
{
	Suite *s = suite_create("chanhs");
	TCase *tc = tcase_create("handshake");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_xx_ok);
	tcase_add_test(tc, test_xxpsk3_ok);
	tcase_add_test(tc, test_psk_mismatch);
	tcase_add_test(tc, test_client_refuses_server);
	tcase_add_test(tc, test_server_refuses_client);
	tcase_add_test(tc, test_version);
	tcase_add_test(tc, test_version_newer_peer);
	tcase_add_test(tc, test_garbage);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_bad_config);
	suite_add_tcase(s, tc);
	return s;
}
