/* raw_chan.c - a channel to keibifsd without a session, for tests/tools. */
#include <unistd.h>

#include "raw_chan.h"
#include "noise.h"
#include "wire.h"

static int accept_any(void *arg, const uint8_t rs[static 32], unsigned *flags)
{
	(void)arg;
	(void)rs;
	*flags = 0;
	return 0;
}

int kb_rawchan_handshake(int fd, const uint8_t *priv, int timeout_ms, struct kb_chan **out,
			 struct kb_chan_info *info)
{
	struct kb_noise_rng *rng = NULL;
	struct kb_chan_cfg cfg = {
		.initiator = true,
		.s = priv,
		.verify = accept_any,
		.timeout_ms = timeout_ms,
	};
	int ret = kb_noise_rng_new(&rng);

	cfg.rng = rng;
	if (!ret)
		ret = kb_chan_handshake(out, fd, &cfg, info);
	else
		close(fd);
	kb_noise_rng_free(rng);
	return ret;
}

int kb_rawchan_send_req(struct kb_chan *c, const kb_Request *q)
{
	static __thread uint8_t f[KB_FRAME_HEAD + 8192 + KB_FRAME_TAG];
	size_t len = 0;
	int ret = kb_wire_encode_req(f + KB_FRAME_HEAD, 8192, q, &len);

	return ret ? ret : kb_chan_send(c, f, len);
}
