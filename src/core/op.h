/* op.h - what each protocol operation is: one table (op.c) that the client
 * (re-sending after a reconnect), the server (reply cache, read-only
 * sessions, the receiver thread's quick ops) and the mount (caller
 * credentials) all read, instead of switches of their own.
 *
 * A value of kb_Op the table does not list has no properties (0):
 * tests/test_op.c walks every value of the generated enum and fails on an
 * operation of proto/keibifs.proto the table does not classify, and op.c's
 * switch has no default, so a new kb_Op is a build error until it is.
 */
#ifndef KB_OP_H
#define KB_OP_H

#include <stdbool.h>
#include <stdint.h>

enum kb_op_prop {
	KB_OP_KNOWN = 1u << 0,      /* an operation of this protocol version */
	KB_OP_IDEMPOTENT = 1u << 1, /* running it twice is running it once: re-sent
				     * as is after a reconnect, also to a new
				     * session (where old ids get ESTALE/EBADF) */
	KB_OP_REPLAY = 1u << 2,     /* not idempotent: the server keeps its reply by
				     * request id and answers a re-sent copy from
				     * it; on a new session the client fails it
				     * with EIO (outcome unknown) */
	KB_OP_MUTATING = 1u << 3,   /* changes the share: EROFS on a read-only session */
	KB_OP_QUICK = 1u << 4,      /* served on the server's receiver thread when its
				     * arguments allow (srv_sess.c: small WRITEs,
				     * SETATTR without a size, CREATE without O_TRUNC) */
	KB_OP_BULK_IN = 1u << 5,    /* the request carries bulk bytes */
	KB_OP_BULK_OUT = 1u << 6,   /* the reply carries bulk bytes */
	KB_OP_CREDS = 1u << 7,      /* sent with the caller's credentials
				     * (owners=preserve) */
	KB_OP_FIRST = 1u << 8,      /* only as a connection's first request */
	KB_OP_PUSH = 1u << 9,       /* server to client only (id 0) */
};

/* The properties of op (a kb_Op value); 0 for a value that is no operation. */
uint32_t kb_op_props(uint32_t op);
static inline bool kb_op_is(uint32_t op, uint32_t prop)
{
	return (kb_op_props(op) & prop) == prop;
}

#endif
