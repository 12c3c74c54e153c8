/* op.c - the table of operation properties (op.h). */
#include "keibifs.pb.h"
#include "op.h"

#define K KB_OP_KNOWN
#define I KB_OP_IDEMPOTENT
#define R KB_OP_REPLAY
#define M KB_OP_MUTATING
#define Q KB_OP_QUICK
#define BI KB_OP_BULK_IN
#define BO KB_OP_BULK_OUT
#define C KB_OP_CREDS

uint32_t kb_op_props(uint32_t op)
{
	/* No default: a kb_Op missing here is a -Wswitch error. */
	switch ((kb_Op)op) {
	case kb_Op_OP_NONE: return 0;
	case kb_Op_HELLO: return K | KB_OP_FIRST;
	case kb_Op_ATTACH: return K | KB_OP_FIRST;
	case kb_Op_LOOKUP: return K | I | Q;
	/* Not idempotent: a copy re-sent after a cut would drop the count
	 * twice and make a node the client still holds stale. */
	case kb_Op_FORGET: return K | R | Q;
	case kb_Op_GETATTR: return K | I | Q;
	case kb_Op_SETATTR: return K | R | M | Q;
	case kb_Op_OPENDIR: return K | R | Q;
	case kb_Op_READDIR: return K | I | BO;
	/* Twice: the second finds no handle (EBADF), which nobody waits for. */
	case kb_Op_RELEASEDIR: return K | I | Q;
	case kb_Op_OPEN: return K | R;
	case kb_Op_CREATE: return K | R | M | Q | C;
	case kb_Op_READ: return K | I | BO;
	/* At its offset. (An O_APPEND handle appends again: with the
	 * writeback cache, the default, the mount opens none.) */
	case kb_Op_WRITE: return K | I | M | Q | BI | C;
	case kb_Op_FLUSH: return K | I;
	case kb_Op_FSYNC: return K | I;
	case kb_Op_RELEASE: return K | I | Q;
	case kb_Op_MKDIR: return K | R | M | Q | C;
	case kb_Op_MKNOD: return K | R | M | Q | C;
	case kb_Op_UNLINK: return K | R | M | Q | C;
	case kb_Op_RMDIR: return K | R | M | Q | C;
	case kb_Op_RENAME: return K | R | M | Q | C;
	case kb_Op_LINK: return K | R | M | Q | C;
	case kb_Op_SYMLINK: return K | R | M | Q | C;
	case kb_Op_READLINK: return K | I | Q;
	case kb_Op_STATFS: return K | I | Q;
	case kb_Op_GETXATTR: return K | I | BO;
	case kb_Op_SETXATTR: return K | R | M | Q | BI | C;
	case kb_Op_LISTXATTR: return K | I | BO;
	case kb_Op_REMOVEXATTR: return K | R | M | Q | C;
	/* Twice would punch or zero again after a write in between. */
	case kb_Op_FALLOCATE: return K | R | M | C;
	/* Twice would copy again (an append copies twice). */
	case kb_Op_COPY_FILE_RANGE: return K | R | M;
	case kb_Op_LSEEK: return K | I;
	case kb_Op_PING: return K | I | Q;
	case kb_Op_FSYNCDIR: return K | I;
	case kb_Op_ACCESS: return K | I | Q;
	case kb_Op_BYE: return K | I;
	/* Twice: the lease is already back. */
	case kb_Op_LEASE_RETURN: return K | I | Q;
	case kb_Op_SYNCFS: return K | I;
	/* Its parts are stream requests: re-sent whole on the same session,
	 * where each part is answered once (srv_stream.c, the reply cache);
	 * like them it fails (ESTALE) in a new session. */
	case kb_Op_COMPOUND: return K | I | BI;
	case kb_Op_NOTIFY: return K | KB_OP_PUSH;
	}
	return 0;
}
