/* err.h - error convention for keibifs.
 *
 * Every function returns 0 (or a non-negative count) on success and a
 * negative value on failure: either -errno, or one of the named protocol and
 * crypto codes below, which live below the errno range (errno < 4096) so they
 * can never be confused with one. They collapse to EIO / ENOTCONN
 * only at the FUSE boundary (kb_err_to_errno(), where a request timed out
 * past -o timeout, -ETIMEDOUT, is EIO too).
 */
#ifndef KB_ERR_H
#define KB_ERR_H

enum kb_err {
	KB_ERR_BASE = 4096,
	KB_EBADTAG,    /* AEAD authentication failed (tamper, replay, reorder) */
	KB_ETOOBIG,    /* frame length over the negotiated maximum */
	KB_ETRUNC,     /* peer closed mid-frame */
	KB_ECLOSED,    /* peer closed the connection cleanly */
	KB_EHANDSHAKE, /* malformed or failed handshake message */
	KB_EUNTRUSTED, /* peer's static key is not pinned */
	KB_EREFUSED,   /* server refused our key (closed after handshake) */
	KB_EVERSION,   /* no common protocol version */
	KB_EPROTO,     /* malformed protocol message */
	KB_ENONCE,     /* nonce space exhausted */
	KB_ETIMEOUT,   /* peer did not answer in time */
	KB_ECRYPTO,    /* crypto library failure */
	KB_ERR_MAX
};

/* Human-readable text for 0, -errno or -KB_E*; never NULL. */
const char *kb_strerror(int err);

/* Collapse a negative error to a negative errno value for the kernel. */
int kb_err_to_errno(int err);

#endif
