/* rpc_wb.h - the changes the mount answers itself, sent as typed calls in
 * the write-behind stream (stream.h, PROTOCOL.md "Write-behind").
 *
 * Each queues its request and returns: 0 when cb (may be NULL) will run
 * once, on an rpc thread, with the status and the reply (res NULL when
 * none came), or a negative error when nothing was queued. Names too long
 * for the protocol: -ENAMETOOLONG before anything is queued. new_id: the
 * node id the client chose for what it creates (bit 63 set: KB_WB_ID).
 */
#ifndef KB_RPC_WB_H
#define KB_RPC_WB_H

#include <stdbool.h>
#include <stdint.h>

#include "rpc.h"
#include "stream.h"

#define KB_WB_ID (1ull << 63) /* ids the client chose have this bit */

int kb_wb_mkdir(struct kb_stream *st, uint64_t parent, const char *name, uint32_t mode,
		uint64_t new_id, const kb_Creds *who, kb_rpc_cb cb, void *arg);
/* CREATE of a name that does not exist (exclusive), opened with flags; its
 * handle's id is new_id too. */
int kb_wb_create(struct kb_stream *st, uint64_t parent, const char *name, uint32_t flags,
		 uint32_t mode, uint64_t new_id, const kb_Creds *who, kb_rpc_cb cb, void *arg);
int kb_wb_symlink(struct kb_stream *st, uint64_t parent, const char *name, const char *target,
		  uint64_t new_id, const kb_Creds *who, kb_rpc_cb cb, void *arg);
int kb_wb_setattr(struct kb_stream *st, uint64_t node, uint64_t fh, uint32_t set_mask,
		  const kb_Attr *values, kb_rpc_cb cb, void *arg);
int kb_wb_rename(struct kb_stream *st, uint64_t parent, const char *name, uint64_t newparent,
		 const char *newname, uint32_t flags, const kb_Creds *who, kb_rpc_cb cb, void *arg);
/* UNLINK, or RMDIR with dir. */
int kb_wb_remove(struct kb_stream *st, uint64_t parent, const char *name, bool dir,
		 const kb_Creds *who, kb_rpc_cb cb, void *arg);
/* Give the lease on directory node back (after a NOTIFY_RECALL), behind
 * everything queued before it. */
int kb_wb_lease_return(struct kb_stream *st, uint64_t node);

#endif
