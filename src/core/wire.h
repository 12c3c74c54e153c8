/* wire.h - one protocol message inside one transport frame's plaintext:
 *   [u32 BE header length H][H bytes of protobuf Request/Response][bulk]
 * Decoding happens only on an already-authenticated plaintext buffer; every
 * size is bounded by the .options file and by the frame length.
 */
#ifndef KB_WIRE_H
#define KB_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "keibifs.pb.h"

#define KB_WIRE_LEN 4
/* Room a sender reserves before bulk data for [frame len][H][small header]:
 * READ replies and WRITE requests have headers far below this. */
#define KB_WIRE_HEADROOM 512
/* The most requests one COMPOUND carries (each [u32 len][plaintext]): the
 * largest replies of that many fit the server's small reply buffer (a
 * COMPOUND of quick requests is served on its receiver thread). */
#define KB_WIRE_COMPOUND_MAX 12

/* Encode r as [u32 H][H bytes] at out; *len = 4 + H. -ENOSPC if cap is short. */
int kb_wire_encode_req(uint8_t *out, size_t cap, const kb_Request *r, size_t *len);
int kb_wire_encode_resp(uint8_t *out, size_t cap, const kb_Response *r, size_t *len);
/* Size of the encoded header (4 + H) without writing it. */
size_t kb_wire_resp_size(const kb_Response *r);
size_t kb_wire_req_size(const kb_Request *r);

/* Decode a frame's plaintext. *bulk points into `frame` (not copied).
 * -KB_EPROTO on anything malformed or over a bound. */
int kb_wire_decode_req(const uint8_t *frame, size_t len, kb_Request *r, const uint8_t **bulk,
		       size_t *bulk_len);
int kb_wire_decode_resp(const uint8_t *frame, size_t len, kb_Response *r, const uint8_t **bulk,
			size_t *bulk_len);

/* Read a few varint fields of a frame's header without decoding the whole
 * message (to route it before its real decode): for each i < n, vals[i]
 * gets the last value of field tags[i] (a varint), and is left unchanged
 * when the field is absent. nanopb does the parsing, so whatever it would
 * decode, this reads alike. 0, or -KB_EPROTO when the header is not
 * well-formed protobuf or longer than `max_header` bytes. */
int kb_wire_peek_varints(const uint8_t *frame, size_t len, size_t max_header, const uint32_t *tags,
			 uint64_t *vals, size_t n);

/* READDIR bulk: a sequence of length-delimited Dirents (varint length +
 * protobuf). KB_WIRE_DIRENT_MAX is the most one entry can take. */
#define KB_WIRE_DIRENT_MAX (kb_Dirent_size + 5)
/* Append d at out (cap bytes); *len = bytes written. -ENOSPC if short. */
int kb_wire_dirent_put(uint8_t *out, size_t cap, const kb_Dirent *d, size_t *len);
/* Decode the entry at bulk[*off] into d and advance *off: 1, or 0 at the
 * end of the bulk, or -KB_EPROTO for anything malformed. */
int kb_wire_dirent_next(const uint8_t *bulk, size_t len, size_t *off, kb_Dirent *d);

/* A COMPOUND's bulk (its requests, or their replies), each
 * [u32 BE length][plaintext]: the next one at *p into *part (*len bytes),
 * moving *p and *left past it: 1, 0 at the end, or -KB_EPROTO when a
 * length runs past the bulk. */
int kb_wire_part_next(const uint8_t **p, size_t *left, const uint8_t **part, size_t *len);

/* errno <-> portable wire enum. err is 0 or -errno; unknown -> E_IO / -EIO. */
kb_Err kb_wire_err_from_errno(int err);
int kb_wire_err_to_errno(kb_Err e);

const char *kb_wire_op_name(kb_Op op);

#endif
