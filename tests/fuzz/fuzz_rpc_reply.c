/* fuzz_rpc_reply.c - arbitrary bytes as a reply frame's plaintext, through
 * the client's id peek (which picks where the reply is decoded) and the
 * Response decoder. Whenever the decoder accepts a frame, the peek must
 * have accepted it too and found the same id. The bulk is then walked as
 * READDIR entries (kb_wire_dirent_next), which must stay inside it and
 * always advance. */
#include <stdint.h>
#include <stdlib.h>

#include "rpc_int.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static kb_Response resp;
	kb_Dirent d;
	size_t off = 0, prev;
	int r;
	const uint8_t *bulk;
	size_t bulk_len;
	uint64_t id = 0;
	int peek = kb_rpc_peek_id(data, size, &id);

	if (kb_wire_decode_resp(data, size, &resp, &bulk, &bulk_len) == 0) {
		if (peek != 0 || id != resp.id)
			abort();
		if (bulk < data || bulk + bulk_len != data + size)
			abort();
		do {
			prev = off;
			r = kb_wire_dirent_next(bulk, bulk_len, &off, &d);
			if (off > bulk_len || (r == 1 && off <= prev))
				abort();
		} while (r == 1);
	}
	return 0;
}
