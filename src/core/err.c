/* err.c - text and errno mapping for keibifs error codes. */
#include <errno.h>
#include <string.h>

#include "err.h"

static const char *const kb_err_text[KB_ERR_MAX - KB_ERR_BASE] = {
	[KB_EBADTAG -
	 KB_ERR_BASE] = "frame failed authentication (tampered, replayed or reordered)",
	[KB_ETOOBIG - KB_ERR_BASE] = "frame longer than the negotiated maximum",
	[KB_ETRUNC - KB_ERR_BASE] = "connection closed in the middle of a frame",
	[KB_ECLOSED - KB_ERR_BASE] = "connection closed by peer",
	[KB_EHANDSHAKE - KB_ERR_BASE] = "handshake failed",
	[KB_EUNTRUSTED - KB_ERR_BASE] = "peer's key is not trusted",
	[KB_EREFUSED - KB_ERR_BASE] = "peer refused our key",
	[KB_EVERSION - KB_ERR_BASE] = "no common protocol version",
	[KB_EPROTO - KB_ERR_BASE] = "malformed protocol message",
	[KB_ENONCE - KB_ERR_BASE] = "nonce space exhausted",
	[KB_ETIMEOUT - KB_ERR_BASE] = "peer did not answer in time",
	[KB_ECRYPTO - KB_ERR_BASE] = "crypto library failure",
};

const char *kb_strerror(int err)
{
	int e = err < 0 ? -err : err;

	if (e == 0)
		return "success";
	if (e > KB_ERR_BASE && e < KB_ERR_MAX && kb_err_text[e - KB_ERR_BASE])
		return kb_err_text[e - KB_ERR_BASE];
	if (e < KB_ERR_BASE)
		return strerror(e);
	return "unknown error";
}

int kb_err_to_errno(int err)
{
	int e = err < 0 ? -err : err;

	if (e == 0)
		return 0;
	/* A request unanswered past its deadline: EIO, as keibifs(1) says
	 * (ETIMEDOUT is no file system error a program expects). */
	if (e == ETIMEDOUT || e == KB_ETIMEOUT)
		return -EIO;
	if (e < KB_ERR_BASE)
		return -e;
	switch (e) {
	case KB_ECLOSED:
	case KB_ETRUNC:
	case KB_EREFUSED:
	case KB_EUNTRUSTED:
	case KB_EHANDSHAKE:
	case KB_EVERSION: return -ENOTCONN;
	default: return -EIO;
	}
}
