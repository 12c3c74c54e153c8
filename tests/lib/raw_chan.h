/* raw_chan.h - an encrypted channel to a keibifsd with no session on it:
 * for the tests and tools that send hand-made requests (tests/th_server.c,
 * tests/test_hostile.c, tests/tools/kb-hostile.c). */
#ifndef KB_RAW_CHAN_H
#define KB_RAW_CHAN_H

#include <stdint.h>

#include "chan.h"
#include "keibifs.pb.h"

/* The Noise handshake as the initiator with static key priv (32 bytes) on
 * the connected socket fd, accepting any server key; info may be NULL.
 * 0, or a negative error (fd is closed then). */
int kb_rawchan_handshake(int fd, const uint8_t *priv, int timeout_ms, struct kb_chan **out,
			 struct kb_chan_info *info);
/* Send q as one frame (up to 8 KiB encoded); no reply is awaited. */
int kb_rawchan_send_req(struct kb_chan *c, const kb_Request *q);

#endif
