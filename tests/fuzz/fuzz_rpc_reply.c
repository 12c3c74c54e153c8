/* fuzz_rpc_reply.c - arbitrary bytes as a reply frame's plaintext, through
 * the client's id peek (which picks where the reply is decoded) and the
 * Response decoder. Whenever the decoder accepts a frame, the peek must
 * have accepted it too and found the same id. */
#include <stdint.h>
#include <stdlib.h>

#include "rpc_int.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static kb_Response resp; /* 60 KB: not on the stack */
	const uint8_t *bulk;
	size_t bulk_len;
	uint64_t id = 0;
	int peek = kb_rpc_peek_id(data, size, &id);

	if (kb_wire_decode_resp(data, size, &resp, &bulk, &bulk_len) == 0) {
		if (peek != 0 || id != resp.id)
			abort();
		if (bulk < data || bulk + bulk_len != data + size)
			abort();
	}
	return 0;
}
