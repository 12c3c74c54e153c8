/* fuzz_frame.c - the frame receiver against arbitrary streams.
 *
 * The input is a little script that builds the byte stream the receiving
 * channel reads from a socketpair: genuine frames sealed with the fixed
 * sender key (so the fuzzer reaches the accept and rekey paths), raw bytes,
 * bit flips of the last genuine frame, and replays of earlier frames.
 *
 * Oracles (abort on violation):
 *  - every frame the channel accepts re-seals, with the sender's key at the
 *    receiver's nonce, to exactly the bytes on the wire: nothing
 *    unauthenticated is ever handed on;
 *  - a failed frame leaves the caller's buffer all zero;
 *  - once a call failed, every later call fails with the same error.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aead.h"
#include "chan.h"
#include "util.h"

#define MAXF 4096         /* the receiver's max frame plaintext */
#define STREAM_MAX 100000 /* fits a socketpair's buffer: one write, no thread */
#define REKEY_EVERY 3

static const uint8_t key_ab[32] = {0xab, 1, 2, 3};
static const uint8_t key_ba[32] = {0xba, 4, 5, 6};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct builder {
	uint8_t *s; /* the stream (static storage below) */
	size_t len;
	size_t last_off, last_len; /* the last genuine frame */
	struct kb_aead *tx;        /* sender key, nonce n */
	uint64_t n;
};

static void put(struct builder *b, const uint8_t *p, size_t n)
{
	n = KB_MIN(n, STREAM_MAX - b->len);
	memmove(b->s + b->len, p, n);
	b->len += n;
}

static void genuine(struct builder *b, size_t plen)
{
	uint8_t *f = b->s + b->len;

	if (b->len + KB_FRAME_HEAD + plen + KB_FRAME_TAG > STREAM_MAX)
		return;
	kb_put_be32(f, (uint32_t)(plen + KB_FRAME_TAG));
	for (size_t i = 0; i < plen; i++)
		f[KB_FRAME_HEAD + i] = (uint8_t)(i * 7 + b->n);
	if (kb_aead_seal(b->tx, b->n, f, KB_FRAME_HEAD, f + KB_FRAME_HEAD, f + KB_FRAME_HEAD, plen,
			 f + KB_FRAME_HEAD + plen))
		abort();
	b->last_off = b->len;
	b->last_len = KB_FRAME_HEAD + plen + KB_FRAME_TAG;
	b->len += b->last_len;
	if (++b->n % REKEY_EVERY == 0 && kb_chan_rekey_aead(b->tx))
		abort();
}

/* Interpret the input as 3-byte ops [op][arg hi][arg lo] (+ raw bytes). */
static void build(struct builder *b, const uint8_t *d, size_t n)
{
	size_t i = 0;

	while (i + 3 <= n && b->len < STREAM_MAX) {
		uint8_t op = d[i];
		size_t arg = (size_t)d[i + 1] << 8 | d[i + 2];

		i += 3;
		switch (op & 3) {
		case 0: genuine(b, arg % (MAXF + 64)); break;
		case 1: /* raw bytes from the input */
			arg = KB_MIN(arg % 64, n - i);
			put(b, d + i, arg);
			i += arg;
			break;
		case 2: /* the last genuine frame again, one bit flipped */
			if (b->last_len && b->len + b->last_len <= STREAM_MAX) {
				put(b, b->s + b->last_off, b->last_len);
				b->s[b->len - b->last_len + arg % b->last_len] ^=
					(uint8_t)(1 << (op >> 5));
			}
			break;
		case 3: /* replay (or truncate to) a prefix of the last genuine frame */
			if (b->last_len)
				put(b, b->s + b->last_off, arg % (b->last_len + 1));
			break;
		}
	}
}

/* Re-seal an accepted plaintext at the receiver's nonce: must equal the wire. */
static void check_genuine(struct kb_aead *oracle, uint64_t n, const uint8_t *wire,
			  const uint8_t *pt, size_t plen)
{
	static uint8_t ct[MAXF + KB_FRAME_TAG];

	if (kb_aead_seal(oracle, n, wire, KB_FRAME_HEAD, pt, ct, plen, ct + plen) ||
	    memcmp(ct, wire + KB_FRAME_HEAD, plen + KB_FRAME_TAG))
		abort();
	if ((n + 1) % REKEY_EVERY == 0 && kb_chan_rekey_aead(oracle))
		abort();
}

static void receive_all(struct kb_chan *c, struct kb_aead *oracle, const uint8_t *s)
{
	static uint8_t buf[MAXF + KB_FRAME_TAG];
	size_t off = 0, plen;
	uint64_t n = 0;
	int err, again;

	for (;;) {
		err = kb_chan_recv_len(c, &plen);
		if (err)
			break;
		if (plen > MAXF)
			abort(); /* the length check let an oversized frame through */
		memset(buf, 0xa5, sizeof(buf));
		err = kb_chan_recv_body(c, buf, plen);
		if (err) {
			for (size_t i = 0; i < plen + KB_FRAME_TAG; i++)
				if (buf[i])
					abort();
			break;
		}
		check_genuine(oracle, n++, s + off, buf, plen);
		off += KB_FRAME_HEAD + plen + KB_FRAME_TAG;
	}
	/* dead for good, same error */
	again = kb_chan_recv_len(c, &plen);
	if (err >= 0 || again != err || kb_chan_recv(c, buf, sizeof(buf), &plen) != err)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t stream[STREAM_MAX];
	struct builder b = {.s = stream};
	struct kb_chan *c = NULL;
	struct kb_aead *oracle = NULL;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		abort();
	if (kb_aead_new(&b.tx, KB_AEAD_DEFAULT, key_ab) ||
	    kb_aead_new(&oracle, KB_AEAD_DEFAULT, key_ab) ||
	    kb_chan_from_keys(&c, sv[0], KB_AEAD_DEFAULT, key_ba, key_ab, MAXF, MAXF))
		abort();
	kb_chan_set_rekey(c, REKEY_EVERY, 0);
	build(&b, data, size);
	if (kb_write_full(sv[1], stream, b.len))
		abort();
	shutdown(sv[1], SHUT_WR);
	receive_all(c, oracle, stream);
	kb_chan_free(c);
	kb_aead_free(b.tx);
	kb_aead_free(oracle);
	close(sv[1]);
	return 0;
}
