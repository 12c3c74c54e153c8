/* chan.h - the encrypted frame channel over one connected socket.
 *
 * kb_chan_handshake() runs Noise_XX_25519_AESGCM_SHA256 (XXpsk3 with a
 * pre-shared key) on the socket, checks the peer's static key with the
 * caller's verify callback, negotiates version/capabilities/max frame in the
 * handshake payloads, and then (responder) sends / (initiator) waits for one
 * empty "accepted" transport frame, so a client learns that the server
 * refused its key (-KB_EREFUSED) instead of seeing a bare EOF later.
 *
 * Transport frames: [4-byte BE length L][L bytes = ciphertext + 16-byte tag],
 * L = plaintext + 16, the 4 length bytes are the AEAD associated data, nonce
 * = per-direction 64-bit counter. A length over the negotiated maximum is
 * rejected before any buffer is touched. Rekey (Noise Rekey()) in step on
 * both sides every KB_CHAN_REKEY_FRAMES frames or KB_CHAN_REKEY_BYTES bytes
 * per direction, whichever first; and, when both peers offered
 * KB_CHAN_CAP_REKEY_TIME, by the sender alone once KB_CHAN_REKEY_NS have
 * passed since that direction's last rekey: the first frame under the new
 * key carries KB_FRAME_REKEYED in its length word (authenticated as part
 * of the AD), and the receiver rekeys before opening it. Any failure is
 * fatal to the channel: every later call returns the same error.
 *
 * Zero copy: kb_chan_send() encrypts in place in the caller's buffer and
 * sends it with one send(); kb_chan_recv_*() read straight into the caller's
 * buffer and decrypt in place. No malloc per frame.
 *
 * Threads: one thread may receive while any number send (sends are
 * serialised by an internal lock, which also orders the nonces).
 */
#ifndef KB_CHAN_H
#define KB_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "aead.h"

#define KB_FRAME_HEAD 4 /* length prefix */
#define KB_FRAME_TAG 16 /* AEAD tag after the ciphertext */
/* Default maximum plaintext per frame: a 4 MiB block plus header room. */
#define KB_FRAME_MAX_DEFAULT ((4u << 20) + 4096u)
#define KB_FRAME_MAX_LIMIT (16u << 20)
#define KB_CHAN_REKEY_FRAMES (1ull << 20)
#define KB_CHAN_REKEY_BYTES (32ull << 30)
/* Time-based rekey (as WireGuard's REKEY_AFTER_TIME): 2 minutes of traffic.
 * KEIBIFS_REKEY_MS in the environment can only shorten it (tests). */
#define KB_CHAN_REKEY_NS (120ull * 1000000000ull)
#define KB_CHAN_REKEY_ENV "KEIBIFS_REKEY_MS"
/* Capability bit of the channel itself (never reported in info.caps). */
#define KB_CHAN_CAP_REKEY_TIME (1ull << 63)
/* Length word flag: this frame is the first under the next key. */
#define KB_FRAME_REKEYED 0x80000000u
#define KB_PROTO_VERSION 1u
#define KB_CHAN_PROLOGUE "keibifs/1"

struct kb_noise_rng;

struct kb_chan_cfg {
	bool initiator;
	const uint8_t *s;   /* local static private key, 32 bytes */
	const uint8_t *psk; /* NULL, or 32 bytes: switches to XXpsk3 */
	enum kb_aead_backend backend;
	uint32_t max_frame; /* largest plaintext we accept (0: default) */
	uint64_t caps;      /* capability bits we offer */
	struct kb_noise_rng *rng;
	int timeout_ms; /* bound on the whole handshake (0: 15 s) */
	/* Decide on the peer's static key: 0 to accept (set *flags), negative
	 * (e.g. -KB_EUNTRUSTED) to refuse. Called before we reveal anything
	 * more. */
	int (*verify)(void *arg, const uint8_t rs[static 32], unsigned *flags);
	void *verify_arg;
};

struct kb_chan_info {
	uint8_t remote_static[32]; /* valid once received, even on refusal */
	bool have_remote_static;
	uint32_t version;   /* negotiated: min of both sides' versions */
	uint64_t caps;      /* intersection of both sides' caps */
	uint32_t max_frame; /* what the peer accepts from us */
	unsigned flags;     /* from verify */
	uint8_t hash[32];   /* handshake hash (channel binding) */
};

struct kb_chan; /* opaque; owns the fd (closed by kb_chan_free) */

/* On failure the fd is closed and info->remote_static tells who it was. */
int kb_chan_handshake(struct kb_chan **out, int fd, const struct kb_chan_cfg *cfg,
		      struct kb_chan_info *info);
/* Build a channel from raw keys (tests, benchmarks): no handshake. */
int kb_chan_from_keys(struct kb_chan **out, int fd, enum kb_aead_backend be,
		      const uint8_t send_key[static 32], const uint8_t recv_key[static 32],
		      uint32_t max_frame_send, uint32_t max_frame_recv);
void kb_chan_free(struct kb_chan *c); /* NULL-safe; closes fd, wipes keys */
/* Wake a blocked receiver/sender and make every later call fail (any thread). */
void kb_chan_shutdown(struct kb_chan *c);
int kb_chan_fd(const struct kb_chan *c);

/* Send the plaintext at frame[KB_FRAME_HEAD .. KB_FRAME_HEAD+plen); the
 * caller's buffer must have KB_FRAME_TAG bytes of room after it. It is
 * encrypted in place (the buffer's contents are ciphertext afterwards). */
int kb_chan_send(struct kb_chan *c, uint8_t *frame, size_t plen);
/* kb_chan_send without waiting on the peer, and on another sender at most
 * lock_ms: -EAGAIN (nothing sent, channel intact) when either would block.
 * Room for a small frame is checked first; a frame the socket then takes
 * only in part kills the channel (-KB_ETIMEOUT). For small frames to peers
 * that may not read (server pushes). */
int kb_chan_send_nowait(struct kb_chan *c, uint8_t *frame, size_t plen, int lock_ms);
/* Send gathered plaintext (e.g. a small header + file data from the kernel):
 * encrypted out of place into the channel's own preallocated buffer. */
int kb_chan_sendv(struct kb_chan *c, const struct iovec *iov, int iovcnt);

/* Read the next frame's length: *plen = plaintext bytes. */
int kb_chan_recv_len(struct kb_chan *c, size_t *plen);
/* Read that frame into buf (plen + KB_FRAME_TAG bytes of room) and decrypt
 * in place: plaintext at buf[0..plen). */
int kb_chan_recv_body(struct kb_chan *c, uint8_t *buf, size_t plen);

struct kb_chan_stats {
	uint64_t frames_sent, frames_recv, bytes_sent, bytes_recv; /* plaintext bytes */
	uint64_t rekeys;                                           /* both directions together */
	uint64_t rekeys_time; /* of those, by time (flagged frames sent or received) */
};
void kb_chan_stats(const struct kb_chan *c, struct kb_chan_stats *st);

/* recv_len + recv_body into buf (cap bytes, must hold plen + KB_FRAME_TAG;
 * a longer frame kills the channel with -KB_ETOOBIG). */
int kb_chan_recv(struct kb_chan *c, uint8_t *buf, size_t cap, size_t *plen);
/* Rekey schedule (tests): both peers must use the same values; 0 = default.
 * Call before the first frame. */
void kb_chan_set_rekey(struct kb_chan *c, uint64_t frames, uint64_t bytes);
/* Time-based rekey: send a flagged frame under a new key once `ns` have
 * passed (0: never by time), and accept the peer's flagged frames. The
 * handshake turns it on when both peers offer it (kb_chan_rekey_period). */
void kb_chan_set_rekey_time(struct kb_chan *c, uint64_t ns);
/* KB_CHAN_REKEY_NS, or less from $KEIBIFS_REKEY_MS (1 ms at least). */
uint64_t kb_chan_rekey_period(void);

/* Shared by chan.c and chan_hs.c (and the tests); not for other modules. */
/* On success the channel owns fd, tx and rx; on failure the caller still
 * does. max 0 = KB_FRAME_MAX_DEFAULT. */
int kb_chan_new_aead(struct kb_chan **out, int fd, struct kb_aead *tx, struct kb_aead *rx,
		     uint32_t max_send, uint32_t max_recv);
/* Noise Rekey() on an AEAD key (nonce 2^64-1 over 32 zero bytes). */
int kb_chan_rekey_aead(struct kb_aead *a);
/* Bound a frame's length bytes: *plen or -KB_EPROTO / -KB_ETOOBIG. */
int kb_chan_check_len(const struct kb_chan *c, const uint8_t head[KB_FRAME_HEAD], size_t *plen);
/* Open an already-read frame body (plen + tag bytes) in place; wipes and
 * kills the channel on failure. */
int kb_chan_open_frame(struct kb_chan *c, const uint8_t head[KB_FRAME_HEAD], uint8_t *buf,
		       size_t plen);

#endif
