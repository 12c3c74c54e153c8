/* wire.c - one protocol message per frame plaintext:
 *   [u32 BE header length H][H bytes protobuf][bulk]
 * Decoding runs only on authenticated plaintext and is bounded by the
 * nanopb .options limits (no PB_ENABLE_MALLOC) and by the frame length.
 */
#include <errno.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "err.h"
#include "util.h"
#include "wire.h"

static int encode(uint8_t *out, size_t cap, const pb_msgdesc_t *desc, const void *msg, size_t *len)
{
	pb_ostream_t os;

	if (cap < KB_WIRE_LEN)
		return -ENOSPC;
	os = pb_ostream_from_buffer(out + KB_WIRE_LEN, cap - KB_WIRE_LEN);
	if (!pb_encode(&os, desc, msg))
		return os.bytes_written >= cap - KB_WIRE_LEN ? -ENOSPC : -KB_EPROTO;
	kb_put_be32(out, (uint32_t)os.bytes_written);
	*len = KB_WIRE_LEN + os.bytes_written;
	return 0;
}

int kb_wire_encode_req(uint8_t *out, size_t cap, const kb_Request *r, size_t *len)
{
	return encode(out, cap, kb_Request_fields, r, len);
}

int kb_wire_encode_resp(uint8_t *out, size_t cap, const kb_Response *r, size_t *len)
{
	return encode(out, cap, kb_Response_fields, r, len);
}

static size_t encoded_size(const pb_msgdesc_t *desc, const void *msg)
{
	size_t n = 0;

	if (!pb_get_encoded_size(&n, desc, msg))
		return 0;
	return KB_WIRE_LEN + n;
}

size_t kb_wire_resp_size(const kb_Response *r)
{
	return encoded_size(kb_Response_fields, r);
}

size_t kb_wire_req_size(const kb_Request *r)
{
	return encoded_size(kb_Request_fields, r);
}

static int decode(const uint8_t *frame, size_t len, const pb_msgdesc_t *desc, void *msg,
		  const uint8_t **bulk, size_t *bulk_len)
{
	pb_istream_t is;
	uint32_t h;

	if (len < KB_WIRE_LEN)
		return -KB_EPROTO;
	h = kb_get_be32(frame);
	if (h > len - KB_WIRE_LEN)
		return -KB_EPROTO;
	is = pb_istream_from_buffer(frame + KB_WIRE_LEN, h);
	/* pb_decode initialises every field to its default first. */
	if (!pb_decode(&is, desc, msg))
		return -KB_EPROTO;
	*bulk = frame + KB_WIRE_LEN + h;
	*bulk_len = len - KB_WIRE_LEN - h;
	return 0;
}

int kb_wire_decode_req(const uint8_t *frame, size_t len, kb_Request *r, const uint8_t **bulk,
		       size_t *bulk_len)
{
	return decode(frame, len, kb_Request_fields, r, bulk, bulk_len);
}

int kb_wire_decode_resp(const uint8_t *frame, size_t len, kb_Response *r, const uint8_t **bulk,
			size_t *bulk_len)
{
	return decode(frame, len, kb_Response_fields, r, bulk, bulk_len);
}

int kb_wire_peek_varints(const uint8_t *frame, size_t len, size_t max_header, const uint32_t *tags,
			 uint64_t *vals, size_t n)
{
	pb_istream_t is;
	pb_wire_type_t wt;
	uint32_t tag, h;
	bool eof;

	if (len < KB_WIRE_LEN || (h = kb_get_be32(frame)) > len - KB_WIRE_LEN || h > max_header)
		return -KB_EPROTO;
	is = pb_istream_from_buffer(frame + KB_WIRE_LEN, h);
	while (pb_decode_tag(&is, &wt, &tag, &eof)) {
		size_t i = 0;

		while (i < n && tags[i] != tag)
			i++;
		if (i == n || wt != PB_WT_VARINT) {
			if (!pb_skip_field(&is, wt))
				return -KB_EPROTO;
		} else if (!pb_decode_varint(&is, &vals[i])) {
			return -KB_EPROTO;
		}
	}
	return eof && is.bytes_left == 0 ? 0 : -KB_EPROTO;
}

int kb_wire_dirent_put(uint8_t *out, size_t cap, const kb_Dirent *d, size_t *len)
{
	pb_ostream_t os = pb_ostream_from_buffer(out, cap);

	if (!pb_encode_delimited(&os, kb_Dirent_fields, d))
		return -ENOSPC;
	*len = os.bytes_written;
	return 0;
}

int kb_wire_part_next(const uint8_t **p, size_t *left, const uint8_t **part, size_t *len)
{
	size_t n;

	if (!*left)
		return 0;
	if (*left < KB_WIRE_LEN || (n = kb_get_be32(*p)) > *left - KB_WIRE_LEN)
		return -KB_EPROTO;
	*part = *p + KB_WIRE_LEN;
	*len = n;
	*p += KB_WIRE_LEN + n;
	*left -= KB_WIRE_LEN + n;
	return 1;
}

int kb_wire_dirent_next(const uint8_t *bulk, size_t len, size_t *off, kb_Dirent *d)
{
	pb_istream_t is;

	if (*off >= len)
		return 0;
	is = pb_istream_from_buffer(bulk + *off, len - *off);
	if (!pb_decode_delimited(&is, kb_Dirent_fields, d))
		return -KB_EPROTO;
	*off = len - is.bytes_left;
	return 1;
}

/* Every errno that crosses the wire; the enum uses Linux's numbers, but the
 * mapping is explicit so that neither side trusts a raw number. */
static const int wire_errnos[] = {
	EPERM,        ENOENT,  EINTR,  EIO,       ENXIO,     E2BIG,     EBADF,
	EAGAIN,       ENOMEM,  EACCES, EFAULT,    EBUSY,     EEXIST,    EXDEV,
	ENODEV,       ENOTDIR, EISDIR, EINVAL,    ENFILE,    EMFILE,    ETXTBSY,
	EFBIG,        ENOSPC,  ESPIPE, EROFS,     EMLINK,    ERANGE,    EDEADLK,
	ENAMETOOLONG, ENOLCK,  ENOSYS, ENOTEMPTY, ELOOP,     ENODATA,   EOVERFLOW,
	EOPNOTSUPP,   ESTALE,  EDQUOT, ENOTCONN,  ETIMEDOUT, ECANCELED,
};

static const kb_Err wire_errs[] = {
	kb_Err_E_PERM,        kb_Err_E_NOENT,  kb_Err_E_INTR,     kb_Err_E_IO,
	kb_Err_E_NXIO,        kb_Err_E_2BIG,   kb_Err_E_BADF,     kb_Err_E_AGAIN,
	kb_Err_E_NOMEM,       kb_Err_E_ACCES,  kb_Err_E_FAULT,    kb_Err_E_BUSY,
	kb_Err_E_EXIST,       kb_Err_E_XDEV,   kb_Err_E_NODEV,    kb_Err_E_NOTDIR,
	kb_Err_E_ISDIR,       kb_Err_E_INVAL,  kb_Err_E_NFILE,    kb_Err_E_MFILE,
	kb_Err_E_TXTBSY,      kb_Err_E_FBIG,   kb_Err_E_NOSPC,    kb_Err_E_SPIPE,
	kb_Err_E_ROFS,        kb_Err_E_MLINK,  kb_Err_E_RANGE,    kb_Err_E_DEADLK,
	kb_Err_E_NAMETOOLONG, kb_Err_E_NOLCK,  kb_Err_E_NOSYS,    kb_Err_E_NOTEMPTY,
	kb_Err_E_LOOP,        kb_Err_E_NODATA, kb_Err_E_OVERFLOW, kb_Err_E_OPNOTSUPP,
	kb_Err_E_STALE,       kb_Err_E_DQUOT,  kb_Err_E_NOTCONN,  kb_Err_E_TIMEDOUT,
	kb_Err_E_CANCELED,
};

_Static_assert(KB_ARRAY_SIZE(wire_errnos) == KB_ARRAY_SIZE(wire_errs), "errno table");

kb_Err kb_wire_err_from_errno(int err)
{
	int e = err < 0 ? -err : err;

	if (e == 0)
		return kb_Err_OK;
	for (size_t i = 0; i < KB_ARRAY_SIZE(wire_errnos); i++)
		if (wire_errnos[i] == e)
			return wire_errs[i];
	return kb_Err_E_IO;
}

int kb_wire_err_to_errno(kb_Err e)
{
	if (e == kb_Err_OK)
		return 0;
	for (size_t i = 0; i < KB_ARRAY_SIZE(wire_errs); i++)
		if (wire_errs[i] == e)
			return -wire_errnos[i];
	return -EIO;
}

const char *kb_wire_op_name(kb_Op op)
{
	static const char *const names[] = {
		[kb_Op_OP_NONE] = "NONE",
		[kb_Op_HELLO] = "HELLO",
		[kb_Op_ATTACH] = "ATTACH",
		[kb_Op_LOOKUP] = "LOOKUP",
		[kb_Op_FORGET] = "FORGET",
		[kb_Op_GETATTR] = "GETATTR",
		[kb_Op_SETATTR] = "SETATTR",
		[kb_Op_OPENDIR] = "OPENDIR",
		[kb_Op_READDIR] = "READDIR",
		[kb_Op_RELEASEDIR] = "RELEASEDIR",
		[kb_Op_OPEN] = "OPEN",
		[kb_Op_CREATE] = "CREATE",
		[kb_Op_READ] = "READ",
		[kb_Op_WRITE] = "WRITE",
		[kb_Op_FLUSH] = "FLUSH",
		[kb_Op_FSYNC] = "FSYNC",
		[kb_Op_RELEASE] = "RELEASE",
		[kb_Op_MKDIR] = "MKDIR",
		[kb_Op_MKNOD] = "MKNOD",
		[kb_Op_UNLINK] = "UNLINK",
		[kb_Op_RMDIR] = "RMDIR",
		[kb_Op_RENAME] = "RENAME",
		[kb_Op_LINK] = "LINK",
		[kb_Op_SYMLINK] = "SYMLINK",
		[kb_Op_READLINK] = "READLINK",
		[kb_Op_STATFS] = "STATFS",
		[kb_Op_GETXATTR] = "GETXATTR",
		[kb_Op_SETXATTR] = "SETXATTR",
		[kb_Op_LISTXATTR] = "LISTXATTR",
		[kb_Op_REMOVEXATTR] = "REMOVEXATTR",
		[kb_Op_FALLOCATE] = "FALLOCATE",
		[kb_Op_COPY_FILE_RANGE] = "COPY_FILE_RANGE",
		[kb_Op_LSEEK] = "LSEEK",
		[kb_Op_PING] = "PING",
		[kb_Op_FSYNCDIR] = "FSYNCDIR",
		[kb_Op_ACCESS] = "ACCESS",
		[kb_Op_BYE] = "BYE",
		[kb_Op_LEASE_RETURN] = "LEASE_RETURN",
		[kb_Op_SYNCFS] = "SYNCFS",
		[kb_Op_COMPOUND] = "COMPOUND",
		[kb_Op_NOTIFY] = "NOTIFY",
	};

	if ((unsigned)op < KB_ARRAY_SIZE(names) && names[op])
		return names[op];
	return "UNKNOWN";
}
