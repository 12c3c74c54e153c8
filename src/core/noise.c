/* noise.c - Noise HandshakeState (rev 34), driven by a token table.
 *
 * The SymmetricState (ck, h, and a CipherState) lives inside the handshake
 * object. Patterns: NN, KK, XK, IK, XX with their pre-messages, plus the
 * generic pskN modifiers. Any failure poisons the state: every later call
 * fails, so a half-processed message can never be continued.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "noise.h"
#include "noise_int.h"
#include "util.h"

enum tok {
	T_END = 0,
	T_E,
	T_S,
	T_EE,
	T_ES,
	T_SE,
	T_SS,
	T_PSK
};

#define MAX_MSGS 4
#define MAX_TOKS 8
#define PRE_S 1u /* pre-message "s" */

struct pattern {
	const char *name;
	uint8_t pre_i, pre_r; /* initiator's / responder's pre-message */
	uint8_t nmsgs;
	uint8_t msgs[MAX_MSGS][MAX_TOKS];
};

static const struct pattern patterns[] = {
	{"NN", 0, 0, 2, {{T_E}, {T_E, T_EE}}},
	{"KK", PRE_S, PRE_S, 2, {{T_E, T_ES, T_SS}, {T_E, T_EE, T_SE}}},
	{"XK", 0, PRE_S, 3, {{T_E, T_ES}, {T_E, T_EE}, {T_S, T_SE}}},
	{"IK", 0, PRE_S, 2, {{T_E, T_ES, T_S, T_SS}, {T_E, T_EE, T_SE}}},
	{"XX", 0, 0, 3, {{T_E}, {T_E, T_EE, T_S, T_ES}, {T_S, T_SE}}},
};

#define NOISE_SUFFIX "_25519_AESGCM_SHA256"

struct kb_noise_hs {
	uint8_t ck[32], h[32];   /* SymmetricState */
	struct kb_noise_cs cs;   /* handshake CipherState (owns its aead) */
	enum kb_aead_backend be; /* for every CipherState made here */
	bool initiator, psk_mode, failed, done;
	bool has_s, has_e, has_rs, has_re, fixed_e;
	uint8_t s[32], s_pub[32]; /* local static key pair */
	uint8_t e[32], e_pub[32]; /* local ephemeral key pair */
	uint8_t rs[32], re[32];   /* remote public keys */
	uint8_t psk[32];
	struct kb_noise_rng *rng;             /* borrowed from the config */
	const struct pattern *pat;            /* static table entry */
	unsigned nmsgs, msg;                  /* pattern length, next message index */
	uint8_t msgs[MAX_MSGS][MAX_TOKS + 2]; /* tokens after modifiers */
};

/* ---- SymmetricState -------------------------------------------------------- */

static int mix_hash(struct kb_noise_hs *hs, const uint8_t *data, size_t len)
{
	return kb_noise_sha256(hs->h, hs->h, 32, data, len);
}

static int mix_key(struct kb_noise_hs *hs, const uint8_t *ikm, size_t len)
{
	uint8_t k[32]; /* temp_k; wiped */
	int ret = kb_noise_hkdf(hs->ck, ikm, len, 2, hs->ck, k, NULL);

	if (!ret)
		ret = kb_noise_cs_set_key(&hs->cs, hs->be, k);
	kb_memzero(k, sizeof(k));
	return ret;
}

static int mix_key_and_hash(struct kb_noise_hs *hs, const uint8_t *ikm, size_t len)
{
	uint8_t th[32], k[32]; /* temp_h, temp_k; wiped */
	int ret = kb_noise_hkdf(hs->ck, ikm, len, 3, hs->ck, th, k);

	if (!ret)
		ret = mix_hash(hs, th, sizeof(th));
	if (!ret)
		ret = kb_noise_cs_set_key(&hs->cs, hs->be, k);
	kb_memzero(th, sizeof(th));
	kb_memzero(k, sizeof(k));
	return ret;
}

/* EncryptAndHash into out[*off..], bounded by cap. in must not overlap out. */
static int encrypt_and_hash(struct kb_noise_hs *hs, const uint8_t *in, size_t n, uint8_t *out,
			    size_t cap, size_t *off)
{
	size_t need = n + (hs->cs.aead ? KB_AEAD_TAG : 0);
	int ret;

	if (need > cap - *off)
		return -EMSGSIZE;
	ret = kb_noise_cs_encrypt(&hs->cs, hs->h, 32, in, n, out + *off);
	if (!ret)
		ret = mix_hash(hs, out + *off, need);
	if (!ret)
		*off += need;
	return ret;
}

/* DecryptAndHash of in[0..n) into out (which may alias in); *outn gets the
 * plaintext length, at most cap. */
static int decrypt_and_hash(struct kb_noise_hs *hs, const uint8_t *in, size_t n, uint8_t *out,
			    size_t cap, size_t *outn)
{
	size_t plain = n;
	uint8_t h2[32]; /* next h, computed before out may overwrite in */
	int ret;

	if (hs->cs.aead) {
		if (n < KB_AEAD_TAG)
			return -KB_EHANDSHAKE;
		plain = n - KB_AEAD_TAG;
	}
	if (plain > cap)
		return -KB_EHANDSHAKE;
	ret = kb_noise_sha256(h2, hs->h, 32, in, n);
	if (ret)
		return ret;
	ret = kb_noise_cs_decrypt(&hs->cs, hs->h, 32, in, n, out);
	if (ret)
		return ret == -KB_EBADTAG ? -KB_EHANDSHAKE : ret;
	memcpy(hs->h, h2, 32);
	*outn = plain;
	return 0;
}

/* ---- construction ---------------------------------------------------------- */

/* Matches "Noise_<pattern>_25519_AESGCM_SHA256"; fills the token table. */
static int parse_protocol(struct kb_noise_hs *hs, const char *name)
{
	const char *p, *us, *suffix;
	const struct pattern *pat = NULL;
	size_t blen;

	if (!name || strncmp(name, "Noise_", 6))
		return -EINVAL;
	p = name + 6;
	us = strchr(p, '_');
	if (!us || us == p)
		return -EINVAL;
	suffix = us;
	if (strcmp(suffix, NOISE_SUFFIX))
		return strchr(suffix + 1, '_') ? -ENOTSUP : -EINVAL;
	for (blen = 0; p + blen < us && p[blen] >= 'A' && p[blen] <= 'Z'; blen++)
		;
	for (size_t i = 0; i < KB_ARRAY_SIZE(patterns); i++)
		if (strlen(patterns[i].name) == blen && !strncmp(patterns[i].name, p, blen))
			pat = &patterns[i];
	if (!pat)
		return -ENOTSUP;
	hs->pat = pat;
	hs->nmsgs = pat->nmsgs;
	for (unsigned i = 0; i < pat->nmsgs; i++)
		memcpy(hs->msgs[i], pat->msgs[i], MAX_TOKS);
	for (p += blen; p < us;) {
		unsigned long n;
		char *end;
		uint8_t *m;
		size_t len;

		if (strncmp(p, "psk", 3) || p[3] < '0' || p[3] > '9')
			return strchr("abcdefghijklmnopqrstuvwxyz", *p) ? -ENOTSUP : -EINVAL;
		n = strtoul(p + 3, &end, 10);
		if (n > hs->nmsgs || (end != us && *end != '+') || (*end == '+' && end + 1 == us))
			return -EINVAL;
		m = hs->msgs[n ? n - 1 : 0];
		len = strlen((const char *)m);
		if (memchr(m, T_PSK, len) || len + 1 > MAX_TOKS + 1)
			return -EINVAL; /* the same psk twice */
		if (n == 0)
			memmove(m + 1, m, len + 1);
		m[n ? len : 0] = T_PSK;
		hs->psk_mode = true;
		p = *end == '+' ? end + 1 : end;
	}
	return 0;
}

static int hs_init_keys(struct kb_noise_hs *hs, const struct kb_noise_hs_cfg *cfg)
{
	int ret = 0;

	if (cfg->s) {
		memcpy(hs->s, cfg->s, 32);
		ret = kb_x25519_pub(hs->s, hs->s_pub);
		hs->has_s = true;
	}
	if (!ret && cfg->e) {
		memcpy(hs->e, cfg->e, 32);
		ret = kb_x25519_pub(hs->e, hs->e_pub);
		hs->fixed_e = true;
	}
	if (cfg->rs) {
		memcpy(hs->rs, cfg->rs, 32);
		hs->has_rs = true;
	}
	if (hs->psk_mode && !cfg->psk)
		return -EINVAL;
	if (cfg->psk)
		memcpy(hs->psk, cfg->psk, 32);
	if (!cfg->e && !cfg->rng)
		return -EINVAL;
	return ret;
}

/* InitializeSymmetric, MixHash(prologue), then the pre-messages: the
 * initiator's keys first, then the responder's, on both sides. */
static int hs_init_symmetric(struct kb_noise_hs *hs, const struct kb_noise_hs_cfg *cfg,
			     const struct pattern *pat)
{
	size_t len = strlen(cfg->protocol);
	const uint8_t *ipre = hs->initiator ? hs->s_pub : hs->rs;
	const uint8_t *rpre = hs->initiator ? hs->rs : hs->s_pub;
	int ret;

	if (len <= 32) {
		memset(hs->h, 0, 32);
		memcpy(hs->h, cfg->protocol, len);
		ret = 0;
	} else {
		ret = kb_noise_sha256(hs->h, (const uint8_t *)cfg->protocol, len, NULL, 0);
	}
	memcpy(hs->ck, hs->h, 32);
	if (!ret)
		ret = mix_hash(hs, cfg->prologue, cfg->prologue ? cfg->prologue_len : 0);
	if (ret)
		return ret;
	/* A pre-message needs that side's static key: ours or the peer's. */
	if (pat->pre_i && !(hs->initiator ? hs->has_s : hs->has_rs))
		return -EINVAL;
	if (pat->pre_r && !(hs->initiator ? hs->has_rs : hs->has_s))
		return -EINVAL;
	if (pat->pre_i && (ret = mix_hash(hs, ipre, 32)))
		return ret;
	if (pat->pre_r && (ret = mix_hash(hs, rpre, 32)))
		return ret;
	return 0;
}

int kb_noise_hs_new(struct kb_noise_hs **out, const struct kb_noise_hs_cfg *cfg)
{
	struct kb_noise_hs *hs; /* owned until handed to *out */
	int ret;

	if (!cfg || !cfg->protocol)
		return -EINVAL;
	hs = calloc(1, sizeof(*hs));
	if (!hs)
		return -ENOMEM;
	kb_noise_cs_init(&hs->cs);
	hs->initiator = cfg->initiator;
	hs->rng = cfg->rng;
	hs->be = cfg->backend == KB_AEAD_DEFAULT ? kb_aead_default() : cfg->backend;
	ret = parse_protocol(hs, cfg->protocol);
	if (!ret)
		ret = hs_init_keys(hs, cfg);
	if (!ret)
		ret = hs_init_symmetric(hs, cfg, hs->pat);
	if (ret) {
		kb_noise_hs_free(hs);
		return ret;
	}
	*out = hs;
	return 0;
}

void kb_noise_hs_free(struct kb_noise_hs *hs)
{
	if (!hs)
		return;
	kb_noise_cs_destroy(&hs->cs);
	kb_memzero(hs, sizeof(*hs));
	free(hs);
}

/* ---- tokens ------------------------------------------------------------- */

/* The DH a token names, from this side's point of view. */
static int token_dh(struct kb_noise_hs *hs, enum tok t)
{
	bool i = hs->initiator;
	bool loc_s = t == T_SS || (t == T_ES && !i) || (t == T_SE && i);
	bool rem_s = t == T_SS || (t == T_ES && i) || (t == T_SE && !i);
	uint8_t dh[32]; /* shared secret; wiped */
	int ret;

	if ((loc_s ? !hs->has_s : !hs->has_e) || (rem_s ? !hs->has_rs : !hs->has_re))
		return -EINVAL; /* a key the pattern needs was not configured */
	ret = kb_x25519(dh, loc_s ? hs->s : hs->e, rem_s ? hs->rs : hs->re);
	if (!ret)
		ret = mix_key(hs, dh, sizeof(dh));
	kb_memzero(dh, sizeof(dh));
	return ret;
}

static int write_token(struct kb_noise_hs *hs, enum tok t, uint8_t *out, size_t cap, size_t *off)
{
	int ret;

	switch (t) {
	case T_E:
		if (!hs->fixed_e && (ret = kb_x25519_keygen(hs->rng, hs->e, hs->e_pub)))
			return ret;
		hs->has_e = true;
		if (cap - *off < 32)
			return -EMSGSIZE;
		memcpy(out + *off, hs->e_pub, 32);
		*off += 32;
		ret = mix_hash(hs, hs->e_pub, 32);
		return !ret && hs->psk_mode ? mix_key(hs, hs->e_pub, 32) : ret;
	case T_S:
		if (!hs->has_s)
			return -EINVAL;
		return encrypt_and_hash(hs, hs->s_pub, 32, out, cap, off);
	case T_PSK: return mix_key_and_hash(hs, hs->psk, 32);
	default: return token_dh(hs, t);
	}
}

static int read_token(struct kb_noise_hs *hs, enum tok t, const uint8_t *msg, size_t len,
		      size_t *off)
{
	size_t n, got;
	int ret;

	switch (t) {
	case T_E:
		if (len - *off < 32)
			return -KB_EHANDSHAKE;
		memcpy(hs->re, msg + *off, 32);
		hs->has_re = true;
		*off += 32;
		ret = mix_hash(hs, hs->re, 32);
		return !ret && hs->psk_mode ? mix_key(hs, hs->re, 32) : ret;
	case T_S:
		n = 32 + (hs->cs.aead ? KB_AEAD_TAG : 0);
		if (len - *off < n)
			return -KB_EHANDSHAKE;
		ret = decrypt_and_hash(hs, msg + *off, n, hs->rs, 32, &got);
		if (ret)
			return ret;
		hs->has_rs = true;
		*off += n;
		return 0;
	case T_PSK: return mix_key_and_hash(hs, hs->psk, 32);
	default: return token_dh(hs, t);
	}
}

/* ---- messages ------------------------------------------------------------ */

bool kb_noise_hs_my_turn(const struct kb_noise_hs *hs)
{
	return !hs->done && !hs->failed && (hs->msg % 2 == 0) == hs->initiator;
}

bool kb_noise_hs_done(const struct kb_noise_hs *hs)
{
	return hs->done;
}

static void advance(struct kb_noise_hs *hs)
{
	if (++hs->msg == hs->nmsgs)
		hs->done = true;
}

int kb_noise_hs_write(struct kb_noise_hs *hs, const uint8_t *payload, size_t plen, uint8_t *out,
		      size_t outcap, size_t *outlen)
{
	size_t off = 0;
	int ret = 0;

	if (hs->failed)
		return -KB_EHANDSHAKE;
	if (!kb_noise_hs_my_turn(hs) || (plen && !payload))
		return -EINVAL;
	outcap = KB_MIN(outcap, (size_t)KB_NOISE_MAX_MSG);
	for (const uint8_t *t = hs->msgs[hs->msg]; *t && !ret; t++)
		ret = write_token(hs, (enum tok) * t, out, outcap, &off);
	if (!ret)
		ret = encrypt_and_hash(hs, payload, plen, out, outcap, &off);
	if (ret) {
		hs->failed = true;
		return ret;
	}
	*outlen = off;
	advance(hs);
	return 0;
}

int kb_noise_hs_read(struct kb_noise_hs *hs, const uint8_t *msg, size_t len, uint8_t *payload,
		     size_t pcap, size_t *plen)
{
	static const uint8_t empty[1];
	uint8_t dummy[1]; /* stands in for a NULL payload buffer */
	size_t off = 0;
	int ret = 0;

	if (hs->failed)
		return -KB_EHANDSHAKE;
	if (hs->done || kb_noise_hs_my_turn(hs))
		return -EINVAL;
	if (len > KB_NOISE_MAX_MSG || (len && !msg))
		ret = -KB_EHANDSHAKE;
	if (!msg)
		msg = empty;
	if (!payload) {
		payload = dummy;
		pcap = 0;
	}
	for (const uint8_t *t = hs->msgs[hs->msg]; *t && !ret; t++)
		ret = read_token(hs, (enum tok) * t, msg, len, &off);
	if (!ret)
		ret = decrypt_and_hash(hs, msg + off, len - off, payload, pcap, plen);
	if (ret) {
		hs->failed = true;
		return ret;
	}
	advance(hs);
	return 0;
}

int kb_noise_hs_remote_static(const struct kb_noise_hs *hs, uint8_t rs[static 32])
{
	if (!hs->has_rs)
		return -ENOENT;
	memcpy(rs, hs->rs, 32);
	return 0;
}

void kb_noise_hs_hash(const struct kb_noise_hs *hs, uint8_t h[static KB_NOISE_HASH])
{
	memcpy(h, hs->h, KB_NOISE_HASH);
}

int kb_noise_hs_split(struct kb_noise_hs *hs, struct kb_noise_cs *send, struct kb_noise_cs *recv)
{
	uint8_t k1[32], k2[32]; /* temp keys; wiped */
	struct kb_noise_cs *c1 = hs->initiator ? send : recv, *c2 = hs->initiator ? recv : send;
	int ret;

	kb_noise_cs_init(send);
	kb_noise_cs_init(recv);
	if (!hs->done || hs->failed)
		return -EINVAL;
	ret = kb_noise_hkdf(hs->ck, NULL, 0, 2, k1, k2, NULL);
	if (!ret)
		ret = kb_noise_cs_set_key(c1, hs->be, k1);
	if (!ret)
		ret = kb_noise_cs_set_key(c2, hs->be, k2);
	if (ret) {
		kb_noise_cs_destroy(send);
		kb_noise_cs_destroy(recv);
	}
	kb_memzero(k1, sizeof(k1));
	kb_memzero(k2, sizeof(k2));
	return ret;
}
