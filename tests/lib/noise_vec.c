/* noise_vec.c - cacophony vector runner: both sides of each handshake in
 * process, every message compared byte for byte, then transport messages
 * through the split CipherStates. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "noise.h"
#include "noise_vec.h"
#include "util.h"

#define VEC_MAX_MSG 65535

/* Keys and prologue of one side, decoded from hex. */
struct vec_side {
	uint8_t prologue[256];
	size_t prologue_len;
	uint8_t s[32], e[32], rs[32], psk[32];
	bool has_s, has_e, has_rs, has_psk;
};

struct vec_run {
	const char *name;
	FILE *log;
	/* VEC_MAX_MSG bytes each, owned by kb_noise_vec_run_file: message,
	 * decrypted message, expected payload, expected ciphertext. */
	uint8_t *buf, *buf2, *pl, *ct;
};

static int vfail(struct vec_run *v, const char *what, int idx, int err)
{
	fprintf(v->log, "FAIL %s: message %d: %s (%s)\n", v->name, idx, what, kb_strerror(err));
	return -1;
}

/* Member `key` of an object if it is a string, else NULL. */
static const char *str_member(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int hex_field(const json_t *o, const char *key, uint8_t *out, size_t cap, size_t *len,
		     bool *has)
{
	const char *s = str_member(o, key);
	ssize_t n;

	if (!s)
		return 0;
	n = kb_hex_decode(out, cap, s);
	if (n < 0 || (!len && (size_t)n != cap))
		return -EINVAL;
	if (len)
		*len = (size_t)n;
	if (has)
		*has = true;
	return 0;
}

/* 0, 1 when the vector uses something unsupported (several psks), <0 bad. */
static int load_side(const json_t *v, const char *pfx, struct vec_side *sd)
{
	const json_t *psks;
	const char *psk;
	char key[32];
	int ret = 0;

	memset(sd, 0, sizeof(*sd));
	snprintf(key, sizeof(key), "%s_prologue", pfx);
	ret |= hex_field(v, key, sd->prologue, sizeof(sd->prologue), &sd->prologue_len, NULL);
	snprintf(key, sizeof(key), "%s_static", pfx);
	ret |= hex_field(v, key, sd->s, 32, NULL, &sd->has_s);
	snprintf(key, sizeof(key), "%s_ephemeral", pfx);
	ret |= hex_field(v, key, sd->e, 32, NULL, &sd->has_e);
	snprintf(key, sizeof(key), "%s_remote_static", pfx);
	ret |= hex_field(v, key, sd->rs, 32, NULL, &sd->has_rs);
	snprintf(key, sizeof(key), "%s_psks", pfx);
	psks = json_object_get(v, key);
	if (ret)
		return -EINVAL;
	if (!json_is_array(psks) || json_array_size(psks) == 0)
		return 0;
	if (json_array_size(psks) > 1)
		return 1;
	psk = json_string_value(json_array_get(psks, 0));
	if (!psk || kb_hex_decode(sd->psk, 32, psk) != 32)
		return -EINVAL;
	sd->has_psk = true;
	return 0;
}

static int side_new(struct kb_noise_hs **hs, const char *proto, bool initiator,
		    const struct vec_side *sd, enum kb_aead_backend be)
{
	struct kb_noise_hs_cfg cfg = {
		.protocol = proto,
		.initiator = initiator,
		.prologue = sd->prologue,
		.prologue_len = sd->prologue_len,
		.s = sd->has_s ? sd->s : NULL,
		.rs = sd->has_rs ? sd->rs : NULL,
		.psk = sd->has_psk ? sd->psk : NULL,
		.e = sd->has_e ? sd->e : NULL,
		.backend = be,
	};

	return kb_noise_hs_new(hs, &cfg);
}

/* One message: `msg` has hex payload and ciphertext. */
static int msg_fields(struct vec_run *v, const json_t *msg, size_t *pllen, size_t *ctlen)
{
	if (hex_field(msg, "payload", v->pl, VEC_MAX_MSG - KB_AEAD_TAG, pllen, NULL) ||
	    hex_field(msg, "ciphertext", v->ct, VEC_MAX_MSG, ctlen, NULL) ||
	    !str_member(msg, "payload") || !str_member(msg, "ciphertext")) {
		fprintf(v->log, "FAIL %s: malformed message\n", v->name);
		return -1;
	}
	return 0;
}

static int run_handshake_msg(struct vec_run *v, struct kb_noise_hs *w, struct kb_noise_hs *r,
			     const json_t *msg, int idx)
{
	const uint8_t *pl = v->pl, *ct = v->ct;
	size_t pllen, ctlen, n, got;
	int ret;

	if (msg_fields(v, msg, &pllen, &ctlen) < 0)
		return -1;
	ret = kb_noise_hs_write(w, pl, pllen, v->buf, VEC_MAX_MSG, &n);
	if (ret)
		return vfail(v, "write", idx, ret);
	if (n != ctlen || memcmp(v->buf, ct, n))
		return vfail(v, "handshake ciphertext differs", idx, 0);
	ret = kb_noise_hs_read(r, v->buf, n, v->buf2, VEC_MAX_MSG, &got);
	if (ret)
		return vfail(v, "read", idx, ret);
	if (got != pllen || memcmp(v->buf2, pl, got))
		return vfail(v, "payload differs", idx, 0);
	return 0;
}

static int run_transport_msg(struct vec_run *v, struct kb_noise_cs *send, struct kb_noise_cs *recv,
			     const json_t *msg, int idx)
{
	const uint8_t *pl = v->pl, *ct = v->ct;
	size_t pllen, ctlen;
	int ret;

	if (msg_fields(v, msg, &pllen, &ctlen) < 0)
		return -1;
	ret = kb_noise_cs_encrypt(send, NULL, 0, pl, pllen, v->buf);
	if (ret)
		return vfail(v, "encrypt", idx, ret);
	if (pllen + KB_AEAD_TAG != ctlen || memcmp(v->buf, ct, ctlen))
		return vfail(v, "transport ciphertext differs", idx, 0);
	ret = kb_noise_cs_decrypt(recv, NULL, 0, v->buf, ctlen, v->buf2);
	if (ret)
		return vfail(v, "decrypt", idx, ret);
	if (memcmp(v->buf2, pl, pllen))
		return vfail(v, "transport payload differs", idx, 0);
	return 0;
}

static int check_hash(struct vec_run *v, const json_t *vec, struct kb_noise_hs *i,
		      struct kb_noise_hs *r, int idx)
{
	uint8_t hi[32], hr[32], want[32];
	const char *hex = str_member(vec, "handshake_hash");

	kb_noise_hs_hash(i, hi);
	kb_noise_hs_hash(r, hr);
	if (memcmp(hi, hr, 32))
		return vfail(v, "handshake hashes differ between the sides", idx, 0);
	if (hex && (kb_hex_decode(want, 32, hex) != 32 || memcmp(want, hi, 32)))
		return vfail(v, "handshake_hash differs", idx, 0);
	return 0;
}

/* Message idx: a handshake message from whoever's turn it is, or, after the
 * handshake, a transport message from the initiator (even) or responder. */
static int run_msgs(struct vec_run *v, const json_t *vec, struct kb_noise_hs *hi,
		    struct kb_noise_hs *hr, struct kb_noise_cs cs[4])
{
	const json_t *msgs = json_object_get(vec, "messages"), *m;
	int idx = 0, ret = 0;
	bool split = false;

	if (!json_is_array(msgs))
		return vfail(v, "no messages array", -1, 0);
	for (; (size_t)idx < json_array_size(msgs) && !ret; idx++) {
		m = json_array_get(msgs, (size_t)idx);
		if (split) {
			ret = idx % 2 ? run_transport_msg(v, &cs[2], &cs[1], m, idx)
				      : run_transport_msg(v, &cs[0], &cs[3], m, idx);
			continue;
		}
		ret = kb_noise_hs_my_turn(hi) ? run_handshake_msg(v, hi, hr, m, idx)
					      : run_handshake_msg(v, hr, hi, m, idx);
		if (ret || !kb_noise_hs_done(hi) || !kb_noise_hs_done(hr))
			continue;
		ret = check_hash(v, vec, hi, hr, idx);
		if (!ret && (kb_noise_hs_split(hi, &cs[0], &cs[1]) ||
			     kb_noise_hs_split(hr, &cs[2], &cs[3])))
			ret = vfail(v, "split", idx, 0);
		split = true;
	}
	if (!ret && !split)
		ret = vfail(v, "messages end before the handshake does", idx, 0);
	return ret;
}

/* 0 passed, 1 skipped (unsupported), -1 failed. */
static int run_one(struct vec_run *v, const json_t *vec, enum kb_aead_backend be)
{
	struct vec_side is, rsd; /* decoded keys; wiped */
	struct kb_noise_hs *hi = NULL, *hr = NULL;
	struct kb_noise_cs cs[4]; /* init send, init recv, resp send, resp recv */
	int ret, li, lr;

	for (int k = 0; k < 4; k++)
		kb_noise_cs_init(&cs[k]);
	v->name = str_member(vec, "protocol_name");
	if (!v->name) {
		v->name = "(unnamed)";
		return vfail(v, "no protocol_name", -1, 0);
	}
	li = load_side(vec, "init", &is);
	lr = load_side(vec, "resp", &rsd);
	if (li < 0 || lr < 0) {
		ret = vfail(v, "malformed key fields", -1, -EINVAL);
		goto out;
	}
	ret = li || lr ? 1 : side_new(&hi, v->name, true, &is, be);
	if (!ret)
		ret = side_new(&hr, v->name, false, &rsd, be);
	if (ret == -ENOTSUP)
		ret = 1;
	else if (ret < 0)
		ret = vfail(v, "handshake setup", -1, ret);
	if (!ret)
		ret = run_msgs(v, vec, hi, hr, cs);
out:
	for (int k = 0; k < 4; k++)
		kb_noise_cs_destroy(&cs[k]);
	kb_noise_hs_free(hi);
	kb_noise_hs_free(hr);
	kb_memzero(&is, sizeof(is));
	kb_memzero(&rsd, sizeof(rsd));
	return ret;
}

static int run_all(struct vec_run *v, const json_t *root, enum kb_aead_backend be,
		   struct kb_noise_vec_result *res)
{
	const json_t *vecs = json_is_array(root) ? root : json_object_get(root, "vectors");

	if (!json_is_array(vecs)) {
		fprintf(v->log, "no \"vectors\" array\n");
		return -EINVAL;
	}
	for (size_t k = 0; k < json_array_size(vecs); k++) {
		int r = run_one(v, json_array_get(vecs, k), be);

		if (r == 0)
			res->passed++;
		else if (r == 1)
			res->skipped++;
		else
			res->failed++;
	}
	return 0;
}

int kb_noise_vec_run_file(const char *path, enum kb_aead_backend be, FILE *log,
			  struct kb_noise_vec_result *res)
{
	struct vec_run v = {.log = log};
	json_error_t jerr;
	json_t *root; /* owned here */
	int ret;

	memset(res, 0, sizeof(*res));
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		fprintf(log, "%s: line %d: %s\n", path, jerr.line, jerr.text);
		return json_error_code(&jerr) == json_error_cannot_open_file ? -ENOENT : -EINVAL;
	}
	v.buf = malloc(VEC_MAX_MSG);
	v.buf2 = malloc(VEC_MAX_MSG);
	v.pl = malloc(VEC_MAX_MSG);
	v.ct = malloc(VEC_MAX_MSG);
	ret = v.buf && v.buf2 && v.pl && v.ct ? run_all(&v, root, be, res) : -ENOMEM;
	free(v.buf);
	free(v.buf2);
	free(v.pl);
	free(v.ct);
	json_decref(root);
	return ret;
}
