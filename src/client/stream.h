/* stream.h - the client side of the write-behind stream (PROTOCOL.md,
 * "Write-behind").
 *
 * Changes the client answered itself are sent here as positions 1, 2, 3,
 * ... of its session's ordered stream (Request.seq), pipelined, without
 * waiting for each reply: the server runs them in that order. Positions
 * are per session: after a new session (server restart) numbering starts
 * again, and requests of the old one in flight fail (their outcome is
 * unknown; the rpc reports EIO). All go out on connection 0, in order; a
 * reconnect re-sends them in order too. A sender thread sends what is
 * queued at once; what queued up meanwhile (the connection's window
 * full) goes as one COMPOUND when the server has FEATURE_COMPOUND.
 *
 * Bounded: at most max_ops requests and max_bytes of bulk unanswered;
 * a submit past that waits (backpressure) up to the timeout.
 *
 * Errors are never lost: each request's status goes to its callback, and
 * the stream also keeps the first error of a kb_stream_submit since the
 * last kb_stream_drain, which returns it (keibifs --sync, unmount); a
 * kb_stream_call's status is its caller's alone.
 */
#ifndef KB_STREAM_H
#define KB_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc.h"

struct kb_stream; /* opaque, thread-safe */

/* The most positions one stream may have unanswered (the server's
 * window). */
#define KB_STREAM_MAX_OPS 4096

#define KB_STREAM_NOW UINT64_MAX /* kb_stream_submit_basis: the ids are current */

int kb_stream_new(struct kb_stream **out, struct kb_rpc *r, unsigned max_ops, size_t max_bytes,
		  int timeout_ms);
/* Stop the sender thread (before the rpc goes): what is queued and not
 * yet sent fails (-ESHUTDOWN), later submits too. Drain first. NULL-safe. */
void kb_stream_stop(struct kb_stream *st);
/* Stops it, waits for nothing else: drain first. NULL-safe. */
void kb_stream_free(struct kb_stream *st);

/* Queue req (req->seq is set here) with its bulk, which must stay valid
 * until cb runs. cb (may be NULL) runs once on an rpc thread with the
 * status (also when it could not be sent), or not at all when this
 * returns < 0 (-ETIMEDOUT: the stream stayed full; -ESHUTDOWN: stopped). */
int kb_stream_submit(struct kb_stream *st, kb_Request *req, const void *bulk, size_t bulk_len,
		     kb_rpc_cb cb, void *arg);
/* The same for a request whose ids (a file handle) belong to session
 * generation `basis` (kb_rpc_gen; KB_STREAM_NOW: the current one). Answered ESTALE or
 * EBADF while that session is not the one it went to, it is not an error
 * of the stream: its caller sends it again on ids of the new session. */
int kb_stream_submit_basis(struct kb_stream *st, uint64_t basis, kb_Request *req, const void *bulk,
			   size_t bulk_len, kb_rpc_cb cb, void *arg);
/* The same, waiting for the reply: take (may be NULL) sees it. Returns
 * the status. */
int kb_stream_call(struct kb_stream *st, kb_Request *req, const void *bulk, size_t bulk_len,
		   kb_rpc_take_fn take, void *arg);
/* The same, the reply in res (its frame referenced: kb_rpc_result_reset). */
int kb_stream_call_res(struct kb_stream *st, kb_Request *req, const void *bulk, size_t bulk_len,
		       struct kb_rpc_result *res);
/* Wait until every request submitted before this call is answered (at
 * most timeout_ms: -ETIMEDOUT), then return the first error any stream
 * request got since the last drain, and forget it; 0 when none. */
int kb_stream_drain(struct kb_stream *st, int timeout_ms);
/* Wait as kb_stream_drain, but leave the first error for the drain. */
int kb_stream_wait(struct kb_stream *st, int timeout_ms);
/* Requests submitted and not answered yet. */
unsigned kb_stream_pending(struct kb_stream *st);

struct kb_stream_stats {
	uint64_t sent;        /* requests submitted */
	uint64_t frames;      /* frames they went in */
	uint64_t compounds;   /* of which COMPOUNDs (several requests) */
	uint64_t failed;      /* answered with an error (or failed in transport) */
	unsigned pending;     /* unanswered now */
	size_t pending_bytes; /* their bulk */
	unsigned max_pending; /* most unanswered at once */
	int last_err;         /* -errno of the last failure; 0: none */
	uint32_t last_err_op; /* its kb_Op */
	int64_t last_err_time;
};
void kb_stream_stats(struct kb_stream *st, struct kb_stream_stats *out);

#endif
