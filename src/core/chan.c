/* chan.c - transport frames after Split(): [len][ct|tag] over one socket.
 *
 * Locks: send_lock serialises senders and guards every tx_* field (nonce
 * order == wire order). The rx_* fields belong to the one receiving thread.
 * `dead` and the stats counters are atomics readable from any thread.
 */
#include <errno.h>
#include <poll.h>
#include <time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "err.h"
#include "util.h"

#define NO_PENDING SIZE_MAX

struct kb_chan {
	int fd;                /* owned, closed by kb_chan_free */
	atomic_int dead;       /* 0, or the error every later call returns */
	uint64_t rekey_frames; /* schedule, fixed before first use */
	uint64_t rekey_bytes;
	uint64_t rekey_ns; /* by time, 0: never (we send no flag) */
	bool flag_ok;      /* the peer may send KB_FRAME_REKEYED */

	pthread_mutex_t send_lock;
	struct kb_aead *tx; /* owned; send_lock */
	uint64_t tx_n;      /* next send nonce; send_lock */
	uint64_t tx_frames; /* since the last rekey; send_lock */
	uint64_t tx_bytes;  /* ciphertext+tag bytes since rekey; send_lock */
	uint64_t tx_since;  /* kb_now_ns() of the last rekey; send_lock */
	uint32_t max_send;  /* largest plaintext the peer accepts */
	uint8_t *sbuf;      /* owned, max_send + head + tag; send_lock */
	int use_write;      /* fd is not a socket (pipe): write(); send_lock */
	int dontwait;       /* kb_chan_send_nowait in progress; send_lock */

	struct kb_aead *rx;                 /* owned; receiver thread */
	uint64_t rx_n, rx_frames, rx_bytes; /* receiver thread */
	uint32_t max_recv;                  /* largest plaintext we accept */
	size_t pending;                     /* plen announced by recv_len, or NO_PENDING */
	uint8_t rx_head[KB_FRAME_HEAD];     /* that frame's length bytes (the AD) */

	_Atomic uint64_t frames_sent, frames_recv, bytes_sent, bytes_recv, rekeys, rekeys_time;
};

/* First error wins; returns the error the channel now carries. */
static int chan_fail(struct kb_chan *c, int err)
{
	int expect = 0;

	if (atomic_compare_exchange_strong(&c->dead, &expect, err))
		return err;
	return expect;
}

static int chan_dead(const struct kb_chan *c)
{
	return atomic_load_explicit(&c->dead, memory_order_acquire);
}

int kb_chan_new_aead(struct kb_chan **out, int fd, struct kb_aead *tx, struct kb_aead *rx,
		     uint32_t max_send, uint32_t max_recv)
{
	struct kb_chan *c;
	int rc = -ENOMEM;

	if (!max_send)
		max_send = KB_FRAME_MAX_DEFAULT;
	if (!max_recv)
		max_recv = KB_FRAME_MAX_DEFAULT;
	if (max_send > KB_FRAME_MAX_LIMIT || max_recv > KB_FRAME_MAX_LIMIT)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->sbuf = malloc((size_t)max_send + KB_FRAME_HEAD + KB_FRAME_TAG);
	if (!c->sbuf)
		goto out;
	rc = -pthread_mutex_init(&c->send_lock, NULL);
	if (rc)
		goto out;
	c->fd = fd;
	c->tx = tx;
	c->rx = rx;
	c->max_send = max_send;
	c->max_recv = max_recv;
	c->pending = NO_PENDING;
	c->rekey_frames = KB_CHAN_REKEY_FRAMES;
	c->rekey_bytes = KB_CHAN_REKEY_BYTES;
	*out = c;
	return 0;
out:
	free(c->sbuf);
	free(c);
	return rc;
}

int kb_chan_from_keys(struct kb_chan **out, int fd, enum kb_aead_backend be,
		      const uint8_t send_key[static 32], const uint8_t recv_key[static 32],
		      uint32_t max_frame_send, uint32_t max_frame_recv)
{
	struct kb_aead *tx = NULL, *rx = NULL; /* owned until handed to the chan */
	int rc;

	rc = kb_aead_new(&tx, be, send_key);
	if (!rc)
		rc = kb_aead_new(&rx, be, recv_key);
	if (!rc)
		rc = kb_chan_new_aead(out, fd, tx, rx, max_frame_send, max_frame_recv);
	if (rc) {
		kb_aead_free(tx);
		kb_aead_free(rx);
	}
	return rc;
}

void kb_chan_free(struct kb_chan *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	kb_aead_free(c->tx);
	kb_aead_free(c->rx);
	pthread_mutex_destroy(&c->send_lock);
	free(c->sbuf);
	kb_memzero(c, sizeof(*c));
	free(c);
}

void kb_chan_shutdown(struct kb_chan *c)
{
	if (!c)
		return;
	chan_fail(c, -KB_ECLOSED);
	shutdown(c->fd, SHUT_RDWR);
}

int kb_chan_fd(const struct kb_chan *c)
{
	return c->fd;
}

void kb_chan_set_rekey(struct kb_chan *c, uint64_t frames, uint64_t bytes)
{
	c->rekey_frames = frames ? frames : KB_CHAN_REKEY_FRAMES;
	c->rekey_bytes = bytes ? bytes : KB_CHAN_REKEY_BYTES;
}

void kb_chan_set_rekey_time(struct kb_chan *c, uint64_t ns)
{
	pthread_mutex_lock(&c->send_lock);
	c->rekey_ns = ns;
	c->flag_ok = ns != 0;
	c->tx_since = kb_now_ns();
	pthread_mutex_unlock(&c->send_lock);
}

uint64_t kb_chan_rekey_period(void)
{
	const char *e = getenv(KB_CHAN_REKEY_ENV);
	unsigned long long ms = e && *e ? strtoull(e, NULL, 10) : 0;

	if (!ms || ms * 1000000ull >= KB_CHAN_REKEY_NS)
		return KB_CHAN_REKEY_NS;
	return ms * 1000000ull;
}

void kb_chan_stats(const struct kb_chan *c, struct kb_chan_stats *st)
{
	st->frames_sent = atomic_load_explicit(&c->frames_sent, memory_order_relaxed);
	st->frames_recv = atomic_load_explicit(&c->frames_recv, memory_order_relaxed);
	st->bytes_sent = atomic_load_explicit(&c->bytes_sent, memory_order_relaxed);
	st->bytes_recv = atomic_load_explicit(&c->bytes_recv, memory_order_relaxed);
	st->rekeys = atomic_load_explicit(&c->rekeys, memory_order_relaxed);
	st->rekeys_time = atomic_load_explicit(&c->rekeys_time, memory_order_relaxed);
}

/* Rekey one direction now, by time: counters restart as after a volume
 * rekey (both sides do the same at the flagged frame). */
static int rekey_by_time(struct kb_chan *c, struct kb_aead *a, uint64_t *frames, uint64_t *bytes)
{
	int rc = kb_chan_rekey_aead(a);

	if (rc)
		return rc;
	*frames = 0;
	*bytes = 0;
	atomic_fetch_add_explicit(&c->rekeys, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->rekeys_time, 1, memory_order_relaxed);
	return 0;
}

/* Noise Rekey(): k = first 32 bytes of ENCRYPT(k, 2^64-1, "", zeros[32]). */
int kb_chan_rekey_aead(struct kb_aead *a)
{
	static const uint8_t zeros[KB_AEAD_KEY];
	uint8_t k[KB_AEAD_KEY], tag[KB_AEAD_TAG]; /* stack; wiped below */
	int rc;

	rc = kb_aead_seal(a, UINT64_MAX, NULL, 0, zeros, k, sizeof(k), tag);
	if (!rc)
		rc = kb_aead_set_key(a, k);
	kb_memzero(k, sizeof(k));
	kb_memzero(tag, sizeof(tag));
	return rc;
}

/* Count one frame of `ct` bytes on a direction and rekey when due. */
static int chan_account(struct kb_chan *c, struct kb_aead *a, uint64_t *frames, uint64_t *bytes,
			size_t ct)
{
	int rc;

	*frames += 1;
	*bytes += ct;
	if (*frames < c->rekey_frames && *bytes < c->rekey_bytes)
		return 0;
	*frames = 0;
	*bytes = 0;
	rc = kb_chan_rekey_aead(a);
	if (rc)
		return rc;
	atomic_fetch_add_explicit(&c->rekeys, 1, memory_order_relaxed);
	return 0;
}

/* One frame out, all of it, no SIGPIPE. Partial writes and EINTR loop. */
static int chan_write(struct kb_chan *c, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r;

		if (c->use_write)
			r = write(c->fd, p, n);
		else
			r = send(c->fd, p, n, MSG_NOSIGNAL | (c->dontwait ? MSG_DONTWAIT : 0));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ENOTSOCK && !c->use_write) {
			c->use_write = 1;
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -KB_ETIMEOUT; /* SO_SNDTIMEO ran out mid-frame */
		if (r < 0)
			return -errno;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Send lock held: frame[0..head+plen+tag) is sealed in place and written. */
static int chan_send_locked(struct kb_chan *c, uint8_t *frame, size_t plen, bool gathered,
			    const struct iovec *iov, int iovcnt)
{
	size_t ct = plen + KB_FRAME_TAG;
	uint32_t flag = 0;
	int rc;

	if (c->tx_n == UINT64_MAX)
		return chan_fail(c, -KB_ENONCE);
	if (c->rekey_ns && kb_now_ns() - c->tx_since >= c->rekey_ns) {
		rc = rekey_by_time(c, c->tx, &c->tx_frames, &c->tx_bytes);
		if (rc)
			return chan_fail(c, rc);
		c->tx_since = kb_now_ns();
		flag = KB_FRAME_REKEYED;
	}
	kb_put_be32(frame, (uint32_t)ct | flag);
	if (gathered)
		rc = kb_aead_sealv(c->tx, c->tx_n, frame, KB_FRAME_HEAD, iov, iovcnt,
				   frame + KB_FRAME_HEAD, frame + KB_FRAME_HEAD + plen);
	else
		rc = kb_aead_seal(c->tx, c->tx_n, frame, KB_FRAME_HEAD, frame + KB_FRAME_HEAD,
				  frame + KB_FRAME_HEAD, plen, frame + KB_FRAME_HEAD + plen);
	if (rc)
		return chan_fail(c, rc);
	c->tx_n++;
	rc = chan_write(c, frame, KB_FRAME_HEAD + ct);
	if (!rc)
		rc = chan_account(c, c->tx, &c->tx_frames, &c->tx_bytes, ct);
	if (rc)
		return chan_fail(c, rc);
	if (c->rekey_ns && c->tx_frames == 0) /* rekeyed by volume just now */
		c->tx_since = kb_now_ns();
	atomic_fetch_add_explicit(&c->frames_sent, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->bytes_sent, plen, memory_order_relaxed);
	return 0;
}

int kb_chan_send(struct kb_chan *c, uint8_t *frame, size_t plen)
{
	int rc;

	if (plen > c->max_send)
		return -KB_ETOOBIG; /* caller error, nothing sent: not fatal */
	pthread_mutex_lock(&c->send_lock);
	rc = chan_dead(c);
	if (!rc)
		rc = chan_send_locked(c, frame, plen, false, NULL, 0);
	pthread_mutex_unlock(&c->send_lock);
	return rc;
}

int kb_chan_send_nowait(struct kb_chan *c, uint8_t *frame, size_t plen, int lock_ms)
{
	struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
	struct timespec dl;
	int rc;

	if (plen > c->max_send)
		return -KB_ETOOBIG;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += lock_ms / 1000;
	dl.tv_nsec += (long)(lock_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	if (pthread_mutex_timedlock(&c->send_lock, &dl))
		return -EAGAIN; /* another sender, maybe blocked on the peer */
	rc = chan_dead(c);
	if (!rc && (c->use_write || poll(&pf, 1, 0) != 1 || !(pf.revents & POLLOUT)))
		rc = -EAGAIN;
	if (!rc) {
		c->dontwait = 1;
		rc = chan_send_locked(c, frame, plen, false, NULL, 0);
		c->dontwait = 0;
	}
	pthread_mutex_unlock(&c->send_lock);
	return rc;
}

int kb_chan_sendv(struct kb_chan *c, const struct iovec *iov, int iovcnt)
{
	size_t plen = 0;
	int rc;

	if (iovcnt < 0)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > c->max_send - plen)
			return -KB_ETOOBIG;
		plen += iov[i].iov_len;
	}
	pthread_mutex_lock(&c->send_lock);
	rc = chan_dead(c);
	if (!rc)
		rc = chan_send_locked(c, c->sbuf, plen, true, iov, iovcnt);
	pthread_mutex_unlock(&c->send_lock);
	return rc;
}

/* SO_RCVTIMEO (set by a caller) running out shows as EAGAIN. */
static int timeout_err(int rc)
{
	return rc == -EAGAIN || rc == -EWOULDBLOCK ? -KB_ETIMEOUT : rc;
}

/* Check a frame's length bytes; *plen = plaintext length. Nothing else is
 * read or sized before this passes. */
int kb_chan_check_len(const struct kb_chan *c, const uint8_t head[KB_FRAME_HEAD], size_t *plen)
{
	uint32_t l = kb_get_be32(head);

	if (c->flag_ok)
		l &= ~KB_FRAME_REKEYED;
	if (l < KB_FRAME_TAG)
		return -KB_EPROTO;
	if (l - KB_FRAME_TAG > c->max_recv)
		return -KB_ETOOBIG;
	*plen = l - KB_FRAME_TAG;
	return 0;
}

int kb_chan_recv_len(struct kb_chan *c, size_t *plen)
{
	int rc = chan_dead(c);

	if (rc)
		return rc;
	if (c->pending != NO_PENDING) {
		*plen = c->pending;
		return 0;
	}
	rc = timeout_err(kb_read_full(c->fd, c->rx_head, KB_FRAME_HEAD));
	if (!rc)
		rc = kb_chan_check_len(c, c->rx_head, &c->pending);
	if (rc)
		return chan_fail(c, rc);
	*plen = c->pending;
	return 0;
}

/* Authenticate and decrypt buf[0..plen+tag) (already read) in place. On
 * failure the buffer is wiped and the channel is dead. */
int kb_chan_open_frame(struct kb_chan *c, const uint8_t head[KB_FRAME_HEAD], uint8_t *buf,
		       size_t plen)
{
	int rc;

	if (c->rx_n == UINT64_MAX) {
		rc = -KB_ENONCE;
		goto out;
	}
	if (c->flag_ok && (kb_get_be32(head) & KB_FRAME_REKEYED)) {
		rc = rekey_by_time(c, c->rx, &c->rx_frames, &c->rx_bytes);
		if (rc)
			goto out;
	}
	rc = kb_aead_open(c->rx, c->rx_n, head, KB_FRAME_HEAD, buf, plen, buf + plen);
	if (rc)
		goto out;
	c->rx_n++;
	rc = chan_account(c, c->rx, &c->rx_frames, &c->rx_bytes, plen + KB_FRAME_TAG);
	if (rc)
		goto out;
	atomic_fetch_add_explicit(&c->frames_recv, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->bytes_recv, plen, memory_order_relaxed);
	return 0;
out:
	kb_memzero(buf, plen + KB_FRAME_TAG);
	return chan_fail(c, rc);
}

int kb_chan_recv_body(struct kb_chan *c, uint8_t *buf, size_t plen)
{
	int rc = chan_dead(c);

	if (rc)
		return rc;
	if (c->pending == NO_PENDING || plen != c->pending)
		return -EINVAL; /* caller bug: recv_len first, with its plen */
	c->pending = NO_PENDING;
	rc = timeout_err(kb_read_full(c->fd, buf, plen + KB_FRAME_TAG));
	if (rc == -KB_ECLOSED)
		rc = -KB_ETRUNC; /* the length arrived, the body did not */
	if (rc) {
		kb_memzero(buf, plen + KB_FRAME_TAG);
		return chan_fail(c, rc);
	}
	return kb_chan_open_frame(c, c->rx_head, buf, plen);
}

int kb_chan_recv(struct kb_chan *c, uint8_t *buf, size_t cap, size_t *plen)
{
	int rc = kb_chan_recv_len(c, plen);

	if (rc)
		return rc;
	if (*plen > cap || cap - *plen < KB_FRAME_TAG)
		return chan_fail(c, -KB_ETOOBIG);
	return kb_chan_recv_body(c, buf, *plen);
}
