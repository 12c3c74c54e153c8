/* chan_hs.c - kb_chan_handshake(): Noise_XX(psk3)_25519_AESGCM_SHA256 on a
 * socket, the hello payloads (PROTOCOL.md section 1), the verify callback and
 * the responder's empty "accepted" frame.
 *
 * Every read and write of the handshake waits with poll() against one
 * deadline and uses MSG_DONTWAIT, so the fd's own mode is never changed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "err.h"
#include "noise.h"
#include "util.h"

#define HS_TIMEOUT_MS 15000
#define HELLO_LEN 20
#define HELLO_MAGIC "KBH1"
#define PROTO_MIN_VERSION 1u

struct hs {
	int fd;            /* borrowed until the channel owns it */
	uint64_t deadline; /* kb_now_ns() bound of the whole handshake */
	const struct kb_chan_cfg *cfg;
	struct kb_chan_info *info; /* caller's */
	struct kb_noise_hs *ns;    /* owned */
	struct kb_noise_rng *rng;  /* cfg's, or owned_rng */
	struct kb_noise_rng *owned_rng;
	uint8_t *msg;      /* owned: 2-byte length + one message */
	uint8_t *payload;  /* owned: a received payload */
	uint32_t max_recv; /* what we announce */
	uint16_t peer_vmax, peer_vmin;
	uint64_t peer_caps;
	bool rekey_time;   /* both offered KB_CHAN_CAP_REKEY_TIME */
	uint32_t peer_max; /* what the peer accepts (clamped) */
};

/* Wait until fd is ready for `ev` or the deadline passes. */
static int hs_wait(struct hs *h, short ev)
{
	for (;;) {
		uint64_t now = kb_now_ns();
		struct pollfd p = {.fd = h->fd, .events = ev};
		int r;

		if (now >= h->deadline)
			return -KB_ETIMEOUT;
		r = poll(&p, 1, (int)((h->deadline - now + 999999) / 1000000));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0)
			return 0;
	}
}

static int hs_read(struct hs *h, uint8_t *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r;
		int rc = hs_wait(h, POLLIN);

		if (rc)
			return rc;
		r = recv(h->fd, p + done, n - done, MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return done ? -KB_ETRUNC : -KB_ECLOSED;
		done += (size_t)r;
	}
	return 0;
}

static int hs_write(struct hs *h, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r;
		int rc = hs_wait(h, POLLOUT);

		if (rc)
			return rc;
		r = send(h->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (r < 0)
			return -errno;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* WriteMessage(payload) and send it with its 2-byte BE length. */
static int hs_send_msg(struct hs *h, const uint8_t *payload, size_t plen)
{
	size_t len;
	int rc;

	rc = kb_noise_hs_write(h->ns, payload, plen, h->msg + 2, KB_NOISE_MAX_MSG, &len);
	if (rc)
		return rc;
	h->msg[0] = (uint8_t)(len >> 8);
	h->msg[1] = (uint8_t)len;
	return hs_write(h, h->msg, len + 2);
}

/* Receive one message and ReadMessage() it; payload in h->payload. */
static int hs_recv_msg(struct hs *h, size_t *plen)
{
	size_t len;
	int rc;

	rc = hs_read(h, h->msg, 2);
	if (rc)
		return rc;
	len = (size_t)h->msg[0] << 8 | h->msg[1];
	rc = hs_read(h, h->msg + 2, len);
	if (rc)
		return rc == -KB_ECLOSED ? -KB_ETRUNC : rc;
	rc = kb_noise_hs_read(h->ns, h->msg + 2, len, h->payload, KB_NOISE_MAX_MSG, plen);
	return rc ? -KB_EHANDSHAKE : 0;
}

static void hello_put(const struct hs *h, uint8_t out[HELLO_LEN])
{
	memcpy(out, HELLO_MAGIC, 4);
	out[4] = (uint8_t)(KB_PROTO_VERSION >> 8);
	out[5] = (uint8_t)KB_PROTO_VERSION;
	out[6] = (uint8_t)(PROTO_MIN_VERSION >> 8);
	out[7] = (uint8_t)PROTO_MIN_VERSION;
	kb_put_be64(out + 8, h->cfg->caps | KB_CHAN_CAP_REKEY_TIME);
	kb_put_be32(out + 16, h->max_recv);
}

/* Parse the peer's hello (already authenticated by Noise). */
static int hello_get(struct hs *h, const uint8_t *p, size_t n)
{
	uint32_t maxf;

	if (n < HELLO_LEN || memcmp(p, HELLO_MAGIC, 4))
		return -KB_EHANDSHAKE;
	h->peer_vmax = (uint16_t)(p[4] << 8 | p[5]);
	h->peer_vmin = (uint16_t)(p[6] << 8 | p[7]);
	if (!h->peer_vmin || h->peer_vmin > h->peer_vmax)
		return -KB_EHANDSHAKE;
	h->peer_caps = (uint64_t)kb_get_be32(p + 8) << 32 | kb_get_be32(p + 12);
	maxf = kb_get_be32(p + 16);
	if (!maxf)
		maxf = KB_FRAME_MAX_DEFAULT;
	h->peer_max = KB_MIN(maxf, KB_FRAME_MAX_LIMIT);
	return 0;
}

/* The highest version both support, or -KB_EVERSION. */
static int negotiate(struct hs *h)
{
	uint32_t v = KB_MIN(KB_PROTO_VERSION, (uint32_t)h->peer_vmax);

	if (v < KB_MAX(PROTO_MIN_VERSION, (uint32_t)h->peer_vmin))
		return -KB_EVERSION;
	h->info->version = v;
	h->info->caps = h->cfg->caps & h->peer_caps & ~KB_CHAN_CAP_REKEY_TIME;
	h->rekey_time = h->peer_caps & KB_CHAN_CAP_REKEY_TIME;
	h->info->max_frame = h->peer_max;
	return 0;
}

/* The peer's hello is in; learn its key, ask the caller, negotiate. */
static int judge_peer(struct hs *h, size_t plen)
{
	struct kb_chan_info *info = h->info;
	int rc;

	rc = kb_noise_hs_remote_static(h->ns, info->remote_static);
	if (rc)
		return -KB_EHANDSHAKE;
	info->have_remote_static = true;
	rc = hello_get(h, h->payload, plen);
	if (rc)
		return rc;
	rc = h->cfg->verify(h->cfg->verify_arg, info->remote_static, &info->flags);
	if (rc)
		return rc < 0 ? rc : -KB_EUNTRUSTED;
	return negotiate(h);
}

/* Split() into a channel that owns the fd from here on. */
static int make_chan(struct hs *h, struct kb_chan **out)
{
	struct kb_noise_cs tx, rx; /* their aeads move into the channel */
	int rc;

	kb_noise_hs_hash(h->ns, h->info->hash);
	rc = kb_noise_hs_split(h->ns, &tx, &rx);
	if (rc)
		return rc;
	rc = kb_chan_new_aead(out, h->fd, tx.aead, rx.aead, h->peer_max, h->max_recv);
	if (!rc) {
		tx.aead = NULL;
		rx.aead = NULL;
		if (h->rekey_time)
			kb_chan_set_rekey_time(*out, kb_chan_rekey_period());
	}
	kb_noise_cs_destroy(&tx);
	kb_noise_cs_destroy(&rx);
	return rc;
}

/* Initiator: the responder's first frame must be an empty one. A close
 * before it means the responder refused our key. */
static int wait_accepted(struct hs *h, struct kb_chan *c)
{
	uint8_t head[KB_FRAME_HEAD], tag[KB_FRAME_TAG];
	size_t plen;
	int rc;

	rc = hs_read(h, head, sizeof(head));
	if (rc == -KB_ECLOSED || rc == -ECONNRESET)
		return -KB_EREFUSED;
	if (rc)
		return rc;
	rc = kb_chan_check_len(c, head, &plen);
	if (rc || plen)
		return -KB_EHANDSHAKE;
	rc = hs_read(h, tag, sizeof(tag));
	if (rc)
		return rc == -KB_ECLOSED ? -KB_ETRUNC : rc;
	return kb_chan_open_frame(c, head, tag, 0);
}

static int run_initiator(struct hs *h, struct kb_chan **out)
{
	uint8_t hello[HELLO_LEN];
	size_t plen;
	int rc;

	rc = hs_send_msg(h, NULL, 0); /* -> e */
	if (!rc)
		rc = hs_recv_msg(h, &plen); /* <- e, ee, s, es + hello */
	if (!rc)
		rc = judge_peer(h, plen); /* before we reveal s */
	if (rc)
		return rc;
	hello_put(h, hello);
	rc = hs_send_msg(h, hello, sizeof(hello)); /* -> s, se + hello */
	if (!rc)
		rc = make_chan(h, out);
	if (rc)
		return rc;
	rc = wait_accepted(h, *out);
	if (rc) {
		h->fd = -1; /* closed with the channel */
		kb_chan_free(*out);
		*out = NULL;
	}
	return rc;
}

static int run_responder(struct hs *h, struct kb_chan **out)
{
	uint8_t hello[HELLO_LEN], frame[KB_FRAME_HEAD + KB_FRAME_TAG];
	size_t plen;
	int rc;

	rc = hs_recv_msg(h, &plen); /* -> e (payload ignored) */
	hello_put(h, hello);
	if (!rc)
		rc = hs_send_msg(h, hello, sizeof(hello)); /* <- e, ee, s, es + hello */
	if (!rc)
		rc = hs_recv_msg(h, &plen); /* -> s, se + hello */
	if (!rc)
		rc = judge_peer(h, plen);
	if (!rc)
		rc = make_chan(h, out);
	if (rc)
		return rc;
	rc = kb_chan_send(*out, frame, 0); /* "accepted" */
	if (rc) {
		h->fd = -1;
		kb_chan_free(*out);
		*out = NULL;
	}
	return rc;
}

static int hs_setup(struct hs *h)
{
	const struct kb_chan_cfg *cfg = h->cfg;
	struct kb_noise_hs_cfg ncfg = {
		.protocol = cfg->psk ? "Noise_XXpsk3_25519_AESGCM_SHA256"
				     : "Noise_XX_25519_AESGCM_SHA256",
		.initiator = cfg->initiator,
		.prologue = (const uint8_t *)KB_CHAN_PROLOGUE,
		.prologue_len = strlen(KB_CHAN_PROLOGUE),
		.s = cfg->s,
		.psk = cfg->psk,
		.backend = cfg->backend,
	};
	int one = 1, rc;

	if (!cfg->s || !cfg->verify || cfg->max_frame > KB_FRAME_MAX_LIMIT)
		return -EINVAL;
	h->max_recv = cfg->max_frame ? cfg->max_frame : KB_FRAME_MAX_DEFAULT;
	h->deadline = kb_now_ns() +
		      (uint64_t)(cfg->timeout_ms > 0 ? cfg->timeout_ms : HS_TIMEOUT_MS) * 1000000;
	/* handshake messages and small requests must not wait for Nagle */
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	h->rng = cfg->rng;
	if (!h->rng) {
		rc = kb_noise_rng_new(&h->owned_rng);
		if (rc)
			return rc;
		h->rng = h->owned_rng;
	}
	ncfg.rng = h->rng;
	h->msg = malloc(2 + KB_NOISE_MAX_MSG);
	h->payload = malloc(KB_NOISE_MAX_MSG);
	if (!h->msg || !h->payload)
		return -ENOMEM;
	return kb_noise_hs_new(&h->ns, &ncfg);
}

int kb_chan_handshake(struct kb_chan **out, int fd, const struct kb_chan_cfg *cfg,
		      struct kb_chan_info *info)
{
	struct kb_chan_info dummy;
	struct hs h = {.fd = fd, .cfg = cfg, .info = info ? info : &dummy};
	struct kb_chan *c = NULL; /* handed to *out on success */
	int rc;

	memset(h.info, 0, sizeof(*h.info));
	rc = hs_setup(&h);
	if (!rc)
		rc = cfg->initiator ? run_initiator(&h, &c) : run_responder(&h, &c);
	if (!rc)
		*out = c;
	else if (h.fd >= 0)
		close(h.fd);
	kb_noise_hs_free(h.ns);
	kb_noise_rng_free(h.owned_rng);
	if (h.msg)
		kb_memzero(h.msg, 2 + KB_NOISE_MAX_MSG);
	if (h.payload)
		kb_memzero(h.payload, KB_NOISE_MAX_MSG);
	free(h.msg);
	free(h.payload);
	return rc;
}
