/* test_chan.c - the frame channel: round trips over both AEAD backends,
 * tamper / truncation / oversize / replay / reorder, rekey, threads. The
 * handshake tests are in test_chanhs.c. Helpers are tc_*. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "chan.h"
#include "err.h"
#include "noise.h"
#include "util.h"

#define TC_MAX 1000 /* max frame of the raw-injection channels */

static const uint8_t tc_key_ab[32] = {
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x42,
};
static const uint8_t tc_key_ba[32] = {
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x43,
};

static void tc_fill(uint8_t *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

static bool tc_check(const uint8_t *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		if (p[i] != (uint8_t)(x >> 16))
			return false;
	}
	return true;
}

/* Two channels on the ends of one socketpair: a sends with key ab. */
static void tc_pair(struct kb_chan **a, struct kb_chan **b, enum kb_aead_backend abe,
		    enum kb_aead_backend bbe, uint32_t max)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(kb_chan_from_keys(a, sv[0], abe, tc_key_ab, tc_key_ba, max, max), 0);
	ck_assert_int_eq(kb_chan_from_keys(b, sv[1], bbe, tc_key_ba, tc_key_ab, max, max), 0);
}

/* A sender and a receiver on two socketpairs with the raw bytes in between
 * in the test's hands: capture what tx sends, inject into rx. */
struct tc_raw {
	struct kb_chan *tx, *rx;
	int tx_raw; /* owned: reads what tx sent */
	int rx_raw; /* owned: writes what rx receives */
};

static void tc_raw_open(struct tc_raw *r, enum kb_aead_backend be)
{
	int s1[2], s2[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s1), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s2), 0);
	ck_assert_int_eq(kb_chan_from_keys(&r->tx, s1[0], be, tc_key_ab, tc_key_ba, TC_MAX, TC_MAX),
			 0);
	ck_assert_int_eq(kb_chan_from_keys(&r->rx, s2[0], be, tc_key_ba, tc_key_ab, TC_MAX, TC_MAX),
			 0);
	r->tx_raw = s1[1];
	r->rx_raw = s2[1];
}

static void tc_raw_close(struct tc_raw *r)
{
	kb_chan_free(r->tx);
	kb_chan_free(r->rx);
	close(r->tx_raw);
	close(r->rx_raw);
}

/* tx sends a frame of plen pattern bytes; fr receives its wire bytes. */
static void tc_capture(struct tc_raw *r, uint8_t *fr, size_t plen, unsigned seed)
{
	tc_fill(fr + KB_FRAME_HEAD, plen, seed);
	ck_assert_int_eq(kb_chan_send(r->tx, fr, plen), 0);
	ck_assert_int_eq(kb_read_full(r->tx_raw, fr, KB_FRAME_HEAD + plen + KB_FRAME_TAG), 0);
}

static void tc_inject(struct tc_raw *r, const uint8_t *p, size_t n)
{
	ck_assert_int_eq(kb_write_full(r->rx_raw, p, n), 0);
}

static const enum kb_aead_backend be_pairs[][2] = {
	{KB_AEAD_MBEDTLS, KB_AEAD_MBEDTLS},
#ifdef KB_HAVE_OPENSSL
	{KB_AEAD_OPENSSL, KB_AEAD_OPENSSL},
	{KB_AEAD_MBEDTLS, KB_AEAD_OPENSSL}, /* sealed by mbedTLS, opened by OpenSSL */
	{KB_AEAD_OPENSSL, KB_AEAD_MBEDTLS},
#endif
};

struct sender {
	struct kb_chan *c;
	const size_t *sizes;
	int n;
	int use_sendv;
	int rc;
};

/* Sends frames of the given sizes, payload pattern seeded by the index. */
static void *sender_main(void *arg)
{
	struct sender *s = arg;

	for (int i = 0; i < s->n && !s->rc; i++) {
		size_t plen = s->sizes[i];
		uint8_t *f = malloc(KB_FRAME_HEAD + plen + KB_FRAME_TAG); /* owned here */

		tc_fill(f + KB_FRAME_HEAD, plen, (unsigned)i);
		if (!s->use_sendv) {
			s->rc = kb_chan_send(s->c, f, plen);
		} else {
			/* small header + the rest, like a READ reply */
			size_t h = plen < 7 ? plen : 7;
			struct iovec iov[3] = {
				{f + KB_FRAME_HEAD, h},
				{f, 0},
				{f + KB_FRAME_HEAD + h, plen - h},
			};

			s->rc = kb_chan_sendv(s->c, iov, 3);
		}
		free(f);
	}
	return NULL;
}

static void roundtrip(enum kb_aead_backend sbe, enum kb_aead_backend rbe, int use_sendv)
{
	static const size_t sizes[] = {0, 1, 64 << 10, 1 << 20, 4 << 20, 17, 0};
	struct kb_chan *a, *b;
	struct sender s = {.sizes = sizes, .n = KB_ARRAY_SIZE(sizes), .use_sendv = use_sendv};
	size_t cap = (4 << 20) + KB_FRAME_TAG, plen;
	uint8_t *buf = malloc(cap); /* owned here */
	pthread_t t;
	struct kb_chan_stats st;
	uint64_t total = 0;

	tc_pair(&a, &b, sbe, rbe, 0);
	s.c = a;
	ck_assert_int_eq(pthread_create(&t, NULL, sender_main, &s), 0);
	for (int i = 0; i < s.n; i++) {
		ck_assert_int_eq(kb_chan_recv_len(b, &plen), 0);
		ck_assert_uint_eq(plen, sizes[i]);
		ck_assert_int_eq(kb_chan_recv_body(b, buf, plen), 0);
		ck_assert(tc_check(buf, plen, (unsigned)i));
		total += plen;
	}
	pthread_join(t, NULL);
	ck_assert_int_eq(s.rc, 0);
	kb_chan_stats(b, &st);
	ck_assert_uint_eq(st.frames_recv, s.n);
	ck_assert_uint_eq(st.bytes_recv, total);
	kb_chan_stats(a, &st);
	ck_assert_uint_eq(st.frames_sent, s.n);
	ck_assert_uint_eq(st.bytes_sent, total);
	free(buf);
	kb_chan_free(a);
	kb_chan_free(b);
}

START_TEST(test_roundtrip)
{
	roundtrip(be_pairs[_i][0], be_pairs[_i][1], 0);
}
END_TEST

START_TEST(test_roundtrip_sendv)
{
	roundtrip(be_pairs[_i][0], be_pairs[_i][1], 1);
}
END_TEST

/* send encrypts in place: the caller's plaintext is gone afterwards. */
START_TEST(test_send_in_place)
{
	struct tc_raw r;
	uint8_t f[KB_FRAME_HEAD + 32 + KB_FRAME_TAG];
	uint8_t wire[sizeof(f)];

	tc_raw_open(&r, KB_AEAD_DEFAULT);
	memset(f, 'p', sizeof(f));
	ck_assert_int_eq(kb_chan_send(r.tx, f, 32), 0);
	ck_assert_int_eq(kb_read_full(r.tx_raw, wire, sizeof(wire)), 0);
	ck_assert_mem_eq(f, wire, sizeof(f)); /* what went out is the caller's buffer */
	ck_assert_uint_eq(kb_get_be32(wire), 32 + KB_FRAME_TAG);
	memset(wire, 'p', 32);
	ck_assert_mem_ne(f + KB_FRAME_HEAD, wire, 32); /* no plaintext left */
	tc_raw_close(&r);
}
END_TEST

START_TEST(test_too_big_send)
{
	struct kb_chan *a, *b;
	uint8_t f[64];
	struct iovec iov[2] = {{f, 40}, {f, 40}};

	tc_pair(&a, &b, KB_AEAD_DEFAULT, KB_AEAD_DEFAULT, 64);
	ck_assert_int_eq(kb_chan_send(a, f, 65), -KB_ETOOBIG);
	ck_assert_int_eq(kb_chan_sendv(a, iov, 2), -KB_ETOOBIG);
	/* refusing a local oversized send does not kill the channel */
	ck_assert_int_eq(kb_chan_send(a, f, 8), 0);
	kb_chan_free(a);
	kb_chan_free(b);
}
END_TEST

/* Inject a captured frame with one byte flipped at `pos` (and `extra`
 * junk bytes after it): bad tag, the buffer is wiped and the channel stays
 * dead, for sends too. */
static void tamper_at(size_t pos, size_t extra)
{
	struct tc_raw r;
	uint8_t fr[KB_FRAME_HEAD + 100 + KB_FRAME_TAG + 8], buf[200];
	size_t plen;

	tc_raw_open(&r, KB_AEAD_DEFAULT);
	tc_capture(&r, fr, 100, 1);
	fr[pos] ^= 0x01;
	memset(fr + KB_FRAME_HEAD + 100 + KB_FRAME_TAG, 0x5a, 8);
	tc_inject(&r, fr, KB_FRAME_HEAD + 100 + KB_FRAME_TAG + extra);
	ck_assert_int_eq(kb_chan_recv_len(r.rx, &plen), 0);
	ck_assert_uint_eq(plen, 100 + extra);
	memset(buf, 0xee, sizeof(buf));
	ck_assert_int_eq(kb_chan_recv_body(r.rx, buf, plen), -KB_EBADTAG);
	for (size_t i = 0; i < plen + KB_FRAME_TAG; i++)
		ck_assert_uint_eq(buf[i], 0); /* nothing of the failed frame is handed on */
	ck_assert_int_eq(kb_chan_recv_len(r.rx, &plen), -KB_EBADTAG);
	ck_assert_int_eq(kb_chan_recv(r.rx, buf, sizeof(buf), &plen), -KB_EBADTAG);
	ck_assert_int_eq(kb_chan_send(r.rx, buf, 1), -KB_EBADTAG);
	tc_raw_close(&r);
}

START_TEST(test_tamper_ciphertext)
{
	tamper_at(KB_FRAME_HEAD + 10, 0);
	tamper_at(KB_FRAME_HEAD, 0);
}
END_TEST

START_TEST(test_tamper_tag)
{
	tamper_at(KB_FRAME_HEAD + 100 + KB_FRAME_TAG - 1, 0);
	tamper_at(KB_FRAME_HEAD + 100, 0);
}
END_TEST

START_TEST(test_tamper_length)
{
	tamper_at(3, 1); /* 116 -> 117: one junk byte completes the longer frame */
}
END_TEST

START_TEST(test_tamper_length_shorter)
{
	struct tc_raw r;
	uint8_t fr[KB_FRAME_HEAD + 100 + KB_FRAME_TAG], buf[200];
	size_t plen;

	tc_raw_open(&r, KB_AEAD_DEFAULT);
	tc_capture(&r, fr, 100, 1);
	kb_put_be32(fr, 100 + KB_FRAME_TAG - 1);
	tc_inject(&r, fr, sizeof(fr));
	ck_assert_int_eq(kb_chan_recv_len(r.rx, &plen), 0);
	ck_assert_uint_eq(plen, 99);
	ck_assert_int_eq(kb_chan_recv_body(r.rx, buf, plen), -KB_EBADTAG);
	tc_raw_close(&r);
}
END_TEST

/* A raw pair where the first n bytes of a 100-byte frame reach r.rx, then
 * the sender's side is closed. */
static void open_cut(struct tc_raw *r, size_t n)
{
	uint8_t fr[KB_FRAME_HEAD + 100 + KB_FRAME_TAG];

	tc_raw_open(r, KB_AEAD_DEFAULT);
	tc_capture(r, fr, 100, 1);
	tc_inject(r, fr, n);
	shutdown(r->rx_raw, SHUT_WR);
}

START_TEST(test_truncated)
{
	struct tc_raw r;
	uint8_t buf[200];
	size_t plen;

	/* close in the middle of the body */
	open_cut(&r, 50);
	ck_assert_int_eq(kb_chan_recv_len(r.rx, &plen), 0);
	ck_assert_int_eq(kb_chan_recv_body(r.rx, buf, plen), -KB_ETRUNC);
	ck_assert_int_eq(kb_chan_recv_len(r.rx, &plen), -KB_ETRUNC);
	tc_raw_close(&r);

	/* close in the middle of the length */
	open_cut(&r, 2);
	ck_assert_int_eq(kb_chan_recv_len(r.rx, &plen), -KB_ETRUNC);
	tc_raw_close(&r);

	/* close right after the length: still a truncated frame */
	open_cut(&r, KB_FRAME_HEAD);
	ck_assert_int_eq(kb_chan_recv_len(r.rx, &plen), 0);
	ck_assert_int_eq(kb_chan_recv_body(r.rx, buf, plen), -KB_ETRUNC);
	tc_raw_close(&r);

	/* close between frames: a clean close */
	tc_raw_open(&r, KB_AEAD_DEFAULT);
	shutdown(r.rx_raw, SHUT_WR);
	ck_assert_int_eq(kb_chan_recv_len(r.rx, &plen), -KB_ECLOSED);
	tc_raw_close(&r);
}
END_TEST

/* A bad length is refused having read only the 4 length bytes. */
static void bad_length(uint32_t l, int want)
{
	struct tc_raw r;
	uint8_t h[KB_FRAME_HEAD + 3], rest[8];
	size_t plen = 12345;

	tc_raw_open(&r, KB_AEAD_DEFAULT);
	kb_put_be32(h, l);
	memcpy(h + KB_FRAME_HEAD, "XYZ", 3);
	tc_inject(&r, h, sizeof(h));
	ck_assert_int_eq(kb_chan_recv_len(r.rx, &plen), want);
	ck_assert_uint_eq(plen, 12345);
	ck_assert_int_eq(recv(kb_chan_fd(r.rx), rest, sizeof(rest), MSG_DONTWAIT), 3);
	ck_assert_mem_eq(rest, "XYZ", 3);
	ck_assert_int_eq(kb_chan_recv_len(r.rx, &plen), want);
	tc_raw_close(&r);
}

START_TEST(test_oversized)
{
	bad_length(TC_MAX + KB_FRAME_TAG + 1, -KB_ETOOBIG);
	bad_length(0xffffffffu, -KB_ETOOBIG);
	bad_length(KB_FRAME_TAG - 1, -KB_EPROTO);
	bad_length(0, -KB_EPROTO);
}
END_TEST

/* Frames 0 and 1 (40 bytes each) sealed on a raw pair's sender, then
 * frame a and frame b put on the wire, in that order: the first receive
 * gives want (0: frame 0's bytes), the second a bad tag. */
static void inject_two(unsigned a, unsigned b, int want)
{
	struct tc_raw r;
	uint8_t f[2][KB_FRAME_HEAD + 40 + KB_FRAME_TAG], buf[64];
	size_t plen;

	tc_raw_open(&r, KB_AEAD_DEFAULT);
	tc_capture(&r, f[0], 40, 0);
	tc_capture(&r, f[1], 40, 1);
	tc_inject(&r, f[a], sizeof(f[a]));
	tc_inject(&r, f[b], sizeof(f[b]));
	ck_assert_int_eq(kb_chan_recv(r.rx, buf, sizeof(buf), &plen), want);
	if (!want)
		ck_assert(tc_check(buf, plen, 0));
	ck_assert_int_eq(kb_chan_recv(r.rx, buf, sizeof(buf), &plen), -KB_EBADTAG);
	tc_raw_close(&r);
}

START_TEST(test_replay)
{
	inject_two(0, 0, 0);
}
END_TEST

START_TEST(test_reorder)
{
	inject_two(1, 0, -KB_EBADTAG);
}
END_TEST

/* A raw pair whose two sides rekey every `frames` frames or `bytes`
 * ciphertext bytes (kb_chan_set_rekey). */
static void open_rekeying(struct tc_raw *r, enum kb_aead_backend be, uint64_t frames,
			  uint64_t bytes)
{
	tc_raw_open(r, be);
	kb_chan_set_rekey(r->tx, frames, bytes);
	kb_chan_set_rekey(r->rx, frames, bytes);
}

/* n frames of len (<= 300) bytes from r.tx to r.rx, each received (and
 * its bytes checked if check). */
static void pass_frames(struct tc_raw *r, unsigned n, size_t len, bool check)
{
	uint8_t fr[KB_FRAME_HEAD + 300 + KB_FRAME_TAG], buf[400];
	size_t plen;

	for (unsigned i = 0; i < n; i++) {
		tc_capture(r, fr, len, i);
		tc_inject(r, fr, KB_FRAME_HEAD + len + KB_FRAME_TAG);
		ck_assert_int_eq(kb_chan_recv(r->rx, buf, sizeof(buf), &plen), 0);
		if (check)
			ck_assert(tc_check(buf, plen, i));
	}
}

/* Both sides rekey in step, by frame count and by byte count. */
START_TEST(test_rekey_in_step)
{
	struct tc_raw r;
	struct kb_chan_stats st;

	open_rekeying(&r, be_pairs[_i][0], 3, 0);
	pass_frames(&r, 10, 300, true);
	kb_chan_stats(r.tx, &st);
	ck_assert_uint_eq(st.rekeys, 3);
	kb_chan_stats(r.rx, &st);
	ck_assert_uint_eq(st.rekeys, 3);
	tc_raw_close(&r);

	/* 316 ciphertext bytes a frame, rekey at >= 1000: after every 4th */
	open_rekeying(&r, be_pairs[_i][0], 0, 1000);
	pass_frames(&r, 13, 300, false);
	kb_chan_stats(r.rx, &st);
	ck_assert_uint_eq(st.rekeys, 3);
	tc_raw_close(&r);
}
END_TEST

/* After a rekey the old key no longer opens frames and the new key (Noise
 * Rekey() computed independently here) does. */
static void inject_sealed(struct tc_raw *r, const uint8_t key[32], uint64_t n, int want)
{
	struct kb_aead *a;
	uint8_t fr[KB_FRAME_HEAD + 20 + KB_FRAME_TAG], buf[64];
	size_t plen;

	ck_assert_int_eq(kb_aead_new(&a, KB_AEAD_MBEDTLS, key), 0);
	kb_put_be32(fr, 20 + KB_FRAME_TAG);
	tc_fill(fr + KB_FRAME_HEAD, 20, 77);
	ck_assert_int_eq(kb_aead_seal(a, n, fr, 4, fr + 4, fr + 4, 20, fr + 24), 0);
	kb_aead_free(a);
	tc_inject(r, fr, sizeof(fr));
	ck_assert_int_eq(kb_chan_recv(r->rx, buf, sizeof(buf), &plen), want);
	if (!want)
		ck_assert(tc_check(buf, plen, 77));
}

START_TEST(test_rekey_changes_key)
{
	static const uint8_t zeros[32];
	struct tc_raw r;
	struct kb_aead *a;
	uint8_t k2[32], tag[16];

	ck_assert_int_eq(kb_aead_new(&a, KB_AEAD_MBEDTLS, tc_key_ab), 0);
	ck_assert_int_eq(kb_aead_seal(a, UINT64_MAX, NULL, 0, zeros, k2, 32, tag), 0);
	kb_aead_free(a);
	for (int good = 0; good < 2; good++) {
		open_rekeying(&r, be_pairs[_i][1], 2, 0);
		pass_frames(&r, 2, 8, false);
		/* the nonce keeps counting across a rekey: next is 2 */
		inject_sealed(&r, good ? k2 : tc_key_ab, 2, good ? 0 : -KB_EBADTAG);
		tc_raw_close(&r);
	}
}
END_TEST

/* Rekey by time: after the period the sender rekeys on its own and flags
 * the frame (the length word's top bit, inside the AD); the receiver
 * follows. The flag cannot be stripped, and a peer that did not agree to
 * it refuses a flagged frame. */
START_TEST(test_rekey_by_time)
{
	struct tc_raw r;
	uint8_t fr[KB_FRAME_HEAD + 64 + KB_FRAME_TAG], buf[128];
	struct kb_chan_stats st;
	size_t plen;
	unsigned flagged = 0;

	tc_raw_open(&r, be_pairs[_i][0]);
	kb_chan_set_rekey_time(r.tx, 1000000); /* 1 ms */
	kb_chan_set_rekey_time(r.rx, 1000000);
	for (unsigned i = 0; i < 8; i++) {
		if (i % 2)
			usleep(3000); /* past the period: this frame is under a new key */
		tc_capture(&r, fr, 64, i);
		ck_assert_uint_eq(kb_get_be32(fr) & ~KB_FRAME_REKEYED, 64 + KB_FRAME_TAG);
		ck_assert_uint_eq(!!(kb_get_be32(fr) & KB_FRAME_REKEYED), i % 2);
		flagged += i % 2;
		tc_inject(&r, fr, sizeof(fr));
		ck_assert_int_eq(kb_chan_recv(r.rx, buf, sizeof(buf), &plen), 0);
		ck_assert(tc_check(buf, plen, i));
	}
	kb_chan_stats(r.tx, &st);
	ck_assert_uint_eq(st.rekeys_time, flagged);
	ck_assert_uint_eq(st.rekeys, flagged);
	kb_chan_stats(r.rx, &st);
	ck_assert_uint_eq(st.rekeys_time, flagged);
	/* the flag stripped off a flagged frame: the AD no longer matches */
	usleep(3000);
	tc_capture(&r, fr, 64, 99);
	ck_assert(kb_get_be32(fr) & KB_FRAME_REKEYED);
	kb_put_be32(fr, kb_get_be32(fr) & ~KB_FRAME_REKEYED);
	tc_inject(&r, fr, sizeof(fr));
	ck_assert_int_eq(kb_chan_recv(r.rx, buf, sizeof(buf), &plen), -KB_EBADTAG);
	tc_raw_close(&r);

	/* a receiver that did not offer it: the flagged length is too big */
	tc_raw_open(&r, be_pairs[_i][0]);
	kb_chan_set_rekey_time(r.tx, 1000000);
	usleep(3000);
	tc_capture(&r, fr, 64, 5);
	tc_inject(&r, fr, sizeof(fr));
	ck_assert_int_eq(kb_chan_recv(r.rx, buf, sizeof(buf), &plen), -KB_ETOOBIG);
	tc_raw_close(&r);
}
END_TEST

/* The channel's Rekey() and noise.c's kb_noise_cs_rekey() agree. */
START_TEST(test_rekey_matches_noise)
{
	struct kb_noise_cs cs;
	struct kb_aead *mine;
	uint8_t a[48], b[48], ta[16], tb[16];

	kb_noise_cs_init(&cs);
	ck_assert_int_eq(kb_aead_new(&cs.aead, be_pairs[_i][0], tc_key_ab), 0);
	ck_assert_int_eq(kb_aead_new(&mine, be_pairs[_i][1], tc_key_ab), 0);
	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(kb_noise_cs_rekey(&cs), 0);
		ck_assert_int_eq(kb_chan_rekey_aead(mine), 0);
		tc_fill(a, sizeof(a), round);
		memcpy(b, a, sizeof(b));
		ck_assert_int_eq(kb_aead_seal(cs.aead, 9, NULL, 0, a, a, sizeof(a), ta), 0);
		ck_assert_int_eq(kb_aead_seal(mine, 9, NULL, 0, b, b, sizeof(b), tb), 0);
		ck_assert_mem_eq(a, b, sizeof(a));
		ck_assert_mem_eq(ta, tb, sizeof(ta));
	}
	kb_aead_free(mine);
	kb_noise_cs_destroy(&cs);
}
END_TEST

struct multi {
	struct kb_chan *c;
	unsigned id;
	int rc;
};

#define MULTI_FRAMES 300

static void *multi_main(void *arg)
{
	struct multi *m = arg;
	uint8_t f[KB_FRAME_HEAD + 8 + 1000 + KB_FRAME_TAG];

	for (uint32_t i = 0; i < MULTI_FRAMES && !m->rc; i++) {
		size_t plen = 8 + (i * 37 + m->id) % 1000;

		kb_put_be32(f + KB_FRAME_HEAD, m->id);
		kb_put_be32(f + KB_FRAME_HEAD + 4, i);
		if (i % 2) {
			m->rc = kb_chan_send(m->c, f, plen);
		} else {
			struct iovec iov[2] = {{f + KB_FRAME_HEAD, 8}, {f, plen - 8}};

			m->rc = kb_chan_sendv(m->c, iov, 2);
		}
	}
	return NULL;
}

/* Several senders at once: every frame arrives intact, each thread's in order. */
START_TEST(test_many_senders)
{
	struct kb_chan *a, *b;
	struct multi m[4];
	pthread_t t[4];
	uint32_t next[4] = {0};
	uint8_t buf[2048];
	size_t plen;

	tc_pair(&a, &b, KB_AEAD_DEFAULT, KB_AEAD_DEFAULT, 0);
	kb_chan_set_rekey(a, 50, 0);
	kb_chan_set_rekey(b, 50, 0);
	for (unsigned i = 0; i < 4; i++) {
		m[i] = (struct multi){.c = a, .id = i};
		ck_assert_int_eq(pthread_create(&t[i], NULL, multi_main, &m[i]), 0);
	}
	for (int n = 0; n < 4 * MULTI_FRAMES; n++) {
		uint32_t id, seq;

		ck_assert_int_eq(kb_chan_recv(b, buf, sizeof(buf), &plen), 0);
		id = kb_get_be32(buf);
		seq = kb_get_be32(buf + 4);
		ck_assert_uint_lt(id, 4);
		ck_assert_uint_eq(seq, next[id]);
		ck_assert_uint_eq(plen, 8 + (seq * 37 + id) % 1000);
		next[id]++;
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(m[i].rc, 0);
	}
	kb_chan_free(a);
	kb_chan_free(b);
}
END_TEST

static void *recv_main(void *arg)
{
	struct kb_chan *c = arg;
	size_t plen;

	return (void *)(intptr_t)kb_chan_recv_len(c, &plen);
}

/* shutdown from another thread wakes a blocked receiver; later calls fail. */
START_TEST(test_shutdown)
{
	struct kb_chan *a, *b;
	pthread_t t;
	void *ret;
	uint8_t f[32];

	tc_pair(&a, &b, KB_AEAD_DEFAULT, KB_AEAD_DEFAULT, 0);
	ck_assert_int_eq(pthread_create(&t, NULL, recv_main, b), 0);
	usleep(20000);
	kb_chan_shutdown(b);
	pthread_join(t, &ret);
	ck_assert_int_eq((int)(intptr_t)ret, -KB_ECLOSED);
	ck_assert_int_eq(kb_chan_send(b, f, 1), -KB_ECLOSED);
	/* the peer sees the close; its sends fail without SIGPIPE */
	ck_assert_int_eq((int)(intptr_t)recv_main(a), -KB_ECLOSED);
	ck_assert_int_lt(kb_chan_send(a, f, 1), 0);
	kb_chan_free(a);
	kb_chan_free(b);
}
END_TEST

/* A sender stuck behind a peer that does not read, with SO_SNDTIMEO set
 * (as the RPC client does): -KB_ETIMEOUT, and the half-sent frame kills
 * the channel. */
START_TEST(test_send_timeout)
{
	struct timeval tv = {.tv_usec = 50000};
	struct kb_chan *a, *b;
	size_t plen = 1 << 20;
	uint8_t *f = calloc(1, plen + KB_FRAME_HEAD + KB_FRAME_TAG); /* owned here */

	tc_pair(&a, &b, KB_AEAD_DEFAULT, KB_AEAD_DEFAULT, 0);
	ck_assert_int_eq(setsockopt(kb_chan_fd(a), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	ck_assert_int_eq(setsockopt(kb_chan_fd(b), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	ck_assert_int_eq(kb_chan_send(a, f, plen), -KB_ETIMEOUT);
	ck_assert_int_eq(kb_chan_send(a, f, 1), -KB_ETIMEOUT);
	/* the receiver got part of it and then times out inside the body */
	ck_assert_int_eq(kb_chan_recv(b, f, plen + KB_FRAME_TAG, &plen), -KB_ETIMEOUT);
	free(f);
	kb_chan_free(a);
	kb_chan_free(b);
}
END_TEST

Suite *suite_chan(void);
Suite *suite_chan(void)
{
	Suite *s = suite_create("chan");
	TCase *tc = tcase_create("frames");
	int npairs = KB_ARRAY_SIZE(be_pairs);

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_roundtrip, 0, npairs);
	tcase_add_loop_test(tc, test_roundtrip_sendv, 0, npairs);
	tcase_add_test(tc, test_send_in_place);
	tcase_add_test(tc, test_too_big_send);
	tcase_add_test(tc, test_tamper_ciphertext);
	tcase_add_test(tc, test_tamper_tag);
	tcase_add_test(tc, test_tamper_length);
	tcase_add_test(tc, test_tamper_length_shorter);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_oversized);
	tcase_add_test(tc, test_replay);
	tcase_add_test(tc, test_reorder);
	tcase_add_loop_test(tc, test_rekey_in_step, 0, npairs);
	tcase_add_loop_test(tc, test_rekey_changes_key, 0, npairs);
	tcase_add_loop_test(tc, test_rekey_matches_noise, 0, npairs);
	tcase_add_loop_test(tc, test_rekey_by_time, 0, npairs);
	tcase_add_test(tc, test_many_senders);
	tcase_add_test(tc, test_shutdown);
	tcase_add_test(tc, test_send_timeout);
	suite_add_tcase(s, tc);
	return s;
}
